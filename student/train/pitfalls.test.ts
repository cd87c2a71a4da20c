// The pitfalls of docs/algorithms.md §6 pinned on a tiny Qwen2 model in float64:
// - μ = 1, ρ = 1: the PPO loss's gradient is the plain policy gradient −Σ w·A·∇log π (checked
//   against a separately written loss), with old log-probs from the SCORING graph at the sampling
//   temperature, so the sampler/trainer log-prob gap is ~0 and ρ = 1 exactly where it should be;
// - prompt and padding positions (ids, per-token inputs, even NaN/±1e30, extra padding columns)
//   never change the loss, its metrics or its gradient;
// - an empty completion (all-zero mask row), or a masked truncated rollout, contributes nothing;
//   a batch of only empty completions gives loss 0 and zero, finite gradients.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { compile } from '../../engine/exec.ts';
import { type Graph, mul, neg, sumAll } from '../../engine/index.ts';
import { hostTensor } from '../../engine/runtime/host.ts';
import type { Objective } from '../../engine/train/graph.ts';
import { declareWeights } from '../model/lm.ts';
import { packSequences } from '../model/runner.ts';
import { alignedLogprobs, buildScoreGraph, sequenceInputs } from '../model/score.ts';
import type { Aggregation } from './aggregate.ts';
import { type Feeds, type PolicyRollout, packPolicyBatch } from './batch.ts';
import { type Evaluated, TINY, evaluate, lossAndGrads, maxRelDiff, randomRollouts, tinyWeights, weightFeeds64 } from './fixtures.ts';
import { policyObjective } from './step.ts';

const c = TINY.qwen2!;
const W = tinyWeights(c, 5);
const FULL = { type: 'ppo' as const, refKl: { beta: 0.1 }, distill: { coef: 0.5 } };

/** Loss, metrics and gradients; every float64 graph here is compiled at the 'basic' level (see fixtures.ts). */
async function run(objective: Objective, feeds: Feeds): Promise<Evaluated> {
  const s = await lossAndGrads(objective, { optimization: 'basic' });
  const all: Feeds = { ...feeds, ...weightFeeds64(c, W) };
  const out = await evaluate(s, Object.fromEntries(s.session.inputNames.map((n) => [n, all[n]!])));
  await s.session.release();
  return out;
}

function assertSame(a: Evaluated, b: Evaluated, what: string, tol = 1e-10) {
  for (const k of Object.keys(a.metrics)) assert.ok(maxRelDiff([a.metrics[k]!], [b.metrics[k]!]) <= tol, `${what}: ${k} ${a.metrics[k]} vs ${b.metrics[k]}`);
  for (const k of Object.keys(a.grads)) assert.ok(maxRelDiff(a.grads[k]!, b.grads[k]!) <= tol, `${what}: gradient of ${k} differs (${maxRelDiff(a.grads[k]!, b.grads[k]!)})`);
}

function assertFinite(e: Evaluated, what: string) {
  assert.ok(Number.isFinite(e.loss), `${what}: loss ${e.loss}`);
  for (const [k, g] of Object.entries(e.grads)) assert.ok(g.every(Number.isFinite), `${what}: non-finite gradient of ${k}`);
}

/** Rollouts whose old log-probs are the scoring graph's log π_θ at temperature τ: the μ = 1 situation. */
async function onPolicy(rollouts: PolicyRollout[], tau: number): Promise<PolicyRollout[]> {
  // 'basic': ORT's extended QuickGelu fusion of x·sigmoid(x) has a float32-only CPU kernel, and its
  // MatMulScaleFusion rounds the attention scale to float32.
  const score = await compile(buildScoreGraph(c, { dtype: 'float64' }), { threads: 1, optimization: 'basic' });
  const packed = packSequences(rollouts.map((r) => [...r.promptIds, ...r.completionIds]), 0, 'right');
  const t = packed.input_ids.dims[1]!;
  const out = await score.run({
    ...weightFeeds64(c, W), input_ids: packed.input_ids, attention_mask: packed.attention_mask, position_ids: packed.position_ids,
    inv_temperature: hostTensor('float64', [], Float64Array.of(1 / tau)),
  });
  await score.release();
  const lp = out.logprobs!.data as Float64Array;
  return rollouts.map((r, i) => ({ ...r, samplerLogprobs: Array.from(lp.subarray(i * t + r.promptIds.length, i * t + r.promptIds.length + r.completionIds.length)) }));
}

