// teacherGap, teacherAdvantages and λ schedules against hand-computed values (docs/algorithms.md §2, §6).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { NonFiniteError } from './finite.ts';
import { assertClose } from './testing.ts';
import { lambdaAt, teacherAdvantages, teacherGap } from './teacher.ts';

test('teacherGap: d = log π_old − log π_T on completion tokens; prompt and padding give 0', () => {
  // positions:   0, 1 prompt | 2, 3, 4 completion | 5, 6 padding
  const student_T = [-9, -9, -1.0, -0.5, -2.0, 0, 0];
  const teacher_T = [-3, -3, -1.5, -0.5, -1.0, NaN, 0]; // prompt differs and padding holds NaN: neither may leak
  const mask_T = [0, 0, 1, 1, 1, 0, 0];
  // d_2 = −1 − (−1.5) = 0.5;  d_3 = −0.5 − (−0.5) = 0;  d_4 = −2 − (−1) = −1
  assertClose(teacherGap(student_T, teacher_T, mask_T), [0, 0, 0.5, 0, -1, 0, 0]);
});

test('teacherGap: non-finite at a completion token throws (R7); bad shapes and masks throw', () => {
  assert.throws(
    () => teacherGap([-1, -1], [-1, NaN], [0, 1]),
    (e: unknown) => e instanceof NonFiniteError && e.report.name === 'teacherLogprobs_T' && e.report.index === 1,
  );
  assert.throws(() => teacherGap([-1, -1], [-1, -Infinity], [1, 1]), NonFiniteError);
  assert.throws(() => teacherGap([-1, -1], [-1], [1, 1]), /teacherLogprobs_T has length 1 but mask_T has length 2/);
  assert.throws(() => teacherGap([-1, -1], [-1, -1], [1, 0.5]), /mask_T\[1\] = 0.5/);
});

test('teacherAdvantages: γ = 0.5 over a completion starting at position 3 of a padded row', () => {
  // positions 0..2 prompt, 3..6 completion, 7 padding; the 9s outside the mask must contribute nothing.
  const d_T = [9, 9, 9, 1, -2, 0.5, 4, 9];
  const mask_T = [0, 0, 0, 1, 1, 1, 1, 0];
  // λ = 1: r_3..r_6 = [−1, 2, −0.5, −4]; powers of γ count from the completion token, not the row index:
  //   A_6 = −4
  //   A_5 = −0.5 + 0.5·(−4)                     = −2.5
  //   A_4 = 2 + 0.5·(−0.5) + 0.25·(−4)          = 0.75
  //   A_3 = −1 + 0.5·2 + 0.25·(−0.5) + 0.125·(−4) = −0.625
  assertClose(teacherAdvantages(d_T, mask_T, 1, 0.5), [0, 0, 0, -0.625, 0.75, -2.5, -4, 0]);
  // The same completion with no prompt offset gives the same numbers, shifted.
  assertClose(teacherAdvantages([1, -2, 0.5, 4, 9, 9, 9, 9], [1, 1, 1, 1, 0, 0, 0, 0], 1, 0.5), [-0.625, 0.75, -2.5, -4, 0, 0, 0, 0]);
  // λ = 2 (ExOPD extrapolation) doubles every term.
  assertClose(teacherAdvantages(d_T, mask_T, 2, 0.5), [0, 0, 0, -1.25, 1.5, -5, -8, 0]);
  // γ = 0 (default): A^T = r = −λ·d.   γ = 1: suffix sums −3.5, −2.5, −4.5, −4.
  assertClose(teacherAdvantages(d_T, mask_T, 1), [0, 0, 0, -1, 2, -0.5, -4, 0]);
  assertClose(teacherAdvantages(d_T, mask_T, 1, 1), [0, 0, 0, -3.5, -2.5, -4.5, -4, 0]);
});

test('teacherAdvantages: a hole in the mask is skipped, not counted as a discount step', () => {
  // mask [1, 1, 0, 1], d [1, 1, 9, 1], λ = 1, γ = 0.5: r = [−1, −1, ·, −1]
  //   A_3 = −1;  A_1 = −1 + 0.5·(−1) = −1.5;  A_0 = −1 + 0.5·(−1.5) = −1.75;  A_2 = 0
  assertClose(teacherAdvantages([1, 1, 9, 1], [1, 1, 0, 1], 1, 0.5), [-1.75, -1.5, 0, -1]);
});

