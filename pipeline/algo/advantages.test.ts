// groupAdvantages and combineRewards against hand-computed values (docs/algorithms.md §1, docs/reliability.md R8).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { combineRewards, groupAdvantages } from './advantages.ts';
import { NonFiniteError } from './finite.ts';
import { assertClose } from './testing.ts';

// Two groups of different size and different means:
//   group 0 = [2, 6]        mean 4, deviations [−2, 2], population std 2   (unbiased std 2√2 ≈ 2.828)
//   group 1 = [0, 0, 2, 2]  mean 1, deviations [−1, −1, 1, 1], population std 1 (unbiased ≈ 1.1547)
//   batch   = [2, 6, 0, 0, 2, 2]: mean 12/6 = 2, deviations [0, 4, −2, −2, 0, 0],
//             Σ dev² = 16 + 4 + 4 = 24, variance 24/6 = 4, population std 2
const rewards_G = [[2, 6], [0, 0, 2, 2]];

test("mode 'mean': R − group mean", () => {
  assertClose(groupAdvantages(rewards_G, 'mean'), [[-2, 2], [-1, -1, 1, 1]]);
});

test("mode 'std_group': divides by the group's POPULATION std (not torch.std's unbiased one)", () => {
  // ε = 0: group 0 → [−2, 2]/2 = [−1, 1]; group 1 → [−1, −1, 1, 1]/1.
  // With the unbiased std these would be ±0.7071 and ±0.8660: the values below pin ddof = 0.
  assertClose(groupAdvantages(rewards_G, 'std_group', 0), [[-1, 1], [-1, -1, 1, 1]]);
  // Default ε = 1e-6: 2 / (2 + 1e-6) = 0.99999950000025; 1 / (1 + 1e-6) = 0.999999000001.
  assertClose(groupAdvantages(rewards_G, 'std_group'), [[-0.99999950000025, 0.99999950000025], [-0.999999000001, -0.999999000001, 0.999999000001, 0.999999000001]], 1e-12);
});

test("mode 'std_batch': group mean, batch population std", () => {
  // ε = 0, batch std 2: group 0 → [−2, 2]/2 = [−1, 1]; group 1 → [−1, −1, 1, 1]/2 = ±0.5.
  // (Centring on the batch mean 2 instead would give group 0 → [0, 2]: pinned against.)
  assertClose(groupAdvantages(rewards_G, 'std_batch', 0), [[-1, 1], [-0.5, -0.5, 0.5, 0.5]]);
});

test('an all-equal group gives exactly 0 in every centred mode, even with ε = 0', () => {
  // (0.1 + 0.1 + 0.1) / 3 = 0.10000000000000002 ≠ 0.1, so a naive R − mean would leave −1.4e-17 and
  // std scaling would blow that up to ~−1e-11 (ε = 1e-6) or NaN (ε = 0).
  assert.notEqual((0.1 + 0.1 + 0.1) / 3, 0.1);
  for (const mode of ['mean', 'std_group', 'std_batch'] as const) {
    for (const eps of [0, 1e-6]) {
      const a = groupAdvantages([[0.1, 0.1, 0.1], [1, 0]], mode, eps);
      assert.deepEqual(a[0], [0, 0, 0], `${mode}, eps ${eps}`);
      assert.ok(a[1].every(Number.isFinite));
    }
  }
  // The whole batch equal: batch std 0, ε = 0 → still exactly 0, no 0/0.
  assert.deepEqual(groupAdvantages([[1, 1], [1, 1]], 'std_batch', 0), [[0, 0], [0, 0]]);
});

test('a group of one: an error in centred modes, allowed in mean-free modes', () => {
  for (const mode of ['mean', 'std_group', 'std_batch'] as const) {
    assert.throws(() => groupAdvantages([[1, 0], [1]], mode), /rewards_G\[1\] has 1 rollout.*'baseline'/s);
  }
  // baseline b = 0.5: A = R − 0.5 → [[0.5], [−0.5]]. Default b = 0: A = R.
  assertClose(groupAdvantages([[1], [0]], 'baseline', 1e-6, 0.5), [[0.5], [-0.5]]);
  assertClose(groupAdvantages([[1], [0]], 'baseline'), [[1], [0]]);
  assert.deepEqual(groupAdvantages([[1], [0, 3]], 'zero'), [[0], [0, 0]]);
});

test('bad input fails loudly: empty group, NaN/Inf reward, negative ε, unknown mode', () => {
  assert.throws(() => groupAdvantages([[1, 0], []], 'mean'), /rewards_G\[1\] is an empty group/);
  assert.throws(
    () => groupAdvantages([[1, 0], [NaN, 1]], 'mean'),
    (e: unknown) => e instanceof NonFiniteError && e.report.row === 1 && e.report.index === 0,
  );
  assert.throws(() => groupAdvantages([[1, Infinity]], 'baseline'), NonFiniteError);
  assert.throws(() => groupAdvantages(rewards_G, 'std_group', -1), /eps = -1/);
  assert.throws(() => groupAdvantages(rewards_G, 'toString' as never), /unknown group advantage mode 'toString'/);
});

test('combineRewards: weighted sum over reward functions, then normalise', () => {
  // correctness [1, 0, 1] with weight 1, format [0.5, 1, 0] with weight 0.2:
  //   R = [1 + 0.1, 0 + 0.2, 1 + 0] = [1.1, 0.2, 1]
  const R = combineRewards([[1, 0, 1], [0.5, 1, 0]], [1, 0.2]);
  assertClose(R, [1.1, 0.2, 1]);
  // mean 2.3/3 = 0.7666…: A = [1.1 − 0.7666…, 0.2 − 0.7666…, 1 − 0.7666…] = [0.3333…, −0.5666…, 0.2333…]
  assertClose(groupAdvantages([R], 'mean'), [[1 / 3, -17 / 30, 7 / 30]], 1e-12);
  assert.throws(() => combineRewards([[1, 0]], [1, 2]), /1 reward functions but 2 weights/);
  assert.throws(() => combineRewards([[1, 0], [1]], [1, 1]), /function 1 scored 1 rollouts/);
  assert.throws(() => combineRewards([[1, NaN]], [1]), NonFiniteError);
  assert.throws(() => combineRewards([[1, 0]], [NaN]), NonFiniteError);
  assert.throws(() => combineRewards([], []), /at least one reward function/);
});
