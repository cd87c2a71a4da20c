// The local teacher against the student's own Scorer on the same weights; the ONNX causal-LM path
// against the model directory (the .onnx is our own full-logits forward graph with the weights as
// initializers); refusals and worker failures; and the main thread's event loop during a long scoring.

import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { Worker } from 'node:worker_threads';
import { loadTokenizer } from '../data/tokenizer/hf.ts';
import { Graph, type Tensor, add, emitOnnx, matmul, mul, sumAll, transpose } from '../engine/index.ts';
import { tensorShapes } from '../student/model/config.ts';
import { initModelDir, tinyConfig } from '../student/model/init.ts';
import { attentionBias, decoder, lmHead } from '../student/model/lm.ts';
import { weightFeeds } from '../student/model/runner.ts';
import { Scorer, type ScoreResult } from '../student/model/scorer.ts';
import type { ModelDir } from '../student/model/weights.ts';
import { LocalTeacher, modelIdOf } from './local.ts';
import { OnnxLm } from './onnx-lm.ts';
import type { TeacherScore } from './types.ts';

const root = mkdtempSync(join(tmpdir(), 'opd-local-teacher-'));
const REQS = [
  { ids: [1, 72, 101, 108, 108, 111, 2], start: 3 },
  { ids: [1, 50, 43, 51, 61], start: 1 },
  { ids: [1, 9], start: 2 }, // nothing to score
  { ids: Array.from({ length: 40 }, (_, i) => (i * 37) % 256), start: 20 },
];
let model: ModelDir;
let teacher: LocalTeacher;

before(async () => {
  model = await initModelDir(join(root, 'm'), tinyConfig(), 7);
  teacher = await LocalTeacher.open(model.dir, { topK: 5, threads: 1 });
});
after(() => teacher.close());

async function scorerResults(temperature: number, topK = 5): Promise<ScoreResult[]> {
  const feeds = weightFeeds(model.config, model.weights);
  const s = await Scorer.create(model.config, () => feeds, { topK, temperature, threads: 1 });
  try {
    return await s.score(REQS);
  } finally {
    await s.release();
  }
}

function assertClose(got: readonly TeacherScore[], want: readonly ScoreResult[], k: number, tol = 1e-5): void {
  assert.equal(got.length, want.length);
  got.forEach((g, i) => {
    const w = want[i]!;
    assert.equal(g.logprobs.length, w.logprobs.length, `request ${i} length`);
    g.logprobs.forEach((x, t) => assert.ok(Math.abs(x - w.logprobs[t]!) <= tol, `request ${i} position ${t}: ${x} vs ${w.logprobs[t]}`));
    if (!k) return;
    assert.deepEqual(g.topIds, w.topIds!.map((r) => r.slice(0, k)), `request ${i} top ids`);
    g.topLogprobs!.forEach((row, t) => row.forEach((x, j) => assert.ok(Math.abs(x - w.topLogprobs![t]![j]!) <= tol, `request ${i} top ${t},${j}`)));
  });
}

test('local teacher scores equal the student Scorer on the same weights (log-probs, top-k, temperature)', async () => {
  assertClose(await teacher.score(REQS, { topK: 5 }), await scorerResults(1), 5);
  assertClose(await teacher.score(REQS, { topK: 2, temperature: 0.5 }), await scorerResults(0.5), 2);
  // A lone one-token sequence has nothing to score and must not reach ORT (TopK over an empty tensor aborts the process).
  assert.deepEqual(await teacher.score([{ ids: [7], start: 1 }], { topK: 5 }), [{ logprobs: [], topIds: [], topLogprobs: [] }]);
  const plain = await teacher.score(REQS);
  assert.equal(plain[0]!.topIds, undefined, 'no top-k unless asked');
  assert.equal(teacher.mode, 'scorer');
});

test('identity: sampled content hash, tokenizer fingerprint, vocabulary size', async () => {
  const id = teacher.identity;
  assert.match(id.modelId, /^local:[0-9a-f]{64}$/);
  assert.equal(modelIdOf(model.dir, 'dir'), id.modelId, 'stable');
  const other = await initModelDir(join(root, 'other'), tinyConfig(), 8); // same architecture and sizes
  assert.notEqual(modelIdOf(other.dir, 'dir'), id.modelId, 'other weights, other id');
  assert.equal(id.tokenizerFingerprint, (await loadTokenizer(model.dir)).fingerprint());
  assert.equal(id.vocabSize, model.config.vocabSize);
  assert.equal(teacher.maxSeqLen, model.config.maxPositionEmbeddings);
});

