// Reproducible teacher scores (docs/reliability.md, "reproducible HTTP scoring"): a sequence's score
// does not depend on which other sequences share a teacher call, in which order, or how the teacher
// server grouped concurrent HTTP requests. The model is big enough and runs on 2 ONNX Runtime
// threads, where packing sequences into one run changed log-probs by 1 ulp (issue 13 item 4).

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { initModelDir, tinyConfig } from '../student/model/init.ts';
import { tinyRunConfig } from '../pipeline/recipes/tiny-job.ts';
import { opd } from '../pipeline/cli/opd-bin.ts';
import { HttpTeacher } from './http.ts';
import { spawnTeacherServe } from './serve-child.ts';
import { LocalTeacher } from './local.ts';
import { TeacherServer } from './server.ts';
import type { TeacherRequest, TeacherScore } from './types.ts';

const root = mkdtempSync(join(tmpdir(), 'opd-reproducible-'));
const BIG = { hidden_size: 256, intermediate_size: 688, num_hidden_layers: 4, num_attention_heads: 8, num_key_value_heads: 4, max_position_embeddings: 128 };
const K = 3;
const REQS: TeacherRequest[] = Array.from({ length: 12 }, (_, i) => ({ ids: Array.from({ length: 14 + ((i * 23) % 50) }, (_, j) => 1 + ((i * 31 + j * 7) % 250)), start: 1 + (i % 5) }));
let dir: string;
let teacher: LocalTeacher;

before(async () => {
  dir = (await initModelDir(join(root, 'teacher'), tinyConfig(BIG), 5)).dir;
  teacher = await LocalTeacher.open(dir, { topK: K, threads: 2 });
});
after(() => teacher.close());

/** The same scores bit for bit (log-probs, top-k ids and log-probs), request by request. */
function assertSameBits(got: readonly TeacherScore[], want: readonly TeacherScore[], what: string): void {
  assert.equal(got.length, want.length);
  got.forEach((g, i) => {
    const diff = g.logprobs.findIndex((x, t) => !Object.is(x, want[i]!.logprobs[t]));
    assert.equal(diff, -1, `${what}: request ${i} position ${diff}: ${g.logprobs[diff]} vs ${want[i]!.logprobs[diff]}`);
    assert.deepEqual(g, want[i], `${what}: request ${i}`);
  });
}

const shuffled = <T>(xs: readonly T[], seed: number): number[] => {
  const order = xs.map((_, i) => i);
  for (let i = order.length - 1, s = seed; i > 0; i--) {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    const j = s % (i + 1);
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  return order;
};

/** Score REQS in the given order (one call, or one call per chunk of `chunk`) and put the answers back in REQS order. */
async function scoreIn(t: { score(r: readonly TeacherRequest[], o: { topK: number }): Promise<TeacherScore[]> }, order: number[], chunk = order.length): Promise<TeacherScore[]> {
  const out: TeacherScore[] = new Array(REQS.length);
  for (let at = 0; at < order.length; at += chunk) {
    const part = order.slice(at, at + chunk);
    (await t.score(part.map((i) => REQS[i]!), { topK: K })).forEach((s, n) => (out[part[n]!] = s));
  }
  return out;
}

test('local teacher: a sequence scores the same bits alone, beside others, in any order or grouping', async () => {
  const alone = await scoreIn(teacher, REQS.map((_, i) => i), 1);
  assertSameBits(await scoreIn(teacher, REQS.map((_, i) => i)), alone, 'all in one call');
  assertSameBits(await scoreIn(teacher, shuffled(REQS, 1)), alone, 'shuffled, one call');
  assertSameBits(await scoreIn(teacher, shuffled(REQS, 2), 5), alone, 'shuffled, calls of 5');
  // the same ids twice in one call (the cache's misses can be any subset)
  const twice = await teacher.score([REQS[3]!, REQS[3]!, REQS[7]!], { topK: K });
  assertSameBits(twice, [alone[3]!, alone[3]!, alone[7]!], 'duplicates in one call');
});

test('teacher server: the same requests at concurrency 1 and 8, in any order, give bit-identical scores', async (t) => {
  // a long window so that concurrent requests really share teacher calls
  const server = await TeacherServer.start(teacher, { port: 0, modelName: 'big', batchWindowMs: 40 });
  const identity = { tokenizerFingerprint: teacher.identity.tokenizerFingerprint, vocabSize: teacher.identity.vocabSize };
  const client = (concurrency: number) => new HttpTeacher({ url: server.url, model: 'big', flavor: 'vllm', concurrency, identity });
  try {
    const serial = client(1);
    const want = await scoreIn(serial, REQS.map((_, i) => i));
    await serial.close();
    assertSameBits(want, await scoreIn(teacher, REQS.map((_, i) => i), 1), 'concurrency 1 vs the local teacher alone');
    for (const seed of [0, 3, 4]) {
      const c = client(8);
      const runs = server.stats.runs;
      const order = seed ? shuffled(REQS, seed) : REQS.map((_, i) => i).reverse();
      assertSameBits(await scoreIn(c, order), want, `concurrency 8, order ${order.join(',')}`);
      t.diagnostic(`concurrency 8: ${REQS.length} requests in ${server.stats.runs - runs} teacher calls`);
      await c.close();
    }
  } finally {
    await server.close();
  }
});

/** `opd teacher serve` on the big model (2 threads) in a child process; resolves with its URL and a stop function. */
async function serve(model: string): Promise<{ url: string; stop(): Promise<number | null> }> {
  const { child, url, exited } = await spawnTeacherServe(['--model', model, '--port', '0', '--threads', '2', '--max-logprobs', '0']);
  return { url, stop: () => (child.kill('SIGTERM'), exited as Promise<number | null>) };
}

test('opd run with an `opd teacher serve` teacher: concurrency 1, 8 and 8 again give identical checkpoint bytes', { timeout: 600_000 }, async () => {
  const student = (await initModelDir(join(root, 'student'), tinyConfig({ hidden_size: 32, intermediate_size: 64 }), 2)).dir;
  const server = await serve(dir);
  try {
    const weights: Buffer[] = [];
    for (const [name, concurrency] of [['c1', 1], ['c8a', 8], ['c8b', 8]] as const) {
      const base = tinyRunConfig(join(root, name), { teacher: dir, student }, { run: { name, steps: 2, checkpointEvery: 2, evalPrompts: 2 }, rollout: { maxNewTokens: 24 } });
      const config = { ...base, teachers: [{ id: 't', kind: 'http', url: server.url, servedModel: dir, flavor: 'vllm', concurrency }] };
      writeFileSync(join(root, `${name}.json`), JSON.stringify(config));
      const r = await opd('run', join(root, `${name}.json`));
      assert.equal(r.code, 0, r.stderr);
      weights.push(readFileSync(join(root, name, 'runs', name, 'checkpoints', 'step-000002', 'model', 'model.safetensors')));
    }
    assert.ok(weights[0]!.equals(weights[1]!), 'concurrency 8 gave other weights than concurrency 1');
    assert.ok(weights[1]!.equals(weights[2]!), 'concurrency 8 twice gave different weights');
  } finally {
    assert.equal(await server.stop(), 0);
  }
});
