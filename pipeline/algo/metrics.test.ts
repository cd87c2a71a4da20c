// Per-step metrics on a tiny batch with an empty completion (docs/algorithms.md §7, docs/reliability.md R8).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { stepMetrics, type StepMetricsInput } from './metrics.ts';
import { NonFiniteError } from './finite.ts';
import { assertClose } from './testing.ts';

// Two prompt groups of 2: rollouts b0, b1 (rewards 1, 0) and b2, b3 (rewards 1, 1: zero variance).
// b2 is an empty completion; its rows hold junk (7, 5) that must not leak.
const input: StepMetricsInput = {
  rewards_G: [[1, 0], [1, 1]],
  correct_B: [true, false, true, true],
  mask_BT: [
    [0, 1, 1, 0], // 2 tokens
    [0, 1, 1, 1], // 3 tokens
    [0, 0, 0, 0], // empty
    [0, 1, 0, 0], // 1 token
  ],
  teacherGap_BT: [
    [0, 0.5, -0.5, 0],
    [0, 1, 1, 1],
    [7, 7, 7, 7],
    [0, 2, 0, 0],
  ],
  advantages_BT: [
    [0, 1, 1, 0],
    [0, -1, -1, -1],
    [5, 5, 5, 5],
    [0, 2, 0, 0],
  ],
};

test('stepMetrics on a tiny batch, by hand', () => {
  const m = stepMetrics(input);
  // rewards [1, 0, 1, 1]: mean 0.75; deviations [0.25, −0.75, 0.25, 0.25], Σ² = 3·0.0625 + 0.5625 = 0.75,
  //   population variance 0.75/4 = 0.1875, std = 0.4330127018922193
  assertClose(m.reward_mean, 0.75);
  assertClose(m.reward_std, 0.4330127018922193, 1e-15);
  assert.equal(m.accuracy, 0.75); // 3 of 4 correct
  // completion tokens of d: 0.5, −0.5 | 1, 1, 1 | — | 2 → Σ = 5 over 6 tokens = 0.8333…
  assertClose(m.teacher_kl, 5 / 6);
  // completion tokens of A: 1, 1 | −1, −1, −1 | — | 2 → mean 1/6; E[A²] = 9/6 = 1.5;
  //   variance 1.5 − 1/36 = 1.47222…, std = 1.2133516482134197
  assertClose(m.advantage_mean, 1 / 6);
  assertClose(m.advantage_std, 1.2133516482134197, 1e-15);
  assert.equal(m.zero_variance_frac, 0.5); // group [1, 1] of 2 groups
  assert.equal(m.completion_len_mean, 1.5); // (2 + 3 + 0 + 1) / 4
  assert.equal(m.empty_completions, 1);
});

test('accuracy is absent without correctness; a batch of only empty completions gives 0 token means', () => {
  const m = stepMetrics({
    rewards_G: [[0, 0]],
    teacherGap_BT: [[3], [3]],
    advantages_BT: [[3], [3]],
    mask_BT: [[0], [0]],
  });
  assert.equal(m.accuracy, undefined);
  assert.deepEqual([m.teacher_kl, m.advantage_mean, m.advantage_std, m.empty_completions, m.completion_len_mean], [0, 0, 0, 2, 0]);
});

test('mismatched rows and non-finite completion values throw', () => {
  assert.throws(() => stepMetrics({ ...input, mask_BT: input.mask_BT.slice(1) }), /mask_BT has 3 rows but rewards_G holds 4 rollouts/);
  assert.throws(() => stepMetrics({ ...input, correct_B: [true] }), /correct_B has 1 entries/);
  const gap = input.teacherGap_BT.map((r) => Array.from(r));
  gap[1][2] = NaN;
  assert.throws(() => stepMetrics({ ...input, teacherGap_BT: gap }), NonFiniteError);
  gap[1][2] = 1;
  gap[2][0] = NaN; // inside the empty completion: not data
  assert.equal(stepMetrics({ ...input, teacherGap_BT: gap }).teacher_kl, 5 / 6);
});
