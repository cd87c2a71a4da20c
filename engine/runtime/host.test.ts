// HostTensor helper tests: allocation, the checks' messages, scalars and copies.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { cloneTensor, describe, hostTensor, malformed, numel, scalar, sameLayout } from './host.ts';

test('hostTensor allocates zeros of the dtype array class', () => {
  assert.equal(numel([]), 1);
  assert.equal(numel([2, 0, 3]), 0);
  const t = hostTensor('int64', [2, 3]);
  assert.ok(t.data instanceof BigInt64Array);
  assert.equal(t.data.length, 6);
  assert.ok(hostTensor('bool', [2]).data instanceof Uint8Array);
  assert.ok(hostTensor('float16', [2]).data instanceof Uint16Array);
});

test('hostTensor keeps the given array and names both sides of a mismatch', () => {
  const data = Float32Array.of(1, 2, 3, 4, 5, 6);
  assert.equal(hostTensor('float32', [2, 3], data).data, data);
  assert.throws(() => hostTensor('float32', [2, 3], new Float64Array(6)), /dtype float32 needs a Float32Array, got a Float64Array/);
  assert.throws(() => hostTensor('float32', [2, 2], data), /dims \[2,2\] need 4 elements, got a Float32Array of length 6/);
  assert.throws(() => hostTensor('float32', [-1]), /bad dims/);
  assert.ok(hostTensor('uint8', [3], Buffer.from([1, 2, 3])));
});

test('scalar, clone, layout and malformed', () => {
  assert.equal(scalar('int64', 7).data[0], 7n);
  assert.equal(scalar('bool', true).data[0], 1);
  assert.equal(scalar('float32', 0.5).data[0], 0.5);
  const t = hostTensor('float32', [2], Float32Array.of(1, 2));
  const c = cloneTensor(t);
  assert.notEqual(c.data, t.data);
  assert.ok(sameLayout(c, t));
  assert.equal(describe(t), 'float32[2]');
  assert.equal(malformed(t), null);
  assert.match(malformed({ dtype: 'int32', dims: [2], data: new Float32Array(2) }) ?? '', /needs a Int32Array/);
});
