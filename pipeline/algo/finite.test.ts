// findNonFinite: the pre-step check the loop uses to skip a step on NaN/Inf input (docs/reliability.md R7).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { assertFinite, findNonFinite, findNonFiniteRows, NonFiniteError } from './finite.ts';

test('findNonFinite returns the first bad index, or undefined', () => {
  assert.equal(findNonFinite('rewards', [0, 1, 2]), undefined);
  const bad = findNonFinite('rewards', [0, 1, NaN, Infinity]);
  assert.equal(bad?.index, 2);
  assert.ok(Number.isNaN(bad?.value));
  assert.equal(bad?.message, 'rewards[2] = NaN is not finite');
  assert.equal(findNonFinite('x', Float32Array.from([1, -Infinity]))?.index, 1);
});

test('positions with mask 0 are not data and are not inspected', () => {
  // NaN at index 2 is padding; the first bad completion token is the Inf at index 3
  const bad = findNonFinite('teacher logprobs', [0, 1, NaN, Infinity], [1, 1, 0, 1]);
  assert.equal(bad?.index, 3);
  assert.equal(bad?.value, Infinity);
  assert.equal(findNonFinite('teacher logprobs', [0, NaN], [1, 0]), undefined);
});

test('findNonFiniteRows names the row and index', () => {
  const bad = findNonFiniteRows('teacher logprobs', [[0, 1], [2, NaN, 3]], [[1, 1], [1, 1, 1]]);
  assert.deepEqual([bad?.row, bad?.index], [1, 1]);
  assert.equal(bad?.message, 'teacher logprobs[1][1] = NaN is not finite');
  assert.equal(findNonFiniteRows('teacher logprobs', [[0, 1], [2, NaN]], [[1, 1], [1, 0]]), undefined);
});

test('the skip decision a step makes from it, and the backstop throw', () => {
  const rewards = [1, 0, NaN];
  const skip = findNonFinite('rewards', rewards);
  assert.ok(skip, 'the step would be skipped');
  assert.throws(() => assertFinite('rewards', rewards), (e: unknown) => e instanceof NonFiniteError && e.report.index === 2);
});