test('μ = 1, ρ = 1: the PPO gradient is the plain policy gradient −Σ w·A·∇log π', async () => {
  const tau = 0.7;
  const rollouts = await onPolicy(randomRollouts(21, 4, 6), tau);
  const feeds = packPolicyBatch(rollouts, { padId: 0, dtype: 'float64', temperature: tau });
  const ppo = await run(policyObjective(c, { dtype: 'float64', loss: { type: 'ppo' } }), feeds);
  // The second code path: no ratio, no clip, no mask logic: L = −Σ A·w·log π_θ.
  const plain: Objective = (g: Graph) => {
    const p = declareWeights(g, c, { trainable: true, dtype: 'float64' });
    const lp = alignedLogprobs(c, p, sequenceInputs(g, 'float64')).logprobs; // [B, T]
    const adv = g.input('advantages', ['B', 'T'], 'float64');
    const w = g.input('loss_weights', ['B', 'T'], 'float64');
    return { loss: neg(sumAll(mul(mul(adv, w), lp))) };
  };
  const pg = await run(plain, feeds);
  for (const k of Object.keys(pg.grads)) assert.ok(maxRelDiff(ppo.grads[k]!, pg.grads[k]!) < 1e-9, `gradient of ${k}: ${maxRelDiff(ppo.grads[k]!, pg.grads[k]!)}`);
  assert.ok(ppo.metrics.logprob_gap_max! < 1e-10, `sampler/trainer gap ${ppo.metrics.logprob_gap_max}`);
  assert.ok(Math.abs(ppo.metrics.ratio_min! - 1) < 1e-10 && Math.abs(ppo.metrics.ratio_max! - 1) < 1e-10);
  assert.equal(ppo.metrics.clip_fraction, 0);
  // The loss value at ρ = 1 is −Σ w·A (the surrogate's value), not −Σ w·A·log π.
  const [w, adv] = [feeds.loss_weights!.data as Float64Array, feeds.advantages!.data as Float64Array];
  const wA = w.reduce((s, x, i) => s + x * adv[i]!, 0);
  assert.ok(Math.abs(ppo.loss + wA) < 1e-10);
});

/** Overwrite every non-completion position of the per-token feeds with hostile values. */
function poison(feeds: Feeds): Feeds {
  const bad = [NaN, 1e30, -1e30, 7];
  const mask = feeds.loss_mask!.data;
  const out: Feeds = { ...feeds };
  for (const name of ['advantages', 'old_logprobs', 'ref_logprobs', 'teacher_logprobs', 'loss_weights']) {
    const data = (feeds[name]!.data as Float64Array).slice();
    data.forEach((_, i) => (mask[i] ? 0 : (data[i] = bad[i % bad.length]!)));
    out[name] = hostTensor('float64', feeds[name]!.dims, data);
  }
  return out;
}

test('prompt and padding positions never change the loss, its metrics or its gradient', async () => {
  const rollouts = randomRollouts(31, 4, 6);
  for (const aggregation of ['token_mean', 'seq_mean_token_mean', 'seq_mean_token_sum_norm'] as Aggregation[]) {
    const o = { dtype: 'float64' as const, aggregation, maxCompletionLen: 8, temperature: 0.9 };
    const base = packPolicyBatch(rollouts, { ...o, padId: 0 });
    const objective = policyObjective(c, { dtype: 'float64', loss: FULL });
    const a = await run(objective, base);
    const wider = poison(packPolicyBatch(rollouts, { ...o, padId: 299, width: base.input_ids!.dims[1]! + 3 }));
    assertSame(a, await run(objective, wider), `${aggregation}, other pad id, 3 more columns, poisoned prompt/padding`);
    assertFinite(a, aggregation);
  }
});

test('an empty completion or a masked truncated rollout contributes nothing; an all-empty batch is 0, not NaN', async () => {
  const rollouts = randomRollouts(41, 3, 5);
  const empty: PolicyRollout = { promptIds: [5, 6, 7], completionIds: [], advantages: 1.5, samplerLogprobs: [], refLogprobs: [], teacherLogprobs: [] };
  const truncated: PolicyRollout = { ...randomRollouts(42, 1, 5)[0]!, truncated: true };
  const objective = policyObjective(c, { dtype: 'float64', loss: FULL });
  for (const aggregation of ['token_mean', 'seq_mean_token_mean'] as Aggregation[]) {
    const o = { padId: 0, dtype: 'float64' as const, aggregation };
    const a = await run(objective, packPolicyBatch(rollouts, o));
    const b = await run(objective, packPolicyBatch([rollouts[0]!, empty, rollouts[1]!, truncated, rollouts[2]!], { ...o, maskTruncated: true }));
    assertSame(a, b, `${aggregation} with an empty and a masked truncated rollout`);
    assertFinite(b, aggregation);
  }
  for (const aggregation of ['token_mean', 'seq_mean_token_mean', 'seq_mean_token_sum_norm'] as Aggregation[]) {
    const none = await run(objective, packPolicyBatch([empty, { ...empty, promptIds: [9] }], { padId: 0, dtype: 'float64', aggregation }));
    assert.equal(none.loss, 0, `${aggregation}: all-empty loss`);
    for (const [k, g] of Object.entries(none.grads)) assert.ok(g.every((x) => x === 0), `${aggregation}: gradient of ${k} should be exactly 0`);
    for (const k of ['clip_fraction', 'entropy_estimate', 'kl_ref', 'distill_k2', 'logprob_gap_max']) assert.equal(none.metrics[k], 0, `${aggregation}: ${k}`);
  }
});