/** Our model's full-logits forward graph as a standalone ONNX causal LM (weights as initializers). */
function writeOnnxLm(file: string, m: ModelDir, opts: { past?: boolean; extraInput?: string; batch?: number } = {}): void {
  const c = m.config;
  const g = new Graph('causal_lm');
  const b = opts.batch ?? 'B';
  const ids = g.input('input_ids', [b, 'T'], 'int64');
  const mask = g.input('attention_mask', [b, 'T'], 'int64');
  const positions = g.input('position_ids', [b, 'T'], 'int64');
  const p: Record<string, Tensor> = {};
  for (const [name, shape] of tensorShapes(c)) p[name] = g.constant(m.weights.get(name)!, shape, 'float32');
  const { hidden } = decoder(c, p, { ids, positions, bias: attentionBias(mask, 'T', 'T') });
  let logits = matmul(hidden, transpose(lmHead(c, p), [1, 0])); // [B, T, V]
  // Empty-past inputs as HF exports declare them. Our decoder cannot take a symbolic past length
  // beside a causal mask, so they enter as sum(past)·0 (0 when past is empty): enough to prove
  // they are found, shaped [B, Hkv, 0, Dh] from the metadata and fed.
  const extra = [
    ...(opts.past ? [0, 1].flatMap((i) => ['key', 'value'].map((kv) => g.input(`past_key_values.${i}.${kv}`, [b, c.numKvHeads, 'P', c.headDim])))
      : []),
    ...(opts.extraInput ? [g.input(opts.extraInput, [b, 'T'])] : []),
  ];
  for (const x of extra) logits = add(logits, mul(sumAll(x), 0));
  g.output('logits', logits);
  writeFileSync(file, emitOnnx(g));
}

test('an ONNX causal-LM file (input_ids, mask, positions, empty past -> logits) scores like the model directory', async () => {
  const file = join(root, 'lm.onnx');
  writeOnnxLm(file, model, { past: true });
  const onnx = await LocalTeacher.open(file, { topK: 5, tokenizer: model.dir, threads: 1 });
  try {
    assert.equal(onnx.mode, 'fused', 'log-softmax and gather spliced into the LM graph');
    assert.equal(onnx.identity.vocabSize, model.config.vocabSize);
    assert.equal(onnx.identity.tokenizerFingerprint, teacher.identity.tokenizerFingerprint);
    assert.notEqual(onnx.identity.modelId, teacher.identity.modelId);
    const want = await scorerResults(1);
    assertClose(await onnx.score(REQS, { topK: 5 }), want, 5);
    assertClose(await onnx.score(REQS, { topK: 3, temperature: 0.5 }), await scorerResults(0.5), 3);
  } finally {
    await onnx.close();
  }
  const two = await OnnxLm.open(file, { topK: 5, fuse: false, threads: 1 }); // the fallback path, in this thread
  try {
    assert.equal(two.mode, 'two-session');
    assertClose(await two.score(REQS), await scorerResults(1), 5);
    assert.deepEqual(await two.score([{ ids: [7], start: 1 }]), [{ logprobs: [], topIds: [], topLogprobs: [] }]);
  } finally {
    await two.release();
  }
  const single = join(root, 'batch1.onnx'); // exports with a fixed batch of 1 are scored one row per run
  writeOnnxLm(single, model, { past: true, batch: 1 });
  const one = await OnnxLm.open(single, { topK: 5, threads: 1 });
  try {
    assertClose(await one.score(REQS), await scorerResults(1), 5);
  } finally {
    await one.release();
  }
  const odd = join(root, 'odd.onnx');
  writeOnnxLm(odd, model, { extraInput: 'token_type_ids' });
  await assert.rejects(OnnxLm.open(odd), /odd\.onnx: unsupported input\(s\) token_type_ids/);
});

