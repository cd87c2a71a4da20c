// The policy loss against hand-computed values on a 2×3 example, fed fixed log π_θ (a graph input,
// not a model), in float64. Numbers are worked out in the comments.
//
//        log π_θ             log π_old            A              mask
//   r0 [-1.0, -0.5, -2.0]   [-1.0, -0.8, -1.5]   [1, 1, -2]     [1, 1, 1]
//   r1 [-0.3, -0.7, -1.2]   [ 9.0, -1.0, -1.0]   [5, -1, 0.5]   [0, 1, 1]   (r1 t0 is prompt: garbage)
//
// ρ = exp(log π_θ − log π_old):  r0 [1, e^0.3 = 1.3498588076, e^-0.5 = 0.6065306597]
//                                r1 [ –, e^0.3 = 1.3498588076, e^-0.2 = 0.8187307531]
// ppo, ε = 0.2, ℓ = −min(ρA, clip(ρ, 0.8, 1.2)A):
//   r0t0  ρ=1, A=1                      ℓ = −1
//   r0t1  ρ=1.35 > 1.2, A>0: clipped    ℓ = −1.2
//   r0t2  ρ=0.61 < 0.8, A<0: clipped    ℓ = −(0.8·−2) = 1.6
//   r1t1  ρ=1.35 > 1.2 but A<0: min picks ρA (not clipped)   ℓ = 1.3498588076
//   r1t2  ρ in range                    ℓ = −0.5·0.8187307531 = −0.4093653766
//   Σℓ = 0.3404934310, 5 tokens, 2 of them clipped: clip_fraction = 0.4

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { evalGraph } from '../../engine/exec.ts';
import { Graph, grad } from '../../engine/index.ts';
import { hostTensor, type HostTensor } from '../../engine/runtime/host.ts';
import { type Aggregation, lossWeights } from './aggregate.ts';
import { LossConfigError, type PolicyLossOptions, checkPolicyLossOptions, policyInputs, policyLoss } from './policy.ts';

const B = 2;
const T = 3;
const LOGP = [-1.0, -0.5, -2.0, -0.3, -0.7, -1.2];
const OLD = [-1.0, -0.8, -1.5, 9.0, -1.0, -1.0];
const ADV = [1, 1, -2, 5, -1, 0.5];
const MASK = [1, 1, 1, 0, 1, 1];
const REF = [-1.2, -0.5, -1.0, 0, -1.0, -1.0];
const TEACHER = [-1.5, -0.5, -2.5, -100, -0.2, -1.2];

const bt = (xs: number[]) => hostTensor('float64', [B, T], Float64Array.from(xs));
const num = (t: HostTensor) => Number(t.data[0]);
const close = (got: number, want: number, what: string) => assert.ok(Math.abs(got - want) < 1e-9, `${what}: got ${got}, want ${want}`);

/** Run the loss on the fixed example; returns loss, metrics and ∂loss/∂log π_θ. */
async function run(o: PolicyLossOptions, aggregation: Aggregation = 'token_mean', maxCompletionLen?: number) {
  const g = new Graph('policy-loss-test');
  const logp = g.input('logprobs', ['B', 'T'], 'float64');
  const { loss, metrics } = policyLoss(logp, policyInputs(g, 'float64', o), o);
  g.output('loss', loss);
  for (const [k, m] of Object.entries(metrics)) g.output(k, 'value' in m ? m.value : m);
  g.output('dlogp', grad(loss, [logp])[0]!);
  const w = lossWeights(aggregation, { data: MASK, b: B, t: T }, { maxCompletionLen });
  const feeds: Record<string, HostTensor> = {
    logprobs: bt(LOGP), loss_mask: bt(MASK), loss_weights: hostTensor('float64', [B, T], w), advantages: bt(ADV),
    old_logprobs: bt(OLD), batch_tokens: hostTensor('float64', [], Float64Array.of(5)),
  };
  if (o.refKl) feeds.ref_logprobs = bt(REF);
  if (o.distill) feeds.teacher_logprobs = bt(TEACHER);
  const out = await evalGraph(g, feeds, { threads: 1 });
  const scalars: Record<string, number> = Object.fromEntries(Object.entries(out).filter(([, t]) => t.dims.length === 0).map(([k, t]) => [k, num(t)]));
  return Object.assign(scalars, { dlogp: Array.from(out.dlogp!.data as Float64Array) });
}

test('ppo clips on both sides; token_mean; metrics', async () => {
  const r = await run({ type: 'ppo' });
  close(r.loss!, 0.340493431 / 5, 'loss'); // 0.0680986862
  close(r.clip_fraction!, 0.4, 'clip_fraction');
  close(r.ratio_min!, Math.exp(-0.5), 'ratio_min'); // r0t2
  close(r.ratio_max!, Math.exp(0.3), 'ratio_max'); // the masked-out r1t0 (ρ = e^-9.3) is ignored
  close(r.logprob_gap_max!, 0.5, 'logprob_gap_max'); // |−2.0 − (−1.5)|; r1t0's 9.3 is prompt
  close(r.entropy_estimate!, (1 + 0.5 + 2 + 0.7 + 1.2) / 5, 'entropy_estimate'); // 1.08
  // ∂L/∂log π_θ = −A·ρ·w where unclipped, 0 where clipped or masked (w = 1/5):
  //   r0 [−0.2, 0, 0], r1 [0, +1.3498588/5 = 0.2699718, −0.5·0.8187308/5 = −0.0818731]
  const want = [-0.2, 0, 0, 0, Math.exp(0.3) / 5, (-0.5 * Math.exp(-0.2)) / 5];
  r.dlogp.forEach((x, i) => close(x, want[i]!, `dlogp[${i}]`));
});

