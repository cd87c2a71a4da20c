// StatefulRunner tests: state values over steps, two alternating buffers per state tensor,
// snapshot/setState copies, construction and step checks, and a failed step leaving state intact.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RuntimeError } from './errors.ts';
import { f32, type HostTensor, hostTensor, scalar, toNumbers } from './host.ts';
import { Session } from './session.ts';
import { StatefulRunner } from './stateful.ts';
import { tinyModel } from './tiny-models.ts';

/**
 * y = x + w, w_new = w * 2, count_new = count + 1 (int64), frozen_new = Identity(frozen),
 * loss = ReduceSum(y). x has a symbolic length so a bad feed fails inside ORT.
 */
const trainModel = () =>
  tinyModel({
    inputs: [
      { name: 'x', dtype: 'float32', dims: ['n'] },
      { name: 'w', dtype: 'float32', dims: [3] },
      { name: 'count', dtype: 'int64', dims: [] },
      { name: 'frozen', dtype: 'float32', dims: [2] },
    ],
    outputs: [
      { name: 'y', dtype: 'float32', dims: ['n'] },
      { name: 'loss', dtype: 'float32', dims: [] },
      { name: 'w_new', dtype: 'float32', dims: [3] },
      { name: 'count_new', dtype: 'int64', dims: [] },
      { name: 'frozen_new', dtype: 'float32', dims: [2] },
    ],
    nodes: [
      { op: 'Add', inputs: ['x', 'w'], outputs: ['y'] },
      { op: 'ReduceSum', inputs: ['y'], outputs: ['loss'] },
      { op: 'Mul', inputs: ['w', 'two'], outputs: ['w_new'] },
      { op: 'Add', inputs: ['count', 'one'], outputs: ['count_new'] },
      { op: 'Identity', inputs: ['frozen'], outputs: ['frozen_new'] },
    ],
    scalars: { two: 2, one: 1n },
  });

const STATE_MAP: Array<[string, string]> = [
  ['w', 'w_new'],
  ['count', 'count_new'],
  ['frozen', 'frozen_new'],
];

const initial = (): Record<string, HostTensor> => ({
  w: f32([3], [1, 2, 3]),
  count: scalar('int64', 0n),
  frozen: f32([2], [7, 8]),
});

const x = () => ({ x: f32([3], [10, 20, 30]) });

async function withRunner(fn: (r: StatefulRunner, init: Record<string, HostTensor>) => Promise<void>): Promise<void> {
  const init = initial();
  const r = new StatefulRunner(await Session.create(trainModel(), { name: 'train', threads: 1, logLevel: 'fatal' }), STATE_MAP, init);
  try {
    await fn(r, init);
  } finally {
    await r.release();
  }
}

test('5 steps update state through exactly two alternating buffers per state tensor', () =>
  withRunner(async (r, init) => {
    assert.equal(r.state('w').data, init.w!.data, 'the initial array becomes buffer A');
    const seen: Array<HostTensor['data']> = [r.state('w').data];
    for (let step = 1; step <= 5; step++) {
      const wBefore = Array.from(r.state('w').data as Float32Array);
      const out = await r.step(x(), ['y', 'loss']);
      assert.deepEqual(Object.keys(out), ['y', 'loss']);
      assert.deepEqual(toNumbers(out.y!), [10 + wBefore[0]!, 20 + wBefore[1]!, 30 + wBefore[2]!]);
      assert.equal(out.loss!.data[0], 60 + wBefore[0]! + wBefore[1]! + wBefore[2]!);
      seen.push(r.state('w').data);
    }
    assert.deepEqual(toNumbers(r.state('w')), [32, 64, 96]);
    assert.equal(r.state('count').data[0], 5n);
    assert.deepEqual(toNumbers(r.state('frozen')), [7, 8]);
    // Buffers alternate A, B, A, B, ...: two distinct arrays, reused, never a third.
    assert.equal(new Set(seen).size, 2);
    for (let i = 2; i < seen.length; i++) assert.equal(seen[i], seen[i - 2]);
    assert.notEqual(seen[0], seen[1]);
  }));

