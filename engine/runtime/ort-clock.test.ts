import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ortClock, unionWithin } from './ort-clock.ts';

test('unionWithin: overlaps, nesting, disjoint spans and clipping (hand-computed)', () => {
  assert.equal(unionWithin([[0, 10], [5, 15]], 0, 100), 15, 'overlap counted once');
  assert.equal(unionWithin([[0, 10], [2, 3]], 0, 100), 10, 'nested');
  assert.equal(unionWithin([[0, 1], [5, 7], [6, 8]], 0, 100), 4, 'disjoint + overlap: 1 + 3');
  assert.equal(unionWithin([[0, 10], [20, 30]], 5, 25), 10, 'clipped to the window: 5 + 5');
  assert.equal(unionWithin([[30, 40]], 0, 25), 0);
  assert.equal(unionWithin([], 0, 1), 0);
});

test('ortClock records only while enabled; merge and take', () => {
  ortClock.enable(false);
  ortClock.record(0, 5);
  assert.deepEqual(ortClock.take(), []);
  ortClock.enable();
  ortClock.record(0, 5);
  ortClock.merge([[3, 8]]);
  assert.equal(ortClock.busyWithin(0, 10), 8);
  assert.deepEqual(ortClock.take(), [[0, 5], [3, 8]]);
  assert.deepEqual(ortClock.take(), []);
  ortClock.enable(false);
});
