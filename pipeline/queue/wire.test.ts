// The queue's pieces without Redis: the URL → connection options (password, TLS pass through), the
// weights endpoint (bearer token, content hash verified), results (checksummed Arrow IPC) and job ids.

import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { hostTensor } from '../../engine/runtime/host.ts';
import { redactUrl, redisOptions } from './connection.ts';
import { WeightsCache, WeightsPublisher, weightBytes } from './weights.ts';
import { type RolloutJobData, completionsResult, jobId, readCompletions, readScores, scoresResult, teacherResult } from './wire.ts';
import { TeacherScoreError } from '../../teacher/types.ts';
import { SkipNotes, guardTeacher } from '../recipes/skip-guard.ts';

test('queue URLs: password, user, database and TLS pass through; other schemes are refused naming the URL', () => {
  const o = redisOptions('rediss://opd:s%40cret@redis.example:6380/2', { OPD_REDIS_CA: undefined });
  assert.equal(o.host, 'redis.example');
  assert.equal(o.port, 6380);
  assert.equal(o.username, 'opd');
  assert.equal(o.password, 's@cret');
  assert.equal(o.db, 2);
  assert.deepEqual(o.tls, { servername: 'redis.example' });
  assert.equal(o.maxRetriesPerRequest, null, 'BullMQ workers need ioredis to retry forever');
  const plain = redisOptions('redis://127.0.0.1:6390', {});
  assert.equal(plain.tls, undefined);
  assert.equal(plain.password, undefined);
  assert.throws(() => redisOptions('http://x:1', {}), /--queue http:\/\/x:1: scheme http: is not redis:/);
  assert.throws(() => redisOptions('redis://x:1/zero', {}), /database "zero" is not a number/);
  assert.equal(redactUrl('redis://:pw@h:1'), 'redis://:***@h:1');
});

const views = () => ({ 'a.weight': hostTensor('float32', [2, 2], new Float32Array([1, 2, 3, 4])), b: hostTensor('float32', [3], new Float32Array([0.5, -1, 7])) });

test('weights over HTTP: a bearer token is required, the worker gets the same floats, the hash names the content', async () => {
  const pub = await WeightsPublisher.open({ token: 'tok' });
  try {
    const ref = await pub.publish(views());
    assert.equal(ref.hash, weightBytes(views()).hash, 'the same weights, the same hash');
    assert.equal((await fetch(`${ref.url}/weights/${ref.hash}`)).status, 401);
    assert.equal((await fetch(`${ref.url}/weights/${ref.hash}`, { headers: { authorization: 'Bearer nope' } })).status, 401);
    const got = await new WeightsCache().get(ref);
    assert.deepEqual(Array.from(got['a.weight']!.data as Float32Array), [1, 2, 3, 4]);
    assert.deepEqual(got.b!.dims, [3]);
    // only the two newest are kept
    const v2 = views();
    (v2.b!.data as Float32Array)[0] = 9;
    const v3 = views();
    (v3.b!.data as Float32Array)[0] = 10;
    await pub.publish(v2);
    await pub.publish(v3);
    await assert.rejects(new WeightsCache().get(ref), /HTTP 404/);
  } finally {
    await pub.close();
  }
});

test('weights from a shared directory: bytes that do not hash to the name are refused', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'opd-weights-'));
  const pub = await WeightsPublisher.open({ dir });
  const ref = await pub.publish(views());
  assert.deepEqual(Array.from((await new WeightsCache().get(ref)).b!.data as Float32Array), [0.5, -1, 7]);
  const other = weightBytes({ b: hostTensor('float32', [1], new Float32Array([1])) });
  writeFileSync(join(dir, `${ref.hash}.safetensors`), other.bytes);
  await assert.rejects(new WeightsCache().get(ref), new RegExp(`weights ${ref.hash.slice(0, 12)} from ${dir}: the bytes hash to ${other.hash.slice(0, 12)}`));
  await pub.close();
});

test('results: Arrow IPC round trip at float32, and a damaged result is refused naming the job and the worker', () => {
  const c = [
    { tokens: [5, 6, 7], logprobs: [-0.1, -2.5, -0.75], truncated: true, finishReason: 'length' as const },
    { tokens: [], logprobs: [], truncated: false, finishReason: 'stop' as const },
  ];
  const r = completionsResult(c, 'host:1', 0.5);
  const back = readCompletions(r, 'rollout-1-x', 2);
  assert.deepEqual(back[0]!.tokens, [5, 6, 7]);
  assert.deepEqual(back[0]!.logprobs, [-0.1, -2.5, -0.75].map(Math.fround), 'float32, as the shard stores them');
  assert.deepEqual([back[0]!.finishReason, back[1]!.finishReason], ['length', 'stop']);
  const bytes = Buffer.from(r.ipc, 'base64');
  bytes[bytes.length - 20] ^= 1;
  assert.throws(() => readCompletions({ ...r, ipc: bytes.toString('base64') }, 'rollout-1-x', 2), /queue job rollout-1-x: result checksum \w+ ≠ \w+ sent by worker host:1/);
  assert.throws(() => readCompletions(r, 'rollout-1-x', 3), /expected \[tokens,logprobs,truncated\] × 3/);
  const s = scoresResult([{ logprobs: [-1, -2] }], 'h:2', 0);
  assert.deepEqual(readScores(s, 't', [{ ids: [1, 2, 3, 4], start: 2 }]), [{ logprobs: [-1, -2] }]);
  assert.throws(() => readScores(s, 't', [{ ids: [1, 2, 3], start: 2 }]), /request 0 has 2 teacher log-probs from worker h:2, expected 1/);
});

