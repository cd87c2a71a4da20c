// Graph building: shape errors name the op and both shapes, symbolic dims behave, autodiff refuses
// what it cannot do, and the text dump shows what a graph computes.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { evalGraph } from '../exec.ts';
import { Graph, add, concat, dimAdd, dimMul, dumpGraph, evalDim, grad, matmul, mul, reshape, slice, sumAll } from '../index.ts';
import { hostTensor } from '../runtime/host.ts';

test('a shape mismatch names the op and both shapes', () => {
  const g = new Graph();
  const a = g.input('a', [2, 3]);
  const b = g.input('b', [4, 5]);
  assert.throws(() => matmul(a, b), /MatMul: inner dims differ: \[2, 3\] @ \[4, 5\]/);
  assert.throws(() => add(a, g.input('c', [3, 2])), /Add: cannot broadcast \[2, 3\] with \[3, 2\]/);
  assert.throws(() => reshape(a, [5]), /Reshape: cannot reshape \[2, 3\] \(6 elements\) to \[5\]/);
  assert.throws(() => add(a, g.input('i', [2, 3], 'int64')), /Add: dtype mismatch/);
});

test('symbolic dims: canonical products and sums, evaluated back to numbers', () => {
  assert.equal(dimMul('T', 'B', 4), '4*B*T');
  assert.equal(dimMul('2*B', 3), dimMul(6, 'B'));
  assert.equal(dimAdd('P', 1), '(P+1)');
  assert.equal(dimAdd(dimAdd('P', 1), -1), 'P');
  assert.equal(evalDim('(P+1)', { P: 7 }), 8);
  assert.equal(evalDim('4*B*T', { B: 2, T: 5 }), 40);
  const g = new Graph();
  const x = g.input('x', ['B', 'T', 4]);
  assert.throws(() => add(x, g.input('y', ['B', 'S', 4])), /cannot broadcast/);
});

test('symbolic shapes run: reshape, concat and slice over a batch dimension fed at run time', async () => {
  const g = new Graph();
  const x = g.input('x', ['B', 3]);
  const y = slice(concat([x, x], 0), [1], [dimAdd(dimMul('B', 2), -1)], [0]); // rows 1 .. 2B-2
  g.output('y', reshape(y, [dimAdd(dimMul('B', 2), -2), 3]));
  const out = await evalGraph(g, { x: hostTensor('float32', [2, 3], Float32Array.from([1, 2, 3, 4, 5, 6])) });
  assert.deepEqual(out.y!.dims, [2, 3]);
  assert.deepEqual(Array.from(out.y!.data as Float32Array), [4, 5, 6, 1, 2, 3]);
});

test('autodiff refuses integer targets and unused inputs, and accumulates fan-out', async () => {
  const g = new Graph();
  const x = g.input('x', [3], 'float64');
  const unused = g.input('u', [3], 'float64');
  const ids = g.input('ids', [3], 'int64');
  const y = sumAll(mul(x, x)); // d/dx = 2x through two uses of x
  assert.throws(() => grad(y, [ids]), /not floating point/);
  assert.throws(() => grad(y, [unused]), /does not depend on/);
  const [dx, du] = grad(y, [x, unused], { allowUnused: true });
  g.output('dx', dx!);
  g.output('du', du!);
  const out = await evalGraph(g, { x: hostTensor('float64', [3], Float64Array.from([1, -2, 3])), u: hostTensor('float64', [3]), ids: hostTensor('int64', [3]) });
  assert.deepEqual(Array.from(out.dx!.data as Float64Array), [2, -4, 6]);
  assert.deepEqual(Array.from(out.du!.data as Float64Array), [0, 0, 0]);
});

test('the text dump lists inputs, ops with shapes and scopes, and outputs', () => {
  const g = new Graph('tiny');
  const x = g.input('x', ['B', 4]);
  const w = g.input('w', [4, 2]);
  const y = g.scope('layer0', () => matmul(x, w));
  g.output('y', mul(y, 2));
  const text = dumpGraph(g);
  assert.match(text, /^graph tiny$/m);
  assert.match(text, /input {2}x: \[B, 4\] float32/);
  assert.match(text, /%\d+\[B, 2\]f32 = MatMul\(x, w\) {2}# layer0/);
  assert.match(text, /= Mul\(%\d+, const\(2\)\)/);
  assert.match(text, /output y = %\d+/);
});
