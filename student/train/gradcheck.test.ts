// Train-step gradients of tiny Qwen2 / Qwen3 / Llama models against central finite differences in a
// random direction, for EVERY parameter tensor (embeddings, q/k/v/o with Qwen2 biases, Qwen3
// q_norm/k_norm, norms, gate/up/down, untied lm_head; tied embeddings for Llama), in float64.
// The loss is the full policy loss (ppo with clipping active, k3 reference KL, k2 distillation,
// sampling temperature 0.8) and the SFT loss.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Rng } from '../../engine/rng.ts';
import { dot } from '../../engine/testing/fd.ts';
import { packPolicyBatch, packSftBatch } from './batch.ts';
import { type Weights64, TINY, evaluate, lossAndGrads, randomRollouts, tinyWeights, weightFeeds64 } from './fixtures.ts';
import { policyObjective, sftObjective } from './step.ts';

const H = 1e-5;

async function checkEveryParameter(arch: string, objective: 'policy' | 'sft') {
  const c = TINY[arch]!;
  const obj = objective === 'policy'
    ? policyObjective(c, { dtype: 'float64', loss: { type: 'ppo', refKl: { beta: 0.1 }, distill: { coef: 0.5 } } })
    : sftObjective(c, { dtype: 'float64' });
  const s = await lossAndGrads(obj);
  const rollouts = randomRollouts(7, 3, 5);
  const batch = objective === 'policy'
    ? packPolicyBatch(rollouts, { padId: 0, dtype: 'float64', aggregation: 'seq_mean_token_mean', temperature: 0.8 })
    : packSftBatch(rollouts, { padId: 0, dtype: 'float64' });
  const w = tinyWeights(c, 3);
  const at = (ws: Weights64) => evaluate(s, { ...batch, ...weightFeeds64(c, ws) });
  const base = await at(w);
  if (objective === 'policy') assert.ok(base.metrics.clip_fraction! > 0 && base.metrics.clip_fraction! < 1, `clipping should be active on some tokens (${base.metrics.clip_fraction})`);
  const rng = new Rng(11);
  const expected = c.qkNorm ? ['q_norm', 'k_norm'] : c.qkvBias ? ['q_proj.bias', 'k_proj.bias', 'v_proj.bias'] : [];
  for (const e of expected) assert.ok(s.params.some((p) => p.includes(e)), `${arch} has ${e}`);
  assert.equal(s.params.includes('lm_head.weight'), !c.tieWordEmbeddings);
  for (const name of s.params) {
    const v = Float64Array.from(w[name]!, () => rng.normal());
    const shifted = (sign: number) => ({ ...w, [name]: Float64Array.from(w[name]!, (x, i) => x + sign * H * v[i]!) });
    const numeric = ((await at(shifted(1))).loss - (await at(shifted(-1))).loss) / (2 * H);
    const analytic = dot(base.grads[name]!, v);
    const err = Math.abs(analytic - numeric) / Math.max(1e-9, Math.abs(analytic) + Math.abs(numeric));
    assert.ok(err < 1e-6, `${arch} ${objective} ${name}: analytic ${analytic} vs FD ${numeric} (rel err ${err})`);
    assert.ok(Math.abs(analytic) > 1e-8, `${arch} ${name}: the gradient should not vanish (${analytic})`);
  }
  await s.session.release();
}

for (const arch of Object.keys(TINY)) {
  test(`${arch}: policy-loss gradients of every parameter match finite differences`, () => checkEveryParameter(arch, 'policy'));
}
test('qwen2: SFT-loss gradients of every parameter match finite differences', () => checkEveryParameter('qwen2', 'sft'));
