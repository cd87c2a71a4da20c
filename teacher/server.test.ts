// The teacher server over plain fetch, in vLLM's format: values equal the LocalTeacher's; 413 / 400 /
// 401 / 404 refusals after each of which a good request still succeeds; concurrent requests batched
// into few teacher calls; loopback-only binding; and `opd teacher serve` end to end.

import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { initModelDir, tinyConfig } from '../student/model/init.ts';
import { LocalTeacher } from './local.ts';
import { spawnTeacherServe } from './serve-child.ts';
import { Batcher } from './batcher.ts';
import { isLoopback, type ServedTeacher, TeacherServer, type TeacherServerOptions } from './server.ts';
import type { TeacherRequest } from './types.ts';

const root = mkdtempSync(join(tmpdir(), 'opd-teacher-server-'));
const K = 4;
let dir: string;
let teacher: LocalTeacher;

before(async () => {
  dir = (await initModelDir(join(root, 'm'), tinyConfig({ max_position_embeddings: 64 }), 11)).dir;
  teacher = await LocalTeacher.open(dir, { topK: K, threads: 1 });
});
after(() => teacher.close());

async function withServer(opts: TeacherServerOptions, fn: (s: TeacherServer) => Promise<void>): Promise<void> {
  const s = await TeacherServer.start(teacher, { port: 0, modelName: 'tiny', ...opts });
  try {
    await fn(s);
  } finally {
    await s.close();
  }
}

type PromptLogprobs = Array<null | Record<string, { logprob: number; rank: number | null; decoded_token: string }>>;
interface Choice {
  index: number;
  text: string;
  prompt_logprobs: PromptLogprobs;
}
/** The JSON bodies this server answers with (completion, model list, error), as far as tests read them. */
interface Answer {
  object: string;
  model: string;
  message: string;
  usage: Record<string, number>;
  choices: Choice[];
  data: Array<{ id: string; max_model_len: number }>;
}
const json = (r: Response) => r.json() as Promise<Answer>;

