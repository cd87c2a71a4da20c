// Tests of the held-out split of a prompt file: deterministic in the seed, disjoint and complete,
// the requested size, independent of file order, and refused when a side would be empty.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { TaskRecord } from '../tasks/types.ts';
import { holdOut } from './split.ts';

const records: TaskRecord[] = Array.from({ length: 50 }, (_, i) => ({ id: `q${i}`, prompt: `${i}+1=`, answer: String(i + 1) }));
const ids = (rs: readonly TaskRecord[]) => rs.map((r) => r.id);

test('holdOut: the same seed gives the same split; train and test are disjoint and cover the file in file order', () => {
  const a = holdOut(records, 0.2, 7);
  assert.deepEqual(holdOut(records, 0.2, 7), a);
  assert.equal(a.test.length, 10);
  assert.equal(a.train.length, 40);
  const test = new Set(ids(a.test));
  assert.ok(a.train.every((r) => !test.has(r.id)), 'no held-out record is in train');
  assert.deepEqual([...ids(a.train), ...ids(a.test)].sort(), ids(records).sort());
  const order = (rs: readonly TaskRecord[]) => rs.map((r) => Number(r.id.slice(1)));
  for (const side of [a.train, a.test]) assert.deepEqual(order(side), [...order(side)].sort((x, y) => x - y));
});

test('holdOut: another seed holds out other records; re-ordering the file keeps the split', () => {
  assert.notDeepEqual(ids(holdOut(records, 0.2, 8).test), ids(holdOut(records, 0.2, 7).test));
  const reversed = holdOut([...records].reverse(), 0.2, 7);
  assert.deepEqual(ids(reversed.test).sort(), ids(holdOut(records, 0.2, 7).test).sort());
});

test('holdOut: at least one test record; refused when nothing is left to train on', () => {
  assert.equal(holdOut(records.slice(0, 3), 0.01, 0).test.length, 1);
  assert.throws(() => holdOut(records.slice(0, 1), 0.5, 0), /leaves none to train on/);
  assert.throws(() => holdOut(records, 1, 0), /fraction must be in \(0, 1\)/);
});
