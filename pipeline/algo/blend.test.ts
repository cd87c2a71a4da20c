// Every blend mode on one small batch, against hand-computed rows (docs/algorithms.md §3).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { blend, type BlendTerms } from './blend.ts';
import { groupAdvantages } from './advantages.ts';
import { NonFiniteError } from './finite.ts';
import { stepMetrics } from './metrics.ts';
import { teacherAdvantages, teacherGap } from './teacher.ts';
import { assertClose } from './testing.ts';

// a: reward 1, A^grp 0.5, completion at positions 1..2; position 0 holds 9 and position 3 NaN (garbage off-mask)
// b: reward 0, A^grp −0.5, completion at positions 0..1, padding at 2
// c: an empty completion (R8): every mode must give an all-zero row
const rollouts: BlendTerms[] = [
  { reward: 1, advantageGrp: 0.5, teacherAdvantages_T: [9, -1, 2, NaN], mask_T: [0, 1, 1, 0] },
  { reward: 0, advantageGrp: -0.5, teacherAdvantages_T: [0.25, 0.75, 9], mask_T: [1, 1, 0] },
  { reward: 0, advantageGrp: -0.5, teacherAdvantages_T: [9, 9], mask_T: [0, 0] },
];

test('additive: w_r·A^grp + A^T on completion tokens', () => {
  // w_r = 2. a: [0, 2·0.5 − 1, 2·0.5 + 2, 0] = [0, 0, 3, 0];  b: [−1 + 0.25, −1 + 0.75, 0] = [−0.75, −0.25, 0]
  const out = blend({ mode: 'additive', rewardWeight: 2 }, rollouts);
  assertClose(out.advantages_BT, [[0, 0, 3, 0], [-0.75, -0.25, 0], [0, 0]]);
  assert.equal(out.distillCoef, 0);
});

test('replace: A^T only (pure OPD)', () => {
  const out = blend({ mode: 'replace' }, rollouts);
  assertClose(out.advantages_BT, [[0, -1, 2, 0], [0.25, 0.75, 0], [0, 0]]);
  assert.equal(out.distillCoef, 0);
});

test('grpo: A^grp broadcast over completion tokens, no teacher', () => {
  const out = blend({ mode: 'grpo' }, rollouts);
  assertClose(out.advantages_BT, [[0, 0.5, 0.5, 0], [-0.5, -0.5, 0], [0, 0]]);
  assert.equal(out.distillCoef, 0);
});

test('loss: advantages = A^grp, and the k2 coefficient is handed to the train step as data', () => {
  const out = blend({ mode: 'loss', distillCoef: 0.1 }, rollouts);
  assertClose(out.advantages_BT, [[0, 0.5, 0.5, 0], [-0.5, -0.5, 0], [0, 0]]);
  assert.equal(out.distillCoef, 0.1);
  assert.throws(() => blend({ mode: 'loss', distillCoef: -1 }, rollouts), /blend.distillCoef = -1/);
});

test('masked: the teacher term only where R < threshold (strict)', () => {
  // threshold 0.5, w_r = 1: a (R = 1) gets no teacher → [0, 0.5, 0.5, 0];
  //   b (R = 0) does → [−0.5 + 0.25, −0.5 + 0.75, 0] = [−0.25, 0.25, 0]
  const out = blend({ mode: 'masked', rewardWeight: 1, rewardThreshold: 0.5 }, rollouts);
  assertClose(out.advantages_BT, [[0, 0.5, 0.5, 0], [-0.25, 0.25, 0], [0, 0]]);
  assert.equal(out.distillCoef, 0);
  // R = 1 is not below threshold 1; it is below 1.5: a → [0, 0.5 − 1, 0.5 + 2, 0] = [0, −0.5, 2.5, 0]
  assertClose(blend({ mode: 'masked', rewardWeight: 1, rewardThreshold: 1 }, rollouts).advantages_BT[0], [0, 0.5, 0.5, 0]);
  assertClose(blend({ mode: 'masked', rewardWeight: 1, rewardThreshold: 1.5 }, rollouts).advantages_BT[0], [0, -0.5, 2.5, 0]);
});

test('bad input throws: unknown mode, non-finite reward or completion-token A^T, misaligned rows', () => {
  assert.throws(() => blend({ mode: 'mix' } as never, rollouts), /unknown blend mode 'mix'; known: additive, replace, grpo, loss, masked/);
  const withNaN = (patch: Partial<BlendTerms>) => [{ ...rollouts[1], ...patch }];
  assert.throws(() => blend({ mode: 'replace' }, withNaN({ reward: NaN })), NonFiniteError);
  assert.throws(() => blend({ mode: 'grpo' }, withNaN({ advantageGrp: Infinity })), NonFiniteError);
  assert.throws(() => blend({ mode: 'replace' }, withNaN({ teacherAdvantages_T: [0.25, NaN, 0] })), NonFiniteError);
  assert.throws(() => blend({ mode: 'replace' }, withNaN({ teacherAdvantages_T: [0.25] })), /has length 1 but .*mask_T has length 3/);
  assert.throws(() => blend({ mode: 'additive', rewardWeight: NaN }, rollouts), NonFiniteError);
});

test('the whole layer on one group: rewards → A^grp, log-probs → d → A^T, additive blend, metrics', () => {
  // rewards [1, 0], mode mean → A^grp = [0.5, −0.5]
  const [advGrp] = groupAdvantages([[1, 0]], 'mean');
  // rollout 0: prompt | 2 completion tokens | padding.  d = [0, −1 + 1.5, −2 + 1, 0] = [0, 0.5, −1, 0]
  // rollout 1: prompt | 1 completion token | 2 padding.  d = [0, −0.25 + 0.5, 0, 0] = [0, 0.25, 0, 0]
  const mask_BT = [[0, 1, 1, 0], [0, 1, 0, 0]];
  const d_BT = [teacherGap([-5, -1, -2, 0], [-1, -1.5, -1, NaN], mask_BT[0]), teacherGap([-5, -0.25, 0, 0], [-1, -0.5, 0, 0], mask_BT[1])];
  assertClose(d_BT, [[0, 0.5, -1, 0], [0, 0.25, 0, 0]]);
  // λ = 1, γ = 0: A^T = −d
  const rollouts = d_BT.map((d_T, i) => ({ reward: [1, 0][i], advantageGrp: advGrp[i], teacherAdvantages_T: teacherAdvantages(d_T, mask_BT[i], 1), mask_T: mask_BT[i] }));
  // additive, w_r = 1: [0, 0.5 − 0.5, 0.5 + 1, 0] = [0, 0, 1.5, 0];  [0, −0.5 − 0.25, 0, 0] = [0, −0.75, 0, 0]
  const { advantages_BT } = blend({ mode: 'additive', rewardWeight: 1 }, rollouts);
  assertClose(advantages_BT, [[0, 0, 1.5, 0], [0, -0.75, 0, 0]]);
  // teacher_kl = (0.5 − 1 + 0.25) / 3 = −1/12;  advantage mean over 3 tokens = (0 + 1.5 − 0.75) / 3 = 0.25
  const m = stepMetrics({ rewards_G: [[1, 0]], teacherGap_BT: d_BT, advantages_BT, mask_BT });
  assertClose([m.teacher_kl, m.advantage_mean, m.completion_len_mean], [-1 / 12, 0.25, 1.5]);
});
