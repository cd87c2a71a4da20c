// End-to-end training through one emitted train-step graph: a two-layer MLP and a one-block causal
// transformer learn fixed toy tasks, and the same run twice gives bit-identical weights.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Graph } from '../index.ts';
import { Rng } from '../rng.ts';
import { hostTensor } from '../runtime/host.ts';
import { type BlockConfig, mlpClassifier, tinyLM } from '../testing/toy.ts';
import { finishTrainStep } from './graph.ts';
import { type ParamValues, Trainer } from './trainer.ts';

/** 3-class labels from a fixed random linear map of 4-d inputs (learnable by the MLP). */
function mlpData(rng: Rng, n: number) {
  const x = new Float32Array(n * 4).map(() => rng.normal());
  const w = [[1, -1, 0.5, 0], [0, 1, -1, 0.5], [-0.5, 0, 1, -1]];
  const y = new BigInt64Array(n);
  for (let i = 0; i < n; i++) {
    const s = w.map((row) => row.reduce((acc, wj, j) => acc + wj * x[i * 4 + j]!, 0));
    y[i] = BigInt(s.indexOf(Math.max(...s)));
  }
  return { x: hostTensor('float32', [n, 4], x), y: hostTensor('int64', [n], y) };
}

async function trainMlp(seed: number, steps: number) {
  const g = new Graph('mlp');
  const m = mlpClassifier(g, 4, 32, 3);
  const trainer = await Trainer.create(finishTrainStep(g, m.loss, { adamw: { maxGradNorm: 1 } }), m.init(new Rng(seed)), { threads: 1 });
  const data = mlpData(new Rng(1234), 128);
  const losses: number[] = [];
  for (let i = 0; i < steps; i++) losses.push((await trainer.step(data, 0.03)).loss);
  const params = trainer.params();
  await trainer.release();
  return { losses, params };
}

/** Sequences a b c d a b c d over a vocabulary of 8: the second half is only predictable by attention. */
function copyBatch(rng: Rng, b: number) {
  const t = 8;
  const ids = new BigInt64Array(b * t);
  const labels = new BigInt64Array(b * t);
  const mask = new Float32Array(b * t);
  const pos = new BigInt64Array(b * t);
  for (let i = 0; i < b; i++) {
    const head = [0, 1, 2, 3].map(() => rng.int(8));
    const seq = [...head, ...head];
    for (let j = 0; j < t; j++) {
      ids[i * t + j] = BigInt(seq[j]!);
      labels[i * t + j] = BigInt(seq[(j + 1) % t]!);
      mask[i * t + j] = j >= 3 && j < 7 ? 1 : 0; // predict tokens 4..7 from what came before
      pos[i * t + j] = BigInt(j);
    }
  }
  return {
    input_ids: hostTensor('int64', [b, t], ids),
    labels: hostTensor('int64', [b, t], labels),
    loss_mask: hostTensor('float32', [b, t], mask),
    position_ids: hostTensor('int64', [b, t], pos),
  };
}

const blockCfg: BlockConfig = { dModel: 32, heads: 4, kvHeads: 2, ffn: 64, ropeTheta: 10000, eps: 1e-6 };

async function trainTransformer(seed: number, steps: number) {
  const g = new Graph('tiny-lm');
  const m = tinyLM(g, 8, blockCfg);
  const trainer = await Trainer.create(finishTrainStep(g, m.loss, { adamw: { maxGradNorm: 1 } }), m.init(new Rng(seed)), { threads: 1 });
  const rng = new Rng(seed + 1);
  const losses: number[] = [];
  for (let i = 0; i < steps; i++) losses.push((await trainer.step(copyBatch(rng, 32), 0.01)).loss);
  const params = trainer.params();
  await trainer.release();
  return { losses, params };
}

const tail = (xs: number[], k: number) => xs.slice(-k).reduce((a, b) => a + b, 0) / k;

function assertBitIdentical(a: ParamValues, b: ParamValues) {
  assert.deepEqual(Object.keys(a).sort(), Object.keys(b).sort());
  for (const k of Object.keys(a)) assert.ok(Buffer.from(a[k]!.buffer).equals(Buffer.from(b[k]!.buffer)), `parameter ${k} differs between identical runs`);
}

test('a two-layer MLP learns a 3-class linear task; two runs are bit-identical', async () => {
  const r1 = await trainMlp(7, 150);
  assert.ok(r1.losses[0]! > 0.8, `initial loss ${r1.losses[0]} should be near ln 3`);
  assert.ok(tail(r1.losses, 5) < 0.15, `final loss ${tail(r1.losses, 5)} should be < 0.15`);
  const r2 = await trainMlp(7, 150);
  assertBitIdentical(r1.params, r2.params);
});

test('a one-block causal transformer learns to copy with attention; two runs are bit-identical', async () => {
  const r1 = await trainTransformer(3, 150);
  assert.ok(r1.losses[0]! > 1.8, `initial loss ${r1.losses[0]} should be near ln 8 = 2.08`);
  assert.ok(tail(r1.losses, 10) < 0.3, `final loss ${tail(r1.losses, 10)} should be < 0.3 (chance is 2.08)`);
  const r2 = await trainTransformer(3, 150);
  assertBitIdentical(r1.params, r2.params);
});
