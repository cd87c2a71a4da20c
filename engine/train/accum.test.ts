// Gradient accumulation: the grad + apply graphs over micro-batches give the fused step's update
// (to float tolerance), combine metrics per their declared mode, and a non-finite micro-batch skips
// the whole step with parameters and moments bit-identical and the accumulators reset.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type Graph, abs, linear, mul, reduceMax, sub, sumAll, tanh } from '../index.ts';
import { Rng } from '../rng.ts';
import { type HostTensor, hostTensor } from '../runtime/host.ts';
import { buildTrainStep, param } from './graph.ts';
import { type Batch, Trainer } from './trainer.ts';

/** Weighted squared error Σ wt·(f(x) − y)²: with wt = 1/N_total the micro-batch losses sum to the batch loss. */
const objective = (g: Graph) => {
  const dtype = 'float64';
  const w1 = param(g, 'w1', [8, 4], { weightDecay: 0.1, dtype });
  const b1 = param(g, 'b1', [8], { dtype });
  const w2 = param(g, 'w2', [1, 8], { weightDecay: 0.1, dtype });
  const x = g.input('x', ['N', 4], dtype); // [N, 4]
  const y = g.input('y', ['N', 1], dtype); // [N, 1]
  const wt = g.input('wt', ['N', 1], dtype); // [N, 1]
  const err = sub(linear(tanh(linear(x, w1, b1)), w2), y); // [N, 1]
  return {
    loss: sumAll(mul(mul(err, err), wt)),
    metrics: { err_max: { value: reduceMax(abs(err), [0, 1]), combine: 'max' as const }, weight_sum: { value: sumAll(wt), combine: 'sum' as const } },
  };
};

function init(seed: number) {
  const rng = new Rng(seed);
  const arr = (n: number, s: number) => Float64Array.from({ length: n }, () => rng.normal() * s);
  return { w1: arr(32, 0.5), b1: arr(8, 0.1), w2: arr(8, 0.5) };
}

function data(seed: number, n: number): Batch {
  const rng = new Rng(seed);
  const x = Float64Array.from({ length: n * 4 }, () => rng.normal());
  const y = Float64Array.from({ length: n }, (_, i) => Math.sin(x[i * 4]!) + 0.5 * x[i * 4 + 1]!);
  return { x: hostTensor('float64', [n, 4], x), y: hostTensor('float64', [n, 1], y), wt: hostTensor('float64', [n, 1], new Float64Array(n).fill(1 / n)) };
}

/** Rows [lo, hi) of every tensor of a batch. */
function rows(b: Batch, lo: number, hi: number): Batch {
  const out: Batch = {};
  for (const [k, t] of Object.entries(b)) {
    const w = t.dims.slice(1).reduce((a, c) => a * c, 1);
    out[k] = hostTensor(t.dtype, [hi - lo, ...t.dims.slice(1)], t.data.slice(lo * w, hi * w) as Float64Array);
  }
  return out;
}

const spec = () => buildTrainStep(objective, { name: 'accum-test', microBatches: true, adamw: { maxGradNorm: 0.3 } });
const bytes = (t: HostTensor) => Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength);