test('ppo under each aggregation mode', async () => {
  // seq_mean_token_mean: row means (−1 − 1.2 + 1.6)/3 = −0.2 and (1.3498588 − 0.4093654)/2 = 0.4702467 → mean 0.1351234
  close((await run({}, 'seq_mean_token_mean')).loss!, (-0.2 + (Math.exp(0.3) - 0.5 * Math.exp(-0.2)) / 2) / 2, 'seq_mean_token_mean');
  // seq_mean_token_sum_norm with L_max = 4: Σℓ / (B·L_max) = 0.3404934 / 8 = 0.0425617
  close((await run({}, 'seq_mean_token_sum_norm', 4)).loss!, 0.340493431 / 8, 'seq_mean_token_sum_norm');
  // without L_max the batch's longest completion (3) is used: 0.3404934 / 6
  close((await run({}, 'seq_mean_token_sum_norm')).loss!, 0.340493431 / 6, 'seq_mean_token_sum_norm, batch max');
});

test('importance_sampling is unclipped: ℓ = −ρA', async () => {
  // ℓ: r0 [−1, −1.3498588, +1.2130613], r1 [+1.3498588, −0.4093654]; Σ = −0.1963041
  const r = await run({ type: 'importance_sampling' });
  close(r.loss!, -0.1963040571 / 5, 'loss');
  close(r.clip_fraction!, 0, 'clip_fraction');
  // every masked token carries its gradient −A·ρ·w
  const want = [-0.2, -Math.exp(0.3) / 5, (2 * Math.exp(-0.5)) / 5, 0, Math.exp(0.3) / 5, (-0.5 * Math.exp(-0.2)) / 5];
  r.dlogp.forEach((x, i) => close(x, want[i]!, `dlogp[${i}]`));
});

test('k3 reference KL: ℓ += β·(e^u − u − 1), u = log π_ref − log π_θ', async () => {
  // u: r0 [−0.2, 0, 1.0], r1 [–, −0.3, 0.2]
  // k3: 0.0187307531, 0, 0.7182818285, 0.0408182207, 0.0214027582; Σ = 0.7992335605, mean 0.1598467121
  const r = await run({ refKl: { beta: 0.1 } });
  close(r.kl_ref!, 0.7992335605 / 5, 'kl_ref');
  close(r.loss!, (0.340493431 + 0.1 * 0.7992335605) / 5, 'loss'); // 0.0840833574
  // the KL part of ∂/∂log π_θ is β·(1 − e^u)·w, e.g. r0t2: 0.1·(1 − e)/5 = −0.0343656 (PPO part clipped)
  close(r.dlogp[2]!, (0.1 * (1 - Math.E)) / 5, 'dlogp[2]');
});

test('k2 distillation term: ℓ += c·½(log π_θ − log π_T)²', async () => {
  // log π_θ − log π_T: r0 [0.5, 0, 0.5], r1 [–, −0.5, 0] → ½d²: 0.125, 0, 0.125, 0.125, 0; Σ = 0.375, mean 0.075
  const r = await run({ distill: { coef: 2 } });
  close(r.distill_k2!, 0.075, 'distill_k2');
  close(r.loss!, (0.340493431 + 2 * 0.375) / 5, 'loss'); // 0.2180986862
  // ∂/∂log π_θ of c·½d² is c·d·w: r0t0 = −0.2 (PPO) + 2·0.5/5 = 0
  close(r.dlogp[0]!, 0, 'dlogp[0]');
  close(r.dlogp[4]!, Math.exp(0.3) / 5 + (2 * -0.5) / 5, 'dlogp[4]');
});

test('k1 as a loss is refused with a clear error; k3 is offered and labelled forward-KL-like', () => {
  for (const o of [{ distill: { coef: 1, estimator: 'k1' as const } }, { refKl: { beta: 0.1, estimator: 'k1' as const } }]) {
    assert.throws(() => checkPolicyLossOptions(o), (e: Error) => e instanceof LossConfigError && /k1/.test(e.message) && /zero expected gradient/.test(e.message) && /k2/.test(e.message) && /reward/.test(e.message));
  }
  assert.doesNotThrow(() => checkPolicyLossOptions({ distill: { coef: 1, estimator: 'k3' } }));
  assert.throws(() => checkPolicyLossOptions({ type: 'grpo' as never }), /unknown policy loss "grpo"/);
});

test('aggregation weights: empty rows get nothing and nothing divides by zero', () => {
  const m = { data: [0, 1, 1, 0, 0, 0, 0, 1, 0], b: 3, t: 3 }; // rows: 2 tokens, empty, 1 token
  const w = (a: Aggregation, o = {}) => Array.from(lossWeights(a, m, o));
  assert.deepEqual(w('token_mean'), [0, 1 / 3, 1 / 3, 0, 0, 0, 0, 1 / 3, 0]);
  assert.deepEqual(w('seq_mean_token_mean'), [0, 1 / 4, 1 / 4, 0, 0, 0, 0, 1 / 2, 0]); // mean over the 2 non-empty rows
  assert.deepEqual(w('seq_mean_token_sum_norm', { maxCompletionLen: 4 }), [0, 1 / 12, 1 / 12, 0, 0, 0, 0, 1 / 12, 0]); // B = 3 counts every row
  assert.throws(() => w('seq_mean_token_sum_norm', { maxCompletionLen: 1 }), /more than maxCompletionLen/);
  const empty = { data: [0, 0, 0, 0], b: 2, t: 2 };
  for (const a of ['token_mean', 'seq_mean_token_mean', 'seq_mean_token_sum_norm'] as const) assert.deepEqual(Array.from(lossWeights(a, empty)), [0, 0, 0, 0]);
});
