// The layered train step against the fused one (an independent code path: one autodiff graph over
// the whole model), in float64 so agreement is to rounding, not to float32 noise:
// - every family (untied Qwen2 with biases, Qwen3 with q/k norms, tied Llama), policy loss with
//   reference-KL and distillation terms, a vocab chunk that does not divide V (two head.bwd shapes);
// - micro-batches (first writes, later add) against the fused single batch;
// - SFT in float32: the same losses and weights to float32 rounding over several steps;
// - a non-finite loss skips the step and leaves every weight and moment bit-for-bit.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Trainer } from '../../engine/train/trainer.ts';
import { packPolicyBatch, packSftBatch, splitMicroBatches } from './batch.ts';
import { TINY, asF32, maxRelDiff, randomRollouts, tinyWeights } from './fixtures.ts';
import { LayeredTrainer } from './layered.ts';
import { buildPolicyTrainStep, buildSftTrainStep, policyLossOnLogprobs, sftLossOnLogprobs } from './step.ts';

const LOSS = { type: 'ppo' as const, refKl: { beta: 0.05 }, distill: { coef: 0.3 } };

for (const family of ['qwen2', 'qwen3', 'llama'] as const) {
  test(`layered policy step = fused policy step (${family}, float64, 3 steps, micro-batches on the layered side)`, async () => {
    const c = TINY[family]!;
    const o = { dtype: 'float64' as const, weightDecay: 0.01, adamw: { maxGradNorm: 1 }, loss: LOSS };
    const fused = await Trainer.create(buildPolicyTrainStep(c, o), tinyWeights(c, 3), { threads: 1, optimization: 'basic' });
    const layered = await LayeredTrainer.create(c, policyLossOnLogprobs(o), tinyWeights(c, 3), { ...o, vocabChunk: 128, optimizerChunk: 1000, runtime: { threads: 1, optimization: 'basic' } });
    for (let step = 0; step < 3; step++) {
      const feeds = packPolicyBatch(randomRollouts(70 + step, 6, 6, 0), { padId: 0, dtype: 'float64', aggregation: 'seq_mean_token_mean', temperature: 0.8 });
      const a = await fused.step(feeds, 0.01);
      const b = await layered.step(step === 1 ? splitMicroBatches(feeds, 2) : feeds, 0.01);
      assert.equal(b.skipped, false);
      assert.deepEqual(Object.keys(b.metrics).sort(), Object.keys(a.metrics).sort());
      for (const k of Object.keys(a.metrics)) assert.ok(maxRelDiff([b.metrics[k]!], [a.metrics[k]!]) < 1e-9, `step ${step} ${k}: ${b.metrics[k]} vs ${a.metrics[k]}`);
    }
    const [pa, pb] = [fused.params(), layered.params()];
    for (const k of Object.keys(pa)) assert.ok(maxRelDiff(pb[k]!, pa[k]!) < 1e-9, `${k}: ${maxRelDiff(pb[k]!, pa[k]!)}`);
    const [sa, sb] = [fused.exportState(), layered.exportState()];
    assert.equal(sb.t, sa.t);
    for (const k of Object.keys(sa.tensors)) assert.ok(maxRelDiff(sb.tensors[k]!.data as Float64Array, sa.tensors[k]!.data as Float64Array) < 1e-8, k);
    await fused.release();
    await layered.release();
  });
}

test('layered SFT step = fused SFT step in float32 (5 steps, tied embeddings)', async () => {
  const c = TINY.llama!;
  const o = { weightDecay: 0.01, adamw: { maxGradNorm: 1 } };
  const fused = await Trainer.create(buildSftTrainStep(c, o), asF32(tinyWeights(c, 5)), { threads: 1 });
  const layered = await LayeredTrainer.create(c, sftLossOnLogprobs(o), asF32(tinyWeights(c, 5)), { ...o, vocabChunk: 100, runtime: { threads: 1 } });
  const rollouts = randomRollouts(9, 8, 6, 1);
  const feeds = packSftBatch(rollouts.map((r) => ({ promptIds: r.promptIds, completionIds: r.completionIds })), { padId: 0 });
  for (let step = 0; step < 5; step++) {
    const [a, b] = [await fused.step(feeds, 0.01), await layered.step(feeds, 0.01)];
    assert.ok(Math.abs(a.loss - b.loss) <= 1e-5 * Math.abs(a.loss), `step ${step}: loss ${b.loss} vs ${a.loss}`);
  }
  const [pa, pb] = [fused.params(), layered.params()];
  for (const k of Object.keys(pa)) assert.ok(maxRelDiff(pb[k]!, pa[k]!) < 5e-4, `${k}: ${maxRelDiff(pb[k]!, pa[k]!)}`);
  await fused.release();
  await layered.release();
});

test('layered step: a non-finite loss skips the update and leaves weights and moments bit-for-bit', async () => {
  const c = TINY.qwen3!;
  const layered = await LayeredTrainer.create(c, policyLossOnLogprobs({ loss: LOSS }), asF32(tinyWeights(c, 2)), { runtime: { threads: 1 } });
  const good = packPolicyBatch(randomRollouts(3, 4, 5, 1), { padId: 0 });
  await layered.step(good, 0.01);
  const before = layered.exportState();
  const copy = Object.fromEntries(Object.entries(before.tensors).map(([k, v]) => [k, (v.data as Float32Array).slice()]));
  const bad = packPolicyBatch(randomRollouts(4, 4, 5, 1), { padId: 0 });
  (bad.advantages!.data as Float32Array).fill(Number.NaN);
  const r = await layered.step(bad, 0.01);
  assert.equal(r.skipped, true);
  assert.equal(layered.t, 1);
  assert.equal(layered.skippedTotal, 1);
  const after = layered.exportState();
  for (const k of Object.keys(copy)) assert.deepEqual(after.tensors[k]!.data, copy[k], k);
  await layered.release();
});