test('teacherAdvantages: empty completion → all 0; bad λ, γ, or non-finite d throw', () => {
  assert.deepEqual(teacherAdvantages([5, 5], [0, 0], 1, 0.5), [0, 0]);
  assert.throws(() => teacherAdvantages([1], [1], -0.1), /lambda = -0.1/);
  assert.throws(() => teacherAdvantages([1], [1], 1, 1.5), /gamma = 1.5/);
  assert.throws(() => teacherAdvantages([1, NaN], [1, 1], 1), NonFiniteError);
  assert.throws(() => teacherAdvantages([1], [1], NaN), NonFiniteError);
});

test('lambdaAt: constant (λ > 1 allowed), with and without warm-up', () => {
  for (const step of [0, 50, 99]) assert.equal(lambdaAt({ kind: 'constant', lambda: 1.5 }, step, 100), 1.5);
  // warm-up 10 steps to λ = 2: step 0 → 0, step 5 → 2·5/10 = 1, step 10 → 2, step 50 → 2
  const s = { kind: 'constant', lambda: 2, warmupSteps: 10 } as const;
  assertClose([0, 5, 10, 50].map((t) => lambdaAt(s, t, 100)), [0, 1, 2, 2]);
});

test('lambdaAt: linear decay, with warm-up and a final value', () => {
  // λ = 1 → 0 over 100 steps: step 0 → 1, 25 → 0.75, 100 → 0, 150 → 0 (clamped)
  assertClose([0, 25, 100, 150].map((t) => lambdaAt({ kind: 'linear', lambda: 1 }, t, 100)), [1, 0.75, 0, 0]);
  // warm-up 20, λ = 1, final 0.2, total 100:
  //   step 10 → 1·10/20 = 0.5;  step 20 → 1;  step 60 → p = 40/80 = 0.5 → 0.2 + 0.8·0.5 = 0.6;  step 100 → 0.2
  const s = { kind: 'linear', lambda: 1, final: 0.2, warmupSteps: 20 } as const;
  assertClose([10, 20, 60, 100].map((t) => lambdaAt(s, t, 100)), [0.5, 1, 0.6, 0.2]);
});

test('lambdaAt: cosine decay, with warm-up and λ > 1', () => {
  // λ = 1, total 100: step 0 → 1; 25 → ½(1 + cos π/4) = ½(1 + 0.70710678118) = 0.85355339059;
  //   50 → ½(1 + cos π/2) = 0.5;  100 → 0
  assertClose([0, 25, 50, 100].map((t) => lambdaAt({ kind: 'cosine', lambda: 1 }, t, 100)), [1, 0.85355339059327, 0.5, 0], 1e-12);
  // warm-up 10, λ = 3, final 1, total 110: step 5 → 1.5; 10 → 3; 60 → p = 50/100 → 1 + 2·0.5 = 2; 110 → 1
  const s = { kind: 'cosine', lambda: 3, final: 1, warmupSteps: 10 } as const;
  assertClose([5, 10, 60, 110].map((t) => lambdaAt(s, t, 110)), [1.5, 3, 2, 1], 1e-12);
});

test('lambdaAt: bad schedules throw', () => {
  assert.throws(() => lambdaAt({ kind: 'linear', lambda: 1, warmupSteps: 200 }, 0, 100), /warmupSteps = 200/);
  assert.throws(() => lambdaAt({ kind: 'linear', lambda: -1 }, 0, 100), /lambda = -1/);
  assert.throws(() => lambdaAt({ kind: 'step' as never, lambda: 1 }, 0, 100), /unknown λ schedule 'step'; known: constant, linear, cosine/);
  assert.throws(() => lambdaAt({ kind: 'constant', lambda: 1 }, -1, 100), /step = -1/);
  assert.throws(() => lambdaAt({ kind: 'constant', lambda: 1 }, 0, 0), /totalSteps = 0/);
});
