// The built train steps end to end through the engine's Trainer:
// - a policy step over micro-batches (split and trimmed by splitMicroBatches) gives the fused
//   step's update, loss and metrics, step after step (float64);
// - SFT on a toy copy task: the loss falls, and two identical runs give bit-identical weights.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Rng } from '../../engine/rng.ts';
import { Trainer } from '../../engine/train/trainer.ts';
import { type SftExample, packPolicyBatch, packSftBatch, splitMicroBatches } from './batch.ts';
import { TINY, asF32, maxRelDiff, randomRollouts, tinyWeights } from './fixtures.ts';
import { buildPolicyTrainStep, buildSftTrainStep } from './step.ts';

test('policy step: 3 micro-batches give the fused update, loss and metrics', async () => {
  const c = TINY.qwen3!;
  const spec = () => buildPolicyTrainStep(c, { dtype: 'float64', microBatches: true, weightDecay: 0.01, adamw: { maxGradNorm: 1 }, loss: { type: 'ppo', refKl: { beta: 0.05 }, distill: { coef: 0.3 } } });
  const fused = await Trainer.create(spec(), tinyWeights(c, 9), { threads: 1 });
  const accum = await Trainer.create(spec(), tinyWeights(c, 9), { threads: 1 });
  for (let step = 0; step < 3; step++) {
    const rollouts = randomRollouts(50 + step, 7, 6, 0); // includes empty completions now and then
    const feeds = packPolicyBatch(rollouts, { padId: 0, dtype: 'float64', aggregation: 'seq_mean_token_mean', temperature: 0.8 });
    const micro = splitMicroBatches(feeds, 3);
    assert.deepEqual(micro.map((m) => m.input_ids!.dims[0]), [3, 2, 2]);
    assert.ok(micro.some((m) => m.input_ids!.dims[1]! < feeds.input_ids!.dims[1]!), 'some micro-batch is trimmed');
    const a = await fused.step(feeds, 0.01);
    const b = await accum.step(micro, 0.01);
    assert.equal(a.skipped, false);
    for (const k of Object.keys(a.metrics)) assert.ok(maxRelDiff([b.metrics[k]!], [a.metrics[k]!]) < 1e-9, `step ${step} ${k}: ${b.metrics[k]} vs ${a.metrics[k]}`);
  }
  const [pa, pb] = [fused.params(), accum.params()];
  for (const k of Object.keys(pa)) assert.ok(maxRelDiff(pb[k]!, pa[k]!) < 1e-8, `${k}: ${maxRelDiff(pb[k]!, pa[k]!)}`);
  await fused.release();
  await accum.release();
});

/** Copy task: prompt [1, x1..x4, 2], completion [x1..x4, 3] over 8 symbols. */
function copyExamples(seed: number, n: number): SftExample[] {
  const rng = new Rng(seed);
  return Array.from({ length: n }, () => {
    const xs = Array.from({ length: 4 }, () => 10 + rng.int(8));
    return { promptIds: [1, ...xs, 2], completionIds: [...xs, 3] };
  });
}

async function trainSft(steps: number) {
  const c = TINY.qwen2!;
  const trainer = await Trainer.create(buildSftTrainStep(c, { weightDecay: 0.01, adamw: { maxGradNorm: 1 } }), asF32(tinyWeights(c, 4)), { threads: 1 });
  const batch = packSftBatch(copyExamples(8, 24), { padId: 0 });
  const losses: number[] = [];
  for (let i = 0; i < steps; i++) losses.push((await trainer.step(batch, 0.01)).loss);
  const params = trainer.params();
  await trainer.release();
  return { losses, params };
}

test('SFT: the loss falls on a toy copy task; two identical runs are bit-identical', async () => {
  const r1 = await trainSft(60);
  const first = r1.losses[0]!;
  const last = r1.losses.slice(-5).reduce((a, b) => a + b, 0) / 5;
  assert.ok(first > 4, `initial loss ${first} should be near ln 300 ≈ 5.7 or above`);
  assert.ok(last < 0.5, `loss should fall well below chance on the copied tokens (ln 8 ≈ 2.1): ${first} -> ${last}`);
  const r2 = await trainSft(60);
  for (const k of Object.keys(r1.params)) assert.ok(Buffer.from(r1.params[k]!.buffer).equals(Buffer.from(r2.params[k]!.buffer)), `${k} differs between identical runs`);
});