const post = (s: TeacherServer, body: unknown, headers: Record<string, string> = {}) =>
  fetch(`${s.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) });

const completion = (prompt: number[] | number[][], k = K) => ({ model: 'tiny', prompt, max_tokens: 1, prompt_logprobs: k, temperature: 1 });

/** The response's prompt_logprobs against teacher.score on the same ids (values, top-k ids and ranks). */
async function assertMatchesTeacher(choice: Choice, ids: number[], k: number): Promise<void> {
  const [want] = await teacher.score([{ ids, start: 1 }], { topK: k });
  const pl = choice.prompt_logprobs;
  assert.equal(choice.text, '');
  assert.equal(pl.length, ids.length);
  assert.equal(pl[0], null);
  for (let t = 1; t < ids.length; t++) {
    const pos = pl[t]!;
    const actual = pos[String(ids[t])]!;
    assert.ok(Math.abs(actual.logprob - want!.logprobs[t - 1]!) <= 1e-5, `position ${t}: ${actual.logprob} vs ${want!.logprobs[t - 1]}`);
    want!.topIds![t - 1]!.forEach((id, j) => {
      assert.equal(pos[String(id)]!.rank, j + 1, `position ${t}: rank of ${id}`);
      if (id !== ids[t]) assert.ok(Math.abs(pos[String(id)]!.logprob - want!.topLogprobs![t - 1]![j]!) <= 1e-5);
    });
    assert.equal(Object.keys(pos).length, want!.topIds![t - 1]!.includes(ids[t]!) ? k : k + 1);
    assert.equal(typeof actual.decoded_token, 'string');
  }
}

/** A good request still succeeds (the server stays up after whatever came before). */
async function assertServing(s: TeacherServer, headers: Record<string, string> = {}): Promise<void> {
  const r = await post(s, completion([1, 104, 105]), headers);
  assert.equal(r.status, 200);
  await assertMatchesTeacher((await json(r)).choices[0], [1, 104, 105], K);
}

test('vLLM-format prompt_logprobs over HTTP equal the local teacher; /health and /v1/models', async () => {
  await withServer({}, async (s) => {
    assert.match(s.url, /^http:\/\/127\.0\.0\.1:\d+$/);
    const ids = [1, 72, 101, 108, 108, 111, 33, 2];
    const r = await post(s, completion(ids));
    assert.equal(r.status, 200);
    const body = await json(r);
    assert.equal(body.object, 'text_completion');
    assert.equal(body.model, 'tiny');
    assert.deepEqual(body.usage, { prompt_tokens: ids.length, total_tokens: ids.length, completion_tokens: 0 });
    await assertMatchesTeacher(body.choices[0], ids, K);
    const two = await json(await post(s, completion([ids, [1, 50]], 1)));
    assert.deepEqual(two.choices.map((c) => c.index), [0, 1]);
    await assertMatchesTeacher(two.choices[0], ids, 1);
    await assertMatchesTeacher(two.choices[1], [1, 50], 1);
    const lone = await json(await post(s, completion([5])));
    assert.deepEqual(lone.choices[0]!.prompt_logprobs, [null], 'one token: nothing to score');
    const zero = await json(await post(s, completion([1, 50, 51], 0)));
    assert.deepEqual(Object.keys(zero.choices[0]!.prompt_logprobs[1]!), ['50'], 'k = 0: the actual token only');
    assert.equal((await fetch(`${s.url}/health`)).status, 200);
    const models = await json(await fetch(`${s.url}/v1/models`));
    assert.equal(models.data[0].id, 'tiny');
    assert.equal(models.data[0].max_model_len, 64);
  });
});

test('oversized bodies get 413, bad ids and fields 400, unknown paths 404; the server keeps serving', async () => {
  await withServer({ maxBodyBytes: 4096 }, async (s) => {
    const big = completion(Array.from({ length: 3000 }, () => 1));
    let r = await post(s, big);
    assert.equal(r.status, 413);
    assert.match((await json(r)).message, /over the limit of 4096 bytes/);
    await assertServing(s);
    // No Content-Length (chunked): refused once the count passes the limit.
    const text = new TextEncoder().encode(JSON.stringify(big));
    const stream = new ReadableStream({ start: (c) => { for (let i = 0; i < text.length; i += 1000) c.enqueue(text.subarray(i, i + 1000)); c.close(); } });
    r = await fetch(`${s.url}/v1/completions`, { method: 'POST', body: stream, duplex: 'half' } as RequestInit);
    assert.equal(r.status, 413);
    await assertServing(s);

    const cases: Array<[unknown, RegExp]> = [
      [completion([1, 2.5]), /prompt\[1\] = 2\.5 is not a token id/],
      [completion([1, 264]), /prompt\[1\] = 264 is not a token id \(an integer in 0\.\.263\)/],
      [completion([1, -3]), /prompt\[1\] = -3/],
      [completion([1, '7' as unknown as number]), /prompt\[1\] = "7"/],
      [completion([]), /non-empty/],
      [completion([[1, 2], []]), /prompt\[1\] must be a non-empty array/],
      [completion(Array.from({ length: 65 }, () => 1)), /65 tokens; the limit is 64/],
      [{ ...completion([1, 2]), prompt: 'hello' }, /does not tokenize text/],
      [completion([1, 2], K + 1), /prompt_logprobs must be an integer in 0\.\.4/],
      [{ ...completion([1, 2]), max_tokens: 16 }, /max_tokens must be 0 or 1/],
      [{ ...completion([1, 2]), temperature: -1 }, /temperature must be a number >= 0/],
      ['{"prompt": [1, 2', /not valid JSON/],
    ];
    for (const [body, message] of cases) {
      r = await post(s, body);
      const err = await json(r);
      assert.equal(r.status, 400, JSON.stringify(body).slice(0, 80));
      assert.equal(err.object, 'error');
      assert.match(err.message, message);
      await assertServing(s);
    }
    r = await post(s, { ...completion([1, 2]), model: 'other' });
    assert.equal(r.status, 404);
    r = await fetch(`${s.url}/v1/chat/completions`, { method: 'POST', body: '{}' });
    assert.equal(r.status, 404);
    assert.equal((await fetch(`${s.url}/v1/completions`)).status, 405);
    await assertServing(s);
  });
});

test('bearer token: missing or wrong -> 401, right -> 200; /health stays open', async () => {
  await withServer({ token: 's3cret-token' }, async (s) => {
    for (const headers of [{} as Record<string, string>, { authorization: 'Bearer wrong' }, { authorization: 'Bearer s3cret-token-longer' }, { authorization: 's3cret-token' }]) {
      const r = await post(s, completion([1, 2, 3]), headers);
      assert.equal(r.status, 401, JSON.stringify(headers));
      assert.equal(r.headers.get('www-authenticate'), 'Bearer');
      assert.equal((await fetch(`${s.url}/v1/models`, { headers })).status, 401);
      await assertServing(s, { authorization: 'Bearer s3cret-token' });
    }
    assert.equal((await fetch(`${s.url}/health`)).status, 200);
  });
});

test('concurrent requests are answered correctly, scored in few teacher calls, /health answers meanwhile', async () => {
  // A window far longer than 8 concurrent requests take to arrive, even on a loaded machine.
  await withServer({ batchWindowMs: 2000 }, async (s) => {
    const prompts = Array.from({ length: 8 }, (_, i) => Array.from({ length: 5 + 3 * i }, (_, j) => 1 + ((i * 31 + j * 7) % 250)));
    const before = s.stats.runs;
    const answers = await Promise.all(prompts.map((p) => post(s, completion(p)).then(json)));
    const runs = s.stats.runs - before;
    assert.ok(runs <= 2, `8 concurrent requests took ${runs} teacher calls`);
    for (const [i, a] of answers.entries()) await assertMatchesTeacher(a.choices[0], prompts[i]!, K);
  });
  // /health is answered while the worker scores: checked by order (the teacher call settles after
  // the answer arrives), not by time. A blocked event loop would answer it only after the scoring.
  const order: string[] = [];
  let started!: () => void;
  const scoring = new Promise<void>((resolve) => (started = resolve));
  const watched: ServedTeacher = {
    identity: teacher.identity,
    tokenizer: teacher.tokenizer,
    maxSeqLen: teacher.maxSeqLen,
    topK: teacher.topK,
    get failure() {
      return teacher.failure;
    },
    score: (reqs, o) => (started(), teacher.score(reqs, o).finally(() => order.push('scoring'))),
  };
  const s = await TeacherServer.start(watched, { port: 0, modelName: 'tiny' });
  try {
    const long = Array.from({ length: 128 }, (_, i) => Array.from({ length: 64 }, (_, j) => (i + j) % 256));
    const slow = post(s, completion(long, 0)).then(json);
    await scoring; // the batch is in the worker now
    assert.equal((await fetch(`${s.url}/health`)).status, 200);
    order.push('health');
    assert.equal((await slow).choices.length, 128);
    assert.deepEqual(order, ['health', 'scoring'], '/health was answered only after the scoring');
  } finally {
    await s.close();
  }
});

test('batcher: one teacher call for jobs queued together; a failing batch is retried job by job', async () => {
  const calls: number[] = [];
  const fake = {
    topK: 3,
    failure: null,
    score: async (reqs: readonly TeacherRequest[], opts?: { topK?: number }) => {
      calls.push(reqs.length);
      if (reqs.some((r) => r.ids.includes(13))) throw new Error('unlucky id');
      return reqs.map((r) => ({ logprobs: r.ids.slice(1).map(() => -1), topIds: r.ids.slice(1).map(() => [1, 2, 3].slice(0, opts?.topK)), topLogprobs: r.ids.slice(1).map(() => [-1, -2, -3].slice(0, opts?.topK)) }));
    },
  } as unknown as ServedTeacher;
  const b = new Batcher(fake, 5, 100);
  const [a, bad, c] = await Promise.allSettled([b.submit([{ ids: [1, 2], start: 1 }], 1, undefined), b.submit([{ ids: [1, 13], start: 1 }], 3, undefined), b.submit([{ ids: [1, 2, 3], start: 1 }], 3, undefined)]);
  assert.deepEqual(calls, [3, 1, 1, 1], 'one call for all three, then each alone');
  assert.equal(a.status === 'fulfilled' && a.value[0]!.topIds![0]!.length, 1, 'top-k cut to what the job asked');
  assert.equal(c.status === 'fulfilled' && c.value[0]!.topIds![0]!.length, 3);
  assert.match(String(bad.status === 'rejected' && bad.reason), /unlucky id/);
});

test('binds loopback only unless allowed', async () => {
  for (const h of ['127.0.0.1', '127.1.2.3', '::1', '[::1]', 'localhost', '::ffff:127.0.0.1']) assert.ok(isLoopback(h), h);
  for (const h of ['0.0.0.0', '::', '10.0.0.5', '192.168.1.1', 'example.com']) assert.ok(!isLoopback(h), h);
  await assert.rejects(TeacherServer.start(teacher, { host: '0.0.0.0', port: 0 }), /refusing to listen on non-loopback address 0\.0\.0\.0/);
  await assert.rejects(TeacherServer.start(teacher, { port: 0, token: '' }), /token is empty/);
  await assert.rejects(TeacherServer.start(teacher, { port: 0, maxSeqLen: 65 }), /maxSeqLen 65 is more than the model takes \(64\)/);
});

test('opd teacher serve: prints the URL, serves with a token, exits 0 on SIGTERM', async () => {
  const tokenFile = join(root, 'token');
  writeFileSync(tokenFile, 'cli-token\n');
  const { child, url, exited, stderr } = await spawnTeacherServe(['--model', dir, '--port', '0', '--token-file', tokenFile, '--max-logprobs', '2', '--threads', '1']);
  try {
    const body = { model: dir, prompt: [1, 2, 3], max_tokens: 1, prompt_logprobs: 2 };
    const denied = await fetch(`${url}/v1/completions`, { method: 'POST', body: JSON.stringify(body) });
    assert.equal(denied.status, 401);
    const r = await fetch(`${url}/v1/completions`, { method: 'POST', body: JSON.stringify(body), headers: { authorization: 'Bearer cli-token' } });
    assert.equal(r.status, 200, await r.clone().text());
    assert.equal((await json(r)).choices[0].prompt_logprobs.length, 3);
  } finally {
    child.kill('SIGTERM');
  }
  assert.equal(await exited, 0, stderr());
});