test('snapshot is a copy; setState copies in', () =>
  withRunner(async (r) => {
    await r.step(x());
    const snap = r.snapshot();
    assert.deepEqual(toNumbers(snap.w!), [2, 4, 6]);
    assert.notEqual(snap.w!.data, r.state('w').data);
    (snap.w!.data as Float32Array)[0] = -1;
    assert.equal(r.state('w').data[0], 2);
    await r.step(x());
    assert.deepEqual(toNumbers(snap.w!), [-1, 4, 6], 'a step does not touch a snapshot');

    const src = Float32Array.of(1, 1, 1);
    r.setState('w', src);
    assert.notEqual(r.state('w').data, src);
    src[0] = 99;
    await r.step(x());
    assert.deepEqual(toNumbers(r.state('w')), [2, 2, 2]);
    r.setState('count', scalar('int64', 100n));
    await r.step(x());
    assert.equal(r.state('count').data[0], 101n);
    assert.throws(() => r.setState('w', Float32Array.of(1, 2)), /state is float32\[3\]/);
    assert.throws(() => r.setState('w', hostTensor('float64', [3])), /state is float32\[3\], got float64\[3\]/);
    assert.throws(() => r.state('ww'), /"ww" is not a state input \(did you mean "w"\?\)/);
  }));

test('a step that fails inside ORT leaves the state as it was', () =>
  withRunner(async (r) => {
    await r.step(x());
    await assert.rejects(r.step({ x: f32([2], [1, 2]) }), (e: RuntimeError) => e instanceof RuntimeError && e.op === 'Add');
    assert.deepEqual(toNumbers(r.state('w')), [2, 4, 6]);
    assert.equal(r.state('count').data[0], 1n);
    await r.step(x());
    assert.deepEqual(toNumbers(r.state('w')), [4, 8, 12]);
  }));

test('step refuses state feeds, state fetches and overlapping calls', () =>
  withRunner(async (r) => {
    await assert.rejects(r.step({ ...x(), w: f32([3], [0, 0, 0]) }), /feed "w" is a state input/);
    await assert.rejects(r.step(x(), ['w_new']), /"w_new" is a state output/);
    await assert.rejects(r.step({}), /missing feed "x"/);
    const first = r.step(x());
    await assert.rejects(r.step(x()), /step\(\) called while a step is running/);
    await first;
    assert.equal(r.state('count').data[0], 1n);
  }));

test('construction checks names, initial values and aliasing against the session', async () => {
  const s = await Session.create(trainModel(), { name: 'train', threads: 1 });
  try {
    const make = (map: Array<[string, string]>, init: Record<string, HostTensor>) => () => new StatefulRunner(s, map, init);
    assert.throws(make([['ww', 'w_new']], { ww: f32([3], [1, 2, 3]) }), /state input "ww" is not a model input \(did you mean "w"\?\)/);
    assert.throws(make([['w', 'w_nu']], { w: f32([3], [1, 2, 3]) }), /state output "w_nu" is not a model output \(did you mean "w_new"\?\)/);
    assert.throws(make([['w', 'w_new'], ['w', 'frozen_new']], initial()), /"w" appears twice/);
    assert.throws(make(STATE_MAP, { ...initial(), count: undefined as unknown as HostTensor }), /no initial value for state input "count"/);
    assert.throws(make(STATE_MAP, { ...initial(), extra: f32([1], [0]) }), /initial value for "extra", which is not a state input/);
    assert.throws(make(STATE_MAP, { ...initial(), w: hostTensor('float64', [3]) }), /initial value of "w" \(new value "w_new"\): declared float32\[3\] but got float64\[3\]/);
    assert.throws(make(STATE_MAP, { ...initial(), w: f32([4], [1, 2, 3, 4]) }), /declared float32\[3\] but got float32\[4\]/);
    assert.throws(make(STATE_MAP, { ...initial(), count: scalar('int32', 0) }), /"count".*declared int64\[\] but got int32\[\]/);
    const shared = new Float32Array(5);
    const aliased = { ...initial(), w: hostTensor('float32', [3], shared.subarray(0, 3)), frozen: hostTensor('float32', [2], shared.subarray(2, 4)) };
    assert.throws(make(STATE_MAP, aliased), /"w" and "frozen" share memory/);
    const adjacent = { ...initial(), w: hostTensor('float32', [3], shared.subarray(0, 3)), frozen: hostTensor('float32', [2], shared.subarray(3, 5)) };
    assert.doesNotThrow(make(STATE_MAP, adjacent));
  } finally {
    await s.release();
  }
});
