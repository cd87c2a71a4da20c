import assert from 'node:assert/strict';
import { test } from 'node:test';
import { lrAt } from './schedule.ts';

const close = (a: number, b: number) => assert.ok(Math.abs(a - b) < 1e-15, `${a} vs ${b}`);

test('warm-up rises linearly to the peak at step W; constant stays there', () => {
  const s = { lr: 0.1, warmupSteps: 4, kind: 'constant' as const };
  [0.025, 0.05, 0.075, 0.1, 0.1, 0.1].forEach((want, i) => close(lrAt(s, i + 1, 6), want));
  close(lrAt({ ...s, warmupSteps: 0 }, 1, 6), 0.1);
});

test('linear decay: hand-computed factors, positive at the last step', () => {
  // T = 6, W = 2: post-warm-up steps 3..6 have progress 0, 1/4, 2/4, 3/4
  const s = { lr: 1, warmupSteps: 2, kind: 'linear' as const };
  [0.5, 1, 1, 0.75, 0.5, 0.25].forEach((want, i) => close(lrAt(s, i + 1, 6), want));
});

test('cosine decay: 1, (1+cos π/4)/2, 1/2, (1+cos 3π/4)/2 after warm-up', () => {
  const s = { lr: 2, warmupSteps: 0, kind: 'cosine' as const };
  const want = [1, (1 + Math.SQRT1_2) / 2, 0.5, (1 - Math.SQRT1_2) / 2].map((f) => 2 * f);
  want.forEach((w, i) => close(lrAt(s, i + 1, 4), w));
});

test('out-of-range steps and unknown kinds are refused', () => {
  const s = { lr: 1, warmupSteps: 0, kind: 'constant' as const };
  assert.throws(() => lrAt(s, 0, 4), /step = 0/);
  assert.throws(() => lrAt(s, 5, 4), /step = 5/);
  assert.throws(() => lrAt({ ...s, kind: 'step' as never }, 1, 4), /unknown lr schedule 'step'/);
});
