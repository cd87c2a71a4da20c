// Test helper for pipeline/algo: element-wise closeness of (nested) number arrays, with a message that
// names the first differing position. Tests compare against hand-computed values, never the code's own.

import assert from 'node:assert/strict';

type Nested = number | readonly Nested[];

export function assertClose(actual: Nested, expected: Nested, tol = 1e-12, path = ''): void {
  if (typeof expected === 'number') {
    assert.equal(typeof actual, 'number', `${path}: expected a number`);
    const a = actual as number;
    const ok = Object.is(a, expected) || Math.abs(a - expected) <= tol * Math.max(1, Math.abs(expected));
    assert.ok(ok, `${path || 'value'}: got ${a}, expected ${expected} (tol ${tol})`);
    return;
  }
  assert.ok(Array.isArray(actual), `${path}: expected an array`);
  const arr = actual as readonly Nested[];
  assert.equal(arr.length, expected.length, `${path}: length ${arr.length}, expected ${expected.length}`);
  expected.forEach((e, i) => assertClose(arr[i], e, tol, `${path}[${i}]`));
}
