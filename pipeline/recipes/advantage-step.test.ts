// The advantages stage on a hand-computed example, the grpo mode without a teacher, and NaN input.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type AdvantageSettings, advantageStep } from './advantage-step.ts';

const settings: AdvantageSettings = { groupMode: 'mean', eps: 1e-6, baseline: 0, blend: { mode: 'additive', rewardWeight: 1 }, lambda: 1, gamma: 0 };

const group = [
  // R = 1; d = old − teacher = [−1 − (−0.5), −2 − (−2.5)] = [−0.5, 0.5]; A^T = −λd = [0.5, −0.5]
  { promptIds: [1, 2], completionIds: [5, 6], samplerLogprobs: [-1, -2], teacherLogprobs: [-0.5, -2.5], truncated: false, reward: 1, correct: true },
  // R = 0; d = [0]; A^T = [0]
  { promptIds: [1, 2], completionIds: [7], samplerLogprobs: [-1], teacherLogprobs: [-1], truncated: true, reward: 0, correct: false },
];

test('additive: A = A^grp + A^T per completion token (hand-computed)', () => {
  const r = advantageStep([group], settings);
  // A^grp = R − mean R = [0.5, −0.5]
  assert.deepEqual(r.rollouts[0]!.advantages, [1, 0]);
  assert.deepEqual(r.rollouts[1]!.advantages, [-0.5]);
  assert.equal(r.rollouts[1]!.truncated, true);
  assert.equal(r.metrics!.accuracy, 0.5);
  assert.ok(Math.abs(r.metrics!.teacher_kl - 0) < 1e-12, 'mean d over the three completion tokens: (−0.5 + 0.5 + 0) / 3 = 0');
  assert.equal(r.nonFinite, undefined);
});

test('grpo needs no teacher; replace ignores rewards', () => {
  const noTeacher = group.map(({ teacherLogprobs: _t, ...rest }) => rest);
  const g = advantageStep([noTeacher], { ...settings, blend: { mode: 'grpo' } });
  assert.deepEqual(g.rollouts.map((r) => r.advantages), [[0.5, 0.5], [-0.5]]);
  assert.ok(!('teacher_kl' in g.metrics!), 'no teacher, no teacher_kl (not a misleading 0)');
  assert.ok('teacher_kl' in advantageStep([group], settings).metrics!);
  const rep = advantageStep([group], { ...settings, blend: { mode: 'replace' }, lambda: 2 });
  assert.deepEqual(rep.rollouts.map((r) => r.advantages), [[1, -1], [0]]);
});

test('a NaN teacher log-prob or reward is reported for skipping, never turned into advantages', () => {
  const nanTeacher = [{ ...group[0]!, teacherLogprobs: [NaN, -1] }, group[1]!];
  const r = advantageStep([nanTeacher], settings);
  assert.match(r.nonFinite!, /teacher log-probs/);
  assert.ok(r.rollouts.every((x) => (x.advantages as number[]).every((a) => a === 0)));
  const nanReward = advantageStep([[{ ...group[0]!, reward: Infinity }, group[1]!]], settings);
  assert.match(nanReward.nonFinite!, /rewards/);
});