test('2 micro-batches give the same update as one batch of both (clipping active)', async () => {
  const fused = await Trainer.create(spec(), init(1), { threads: 1 });
  const accum = await Trainer.create(spec(), init(1), { threads: 1 });
  for (let s = 0; s < 3; s++) {
    const batch = data(10 + s, 12);
    const a = await fused.step(batch, 0.05);
    const b = await accum.step([rows(batch, 0, 5), rows(batch, 5, 12)], 0.05);
    assert.ok(a.gradNorm > 0.3, 'clipping is active');
    for (const k of ['loss', 'grad_norm', 'err_max', 'weight_sum', 'skipped'])
      assert.ok(Math.abs(a.metrics[k]! - b.metrics[k]!) <= 1e-12 * Math.max(1, Math.abs(a.metrics[k]!)), `step ${s} ${k}: ${a.metrics[k]} vs ${b.metrics[k]}`);
    assert.deepEqual(Object.keys(b.metrics), ['loss', 'grad_norm', 'skipped', 'err_max', 'weight_sum']);
  }
  const sa = fused.exportState();
  const sb = accum.exportState();
  assert.equal(sa.t, 3);
  assert.equal(sb.t, 3);
  for (const [name, t] of Object.entries(sa.tensors)) {
    const u = sb.tensors[name]!.data as Float64Array;
    (t.data as Float64Array).forEach((x, i) => assert.ok(Math.abs(x - u[i]!) <= 1e-11 * Math.max(1, Math.abs(x)), `${name}[${i}]: ${x} vs ${u[i]}`));
  }
  await fused.release();
  await accum.release();
});

test('a NaN in one micro-batch skips the whole step: weights and moments bit-identical, accumulators reset', async () => {
  const tr = await Trainer.create(spec(), init(2), { threads: 1 });
  const ref = await Trainer.create(spec(), init(2), { threads: 1 });
  const warm = data(20, 8);
  await tr.step([rows(warm, 0, 4), rows(warm, 4, 8)], 0.05);
  await ref.step([rows(warm, 0, 4), rows(warm, 4, 8)], 0.05);
  const before = tr.exportState();
  const bad = data(21, 8);
  (bad.x!.data as Float64Array)[6 * 4 + 2] = NaN;
  const r = await tr.step([rows(bad, 0, 4), rows(bad, 4, 8)], 0.05);
  assert.equal(r.skipped, true);
  assert.equal(tr.t, 1);
  assert.equal(tr.skippedTotal, 1);
  const after = tr.exportState();
  for (const [name, t] of Object.entries(before.tensors)) assert.ok(bytes(t).equals(bytes(after.tensors[name]!)), `${name} changed by a skipped step`);
  // The next good step matches a trainer that never saw the bad batch, bit for bit.
  const good = data(22, 8);
  await tr.step([rows(good, 0, 3), rows(good, 3, 8)], 0.05);
  await ref.step([rows(good, 0, 3), rows(good, 3, 8)], 0.05);
  const [x, y] = [tr.exportState(), ref.exportState()];
  for (const [name, t] of Object.entries(x.tensors)) assert.ok(bytes(t).equals(bytes(y.tensors[name]!)), `${name} differs after recovering`);
  await tr.release();
  await ref.release();
});

test('micro-batches need the accumulation graphs', async () => {
  const tr = await Trainer.create(buildTrainStep(objective), init(3), { threads: 1 });
  const b = data(30, 4);
  await assert.rejects(tr.step([rows(b, 0, 2), rows(b, 2, 4)], 0.01), /microBatches: true/);
  const one = await tr.step([b], 0.01); // a one-element array is the fused path
  assert.equal(one.skipped, false);
  await tr.release();
});

test('a micro-batch that fails to run leaves no partial sums behind', async () => {
  const tr = await Trainer.create(spec(), init(4), { threads: 1 });
  const ref = await Trainer.create(spec(), init(4), { threads: 1 });
  const b = data(40, 6);
  const { y: _y, ...broken } = rows(b, 3, 6);
  await assert.rejects(tr.step([rows(b, 0, 3), broken], 0.05), /missing feed/);
  assert.equal(tr.t, 0);
  await tr.step([rows(b, 0, 3), rows(b, 3, 6)], 0.05);
  await ref.step([rows(b, 0, 3), rows(b, 3, 6)], 0.05);
  const [x, y] = [tr.exportState(), ref.exportState()];
  for (const [name, t] of Object.entries(x.tensors)) assert.ok(bytes(t).equals(bytes(y.tensors[name]!)), `${name} differs after a failed step`);
  await tr.release();
  await ref.release();
});
