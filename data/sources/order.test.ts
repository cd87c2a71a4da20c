// Tests of the resumable epoch order: permutations, determinism, per-epoch difference, and that
// resuming from any cursor continues exactly where an uninterrupted walk would be (R4).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { shuffledOrder, takeNext, type EpochCursor } from './order.ts';

test('shuffledOrder is a permutation, deterministic, and different per epoch and seed', () => {
  for (const n of [0, 1, 2, 17, 1000]) {
    const p = shuffledOrder(n, 5, 0);
    assert.deepEqual([...p].sort((a, b) => a - b), Array.from({ length: n }, (_, i) => i));
    assert.deepEqual(shuffledOrder(n, 5, 0), p);
  }
  const e0 = shuffledOrder(1000, 5, 0);
  assert.notDeepEqual(shuffledOrder(1000, 5, 1), e0);
  assert.notDeepEqual(shuffledOrder(1000, 6, 0), e0);
  assert.throws(() => shuffledOrder(10, 1.5, 0), /seed must be an integer/);
  assert.throws(() => shuffledOrder(10, 1, -1), /epoch must be an integer >= 0/);
});

test('takeNext walks epochs back to back and rolls the cursor over', () => {
  const n = 7;
  const walk = [0, 1, 2].flatMap((e) => shuffledOrder(n, 3, e));
  const { indices, cursor } = takeNext(n, 3, { epoch: 0, index: 0 }, 3 * n);
  assert.deepEqual(indices, walk);
  assert.deepEqual(cursor, { epoch: 3, index: 0 });
});

test('resuming from any saved cursor gives the prompts the uninterrupted run used', () => {
  const n = 10, seed = 42, batch = 4;
  const straight = takeNext(n, seed, { epoch: 0, index: 0 }, 12 * batch).indices;
  let cursor: EpochCursor = { epoch: 0, index: 0 };
  const resumed: number[] = [];
  for (let step = 0; step < 12; step++) {
    const saved: EpochCursor = JSON.parse(JSON.stringify(cursor)); // as if written to a checkpoint and read back
    const next = takeNext(n, seed, saved, batch);
    resumed.push(...next.indices);
    cursor = next.cursor;
  }
  assert.deepEqual(resumed, straight);
  assert.throws(() => takeNext(n, seed, { epoch: 0, index: 11 }, 1), /past the end/);
  assert.throws(() => takeNext(0, seed, { epoch: 0, index: 0 }, 1), /n must be an integer >= 1/);
});