test('a job id is the hash of its data: the same data is one job, any change another', () => {
  const d: RolloutJobData = {
    kind: 'rollout', step: 3, prompts: [[1, 2]], seed: 7, model: { a: 1 }, runtime: { threads: 1 }, weights: { hash: 'ab', url: 'http://x', token: 't' },
    opts: { maxNewTokens: 4, temperature: 1, stopTokenIds: [0], padId: 0 },
  };
  assert.equal(jobId(d), jobId(structuredClone(d)));
  assert.match(jobId(d), /^rollout-3-[0-9a-f]{32}$/);
  assert.notEqual(jobId(d), jobId({ ...d, seed: 8 }));
  assert.notEqual(jobId(d), jobId({ ...d, weights: { ...d.weights, hash: 'ac' } }));
  assert.equal(jobId(d), jobId({ ...d, weights: { hash: 'ab', url: 'http://y:2', token: 'u' } }), 'a restarted controller (new URL and token) finds the jobs already done');
});

test('opd run queue flags: none is in-process; --weights-* need --queue; a shared dir or an endpoint, not both', async () => {
  const { queueOptions } = await import('../cli/commands/worker.ts');
  assert.equal(queueOptions({}), undefined);
  assert.deepEqual(queueOptions({ queue: 'redis://h:1' }), { url: 'redis://h:1', publish: {} });
  assert.deepEqual(queueOptions({ queue: 'redis://h:1', 'weights-listen': '0.0.0.0:8910', 'weights-url': 'http://c:8910' }), { url: 'redis://h:1', publish: { host: '0.0.0.0', port: 8910, advertise: 'http://c:8910' } });
  assert.deepEqual(queueOptions({ queue: 'redis://h:1', 'weights-dir': '/shared/w' }), { url: 'redis://h:1', publish: { dir: '/shared/w' } });
  assert.throws(() => queueOptions({ 'weights-dir': '/x' }), /need --queue/);
  assert.throws(() => queueOptions({ queue: 'redis://h:1', 'weights-dir': '/x', 'weights-listen': 'h:1' }), /not both/);
  assert.throws(() => queueOptions({ queue: 'redis://h:1', 'weights-listen': '8910' }), /--weights-listen 8910: give HOST:PORT/);
});

test('a teacher job whose teacher answers a non-finite log-prob comes back as that score error (the step is skipped, R7), other errors fail the job', async () => {
  const nan = new TeacherScoreError(1, 'log-prob at completion position 0 is NaN (must be a finite number ≤ 0)', true);
  const r = await teacherResult(async () => { throw nan; }, 'w:1', performance.now());
  assert.deepEqual(r.nonFinite, { request: 1, detail: 'log-prob at completion position 0 is NaN (must be a finite number ≤ 0)' });
  const reqs = [{ ids: [1, 2, 3], start: 1 }, { ids: [4, 5], start: 1 }];
  assert.throws(() => readScores(r, 'job-7', reqs), (e: unknown) => e instanceof TeacherScoreError && e.nonFinite && e.request === 1 && /position 0 is NaN.*worker w:1, queue job job-7/.test(e.message));
  // the same error through the loop's guard is a NaN row (the skip), not a stopped job
  const guarded = guardTeacher({ identity: { modelId: 'q', tokenizerFingerprint: 'f', vocabSize: 9 }, score: async (rs) => readScores(r, 'job-7', rs), close: async () => {} }, 'q', new SkipNotes());
  const out = await guarded.score(reqs);
  assert.ok(out.every((s) => s.logprobs.every(Number.isNaN)) && out[0]!.logprobs.length === 2);
  // any other error is the job's failure (retried, then the step fails naming it)
  await assert.rejects(teacherResult(async () => { throw new TeacherScoreError(0, 'expected 2 log-probs, got 1'); }, 'w:1', 0), /expected 2 log-probs/);
  const ok = await teacherResult(async () => [{ logprobs: [-0.5, -1] }, { logprobs: [-2] }], 'w:1', 0);
  assert.equal(ok.nonFinite, undefined);
  assert.deepEqual(readScores(ok, 'job-8', reqs).map((s) => s.logprobs), [[-0.5, -1], [-2]]);
});