test('bad requests and bad models are refused naming the model; a dead worker fails calls at once', async () => {
  await assert.rejects(teacher.score([{ ids: [1, 999], start: 1 }]), new RegExp(`local teacher ${model.dir}: request 0: token id 999 at position 1 is outside the vocabulary`));
  await assert.rejects(teacher.score([{ ids: [1, 2], start: 0 }]), /start 0 outside 1\.\.2/);
  await assert.rejects(teacher.score(REQS, { topK: 6 }), /top-6 asked, but the teacher was opened with topK 5/);
  const missing = join(root, 'nope');
  await assert.rejects(LocalTeacher.open(missing), (e: Error) => e.message.startsWith(`local teacher ${missing}: `) && /does not exist/.test(e.message));
  const bare = join(mkdtempSync(join(root, 'bare-')), 'lm.onnx'); // loads, but no tokenizer beside it
  writeOnnxLm(bare, model);
  await assert.rejects(LocalTeacher.open(bare), /lm\.onnx: cannot load a tokenizer from .*; pass the tokenizer directory/);

  // A crash reported while a score is in flight: the caller gets the error, not a hang. (The event
  // is emitted by hand: terminating a worker inside an ORT call aborts the whole process.)
  const doomed = await LocalTeacher.open(model.dir, { threads: 1 });
  const worker = (doomed as unknown as { worker: Worker }).worker;
  const long = Array.from({ length: 8 }, () => ({ ids: Array.from({ length: 300 }, (_, i) => i % 256), start: 1 }));
  const idle = new Promise((r) => worker.once('message', r)); // the in-flight answer, ignored once dead
  const pending = doomed.score(long);
  worker.emit('error', new Error('simulated native crash'));
  await assert.rejects(pending, new RegExp(`local teacher ${model.dir}: worker crashed: simulated native crash`));
  const t0 = Date.now();
  await assert.rejects(doomed.score(REQS), /worker crashed/);
  assert.ok(Date.now() - t0 < 100, 'fails at once');
  await idle;
  await worker.terminate(); // idle now, so safe
  await doomed.close(); // no-op on a dead worker, no hang

  // A worker that exits by itself (here: while idle).
  const gone = await LocalTeacher.open(model.dir, { threads: 1 });
  await (gone as unknown as { worker: Worker }).worker.terminate();
  await assert.rejects(gone.score(REQS), /worker exited unexpectedly \(code 1\)/);
  assert.match(String(gone.failure?.message), new RegExp(`local teacher ${model.dir}`));
});

/** Runs `work` while a 5 ms interval timer ticks; returns the longest gap between ticks and the run time. */
async function timerGaps(work: () => Promise<unknown>): Promise<{ maxGap: number; took: number; ticks: number }> {
  let [ticks, maxGap, last] = [0, 0, performance.now()];
  const timer = setInterval(() => {
    const now = performance.now();
    [maxGap, last] = [Math.max(maxGap, now - last), now];
    ticks++;
  }, 5);
  const t0 = performance.now();
  try {
    await work();
  } finally {
    clearInterval(timer);
  }
  return { maxGap, took: performance.now() - t0, ticks };
}

test('the main thread keeps running timers while the worker scores', async (t) => {
  // What is promised is that the event loop is free while the worker scores, so timers fire
  // during the scoring. Ticks are counted, not timed (a loaded machine stretches every gap): a
  // main thread blocked for the whole scoring would see none.
  const long = Array.from({ length: 24 }, () => ({ ids: Array.from({ length: 500 }, (_, i) => (i * 7) % 256), start: 1 }));
  const { maxGap, took, ticks } = await timerGaps(() => teacher.score(long));
  t.diagnostic(`worker: scoring ${took.toFixed(0)} ms, ${ticks} ticks, longest gap ${maxGap.toFixed(1)} ms`);
  assert.ok(ticks >= 5, `only ${ticks} timer ticks during ${took.toFixed(0)} ms of scoring in the worker`);
  // Control: the same sequences in one ONNX Runtime run on this thread: no timer fires during it,
  // so the check above can fail.
  const feeds = weightFeeds(model.config, model.weights);
  const s = await Scorer.create(model.config, () => feeds, { threads: 1, batchTokens: 1 << 20 });
  const here = await timerGaps(() => s.score(long)).finally(() => s.release());
  t.diagnostic(`main thread: scoring ${here.took.toFixed(0)} ms, ${here.ticks} ticks, longest gap ${here.maxGap.toFixed(1)} ms`);
  assert.ok(here.ticks <= 2, `control: ${here.ticks} ticks while one run blocked this thread`);
});
