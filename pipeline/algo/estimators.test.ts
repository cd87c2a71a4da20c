// KL estimators k1, k2, k3 and the reward/loss table (docs/algorithms.md §5; Tang & Munos, arXiv 2506.09477).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { checkEstimatorUse, EstimatorUseError, KL_ESTIMATORS } from './estimators.ts';
import { assertClose } from './testing.ts';

const { k1, k2, k3 } = KL_ESTIMATORS;
const LN2 = 0.6931471805599453;

test('k1, k2, k3 at a few d', () => {
  // k1(d) = d
  assertClose([0, 0.5, -1].map(k1), [0, 0.5, -1]);
  // k2(d) = ½d²: 0 → 0, 0.5 → 0.125, −1 → 0.5, 2 → 2
  assertClose([0, 0.5, -1, 2].map(k2), [0, 0.125, 0.5, 2]);
  // k3(d) = e^{−d} + d − 1:
  //   d = 0     → 1 + 0 − 1 = 0
  //   d = ln 2  → 0.5 + 0.69314718056 − 1 = 0.19314718056
  //   d = −ln 2 → 2 − 0.69314718056 − 1 = 0.30685281944
  //   d = 1     → e^{−1} = 0.36787944117
  assertClose([0, LN2, -LN2, 1].map(k3), [0, 0.1931471805599453, 0.3068528194400547, 0.36787944117144233], 1e-12);
  // d = 1e−8: k3 ≈ d²/2 − d³/6 = 5e−17 to 7 digits (a naive e^{−d} + d − 1 loses every digit here)
  assert.ok(Math.abs(k3(1e-8) - 5e-17) / 5e-17 < 1e-6);
});

test('k1 as a loss is refused, saying why and what to use instead', () => {
  assert.throws(
    () => checkEstimatorUse('k1', 'loss'),
    (e: unknown) =>
      e instanceof EstimatorUseError &&
      /zero expected gradient/.test(e.message) &&
      /k1 as a reward/.test(e.message) &&
      /k2 as a loss/.test(e.message),
  );
});

test('the allowed combinations and their labels', () => {
  const k1r = checkEstimatorUse('k1', 'reward');
  assert.match(k1r.label, /reverse KL/);
  assert.equal(k1r.warning, undefined);
  const k2l = checkEstimatorUse('k2', 'loss');
  assert.match(k2l.label, /reverse KL/);
  assert.equal(k2l.warning, undefined);
  const k3l = checkEstimatorUse('k3', 'loss');
  assert.match(k3l.label, /forward-KL-like/);
  assert.match(k3l.warning ?? '', /forward KL/);
  assert.ok(checkEstimatorUse('k2', 'reward').warning);
  assert.ok(checkEstimatorUse('k3', 'reward').warning);
  assert.throws(() => checkEstimatorUse('k4' as never, 'loss'), /unknown estimator/);
});

// The table's claims, checked exactly on a 3-token softmax student π = softmax(θ) and a fixed teacher q.
// With y ~ π and ∇_θ log π(y) = e_y − π, each estimator-as-loss has expected gradient
// Σ_y π(y) k'(d(y)) (e_y − π); compare with finite differences of the exact KLs.
test('expected gradients: k1-loss = 0, k2-loss = ∇KL(π‖q), k3-loss = ∇KL(q‖π)', () => {
  const softmax = (z: number[]) => {
    const e = z.map(Math.exp), s = e.reduce((a, b) => a + b);
    return e.map((x) => x / s);
  };
  const q = softmax([1, 0, -1]);
  const theta = [0.2, -0.3, 0.5];
  const kl = (p: number[], r: number[]) => p.reduce((s, pi, i) => s + pi * Math.log(pi / r[i]), 0);
  const fd = (f: (th: number[]) => number) =>
    theta.map((_, j) => {
      const h = 1e-6, up = [...theta], dn = [...theta];
      up[j] += h; dn[j] -= h;
      return (f(up) - f(dn)) / (2 * h);
    });
  const pi = softmax(theta);
  const expectedGrad = (dk: (d: number) => number) =>
    theta.map((_, j) => pi.reduce((s, p, y) => s + p * dk(Math.log(p / q[y])) * ((y === j ? 1 : 0) - pi[j]), 0));
  // d/dd of each estimator: k1' = 1, k2' = d, k3' = 1 − e^{−d}
  assertClose(expectedGrad(() => 1), [0, 0, 0], 1e-15);
  assertClose(expectedGrad((d) => d), fd((th) => kl(softmax(th), q)), 1e-8);
  assertClose(expectedGrad((d) => 1 - Math.exp(-d)), fd((th) => kl(q, softmax(th))), 1e-8);
});
