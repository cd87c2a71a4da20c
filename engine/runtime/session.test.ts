// Session tests on hand-built tiny models: outputs, feed/fetch checks, in-place pre-allocated
// fetches, ORT error wrapping, devices (cuda/webgpu as this machine has them), options, files.

import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { bindingDir } from './device.ts';
import { DeviceUnavailableError, RuntimeError } from './errors.ts';
import { f32, hostTensor, scalar, toNumbers } from './host.ts';
import { Session } from './session.ts';
import { tinyModel } from './tiny-models.ts';

/** y = x + w (x: [n], w: [3]), w_new = w * 2. */
const addModel = () =>
  tinyModel({
    inputs: [
      { name: 'x', dtype: 'float32', dims: ['n'] },
      { name: 'w', dtype: 'float32', dims: [3] },
    ],
    outputs: [
      { name: 'y', dtype: 'float32', dims: ['n'] },
      { name: 'w_new', dtype: 'float32', dims: [3] },
    ],
    nodes: [
      { op: 'Add', inputs: ['x', 'w'], outputs: ['y'] },
      { op: 'Mul', inputs: ['w', 'two'], outputs: ['w_new'] },
    ],
    scalars: { two: 2 },
  });

const feeds = () => ({ x: f32([3], [10, 20, 30]), w: f32([3], [1, 2, 3]) });

async function withSession(fn: (s: Session) => Promise<void>, opts = {}): Promise<void> {
  const s = await Session.create(addModel(), { name: 'tiny', threads: 1, ...opts });
  try {
    await fn(s);
  } finally {
    await s.release();
  }
}

test('runs and returns every output as HostTensors; exposes names and metadata', () =>
  withSession(async (s) => {
    assert.deepEqual(s.inputNames, ['x', 'w']);
    assert.deepEqual(s.outputNames, ['y', 'w_new']);
    assert.deepEqual(s.input('x'), { name: 'x', type: 'float32', dtype: 'float32', shape: ['n'] });
    assert.deepEqual(s.input('w')?.shape, [3]);
    const out = await s.run(feeds());
    assert.deepEqual(Object.keys(out).sort(), ['w_new', 'y']);
    assert.equal(out.y!.dtype, 'float32');
    assert.deepEqual(out.y!.dims, [3]);
    assert.ok(out.y!.data instanceof Float32Array);
    assert.deepEqual(toNumbers(out.y!), [11, 22, 33]);
    assert.deepEqual(toNumbers(out.w_new!), [2, 4, 6]);
  }));

test('a fetch list returns only those outputs', () =>
  withSession(async (s) => {
    const out = await s.run(feeds(), ['w_new']);
    assert.deepEqual(Object.keys(out), ['w_new']);
  }));

test('unknown feed names the feed, the declared inputs and the closest one', () =>
  withSession(async (s) => {
    const { x, w } = feeds();
    await assert.rejects(s.run({ x, wx: w }), (e: RuntimeError) => {
      assert.ok(e instanceof RuntimeError);
      assert.equal(e.input, 'wx');
      assert.match(e.message, /session "tiny"/);
      assert.match(e.message, /unknown feed "wx" \(did you mean "w"\?\); declared inputs: "x", "w"/);
      return true;
    });
  }));

test('missing feed is named', () =>
  withSession(async (s) => {
    await assert.rejects(s.run({ x: feeds().x }), (e: RuntimeError) => e instanceof RuntimeError && e.input === 'w' && /missing feed "w"/.test(e.message));
  }));

test('dtype and fixed-dim mismatches are caught before ORT, naming both sides', () =>
  withSession(async (s) => {
    const bad64 = { ...feeds(), w: hostTensor('float64', [3], Float64Array.of(1, 2, 3)) };
    await assert.rejects(s.run(bad64), /input "w": declared float32\[3\] but got float64\[3\]/);
    const badDims = { ...feeds(), w: f32([4], [1, 2, 3, 4]) };
    await assert.rejects(s.run(badDims), /input "w": declared float32\[3\] but got float32\[4\]/);
    const broken = { ...feeds(), w: { dtype: 'float32' as const, dims: [3], data: new Float32Array(2) } };
    await assert.rejects(s.run(broken), /input "w": dims \[3\] need 3 elements, data has 2/);
  }));

test('unknown fetch name is an error with a suggestion', () =>
  withSession(async (s) => {
    await assert.rejects(s.run(feeds(), ['w_neww']), /unknown fetch "w_neww" \(did you mean "w_new"\?\)/);
    await assert.rejects(s.run(feeds(), { nope: null }), (e: RuntimeError) => e.output === 'nope');
  }));

test('a pre-allocated fetch is written in place by ORT and returned as the same object', () =>
  withSession(async (s) => {
    const dst = hostTensor('float32', [3]);
    const data = dst.data;
    const out = await s.run(feeds(), { w_new: dst, y: null });
    assert.equal(out.w_new, dst);
    assert.equal(out.w_new!.data, data);
    assert.deepEqual(Array.from(data as Float32Array), [2, 4, 6]);
    assert.deepEqual(toNumbers(out.y!), [11, 22, 33]);
    // Again with other weights: still the same array, new contents.
    await s.run({ ...feeds(), w: f32([3], [5, 6, 7]) }, { w_new: dst });
    assert.equal(dst.data, data);
    assert.deepEqual(Array.from(data as Float32Array), [10, 12, 14]);
    // A wrongly shaped buffer is refused before ORT touches anything.
    await assert.rejects(s.run(feeds(), { w_new: hostTensor('float32', [4]) }), /output "w_new": declared float32\[3\] but got float32\[4\]/);
    // So is an output buffer over a feed's memory; feeds may share memory with each other.
    const f = feeds();
    await assert.rejects(s.run(f, { w_new: f.w }), /output "w_new" and input "w" share memory/);
    const same = f32([3], [1, 1, 1]);
    assert.deepEqual(toNumbers((await s.run({ x: same, w: same }, ['y'])).y!), [2, 2, 2]);
  }));

test('ORT failures are RuntimeErrors naming the session, op and node', () =>
  withSession(async (s) => {
    const mismatched = { x: f32([2], [1, 2]), w: feeds().w }; // [2] + [3] cannot broadcast
    await assert.rejects(s.run(mismatched), (e: RuntimeError) => {
      assert.ok(e instanceof RuntimeError);
      assert.equal(e.session, 'tiny');
      assert.equal(e.op, 'Add');
      assert.equal(e.node, 'add0');
      assert.match(e.message, /session "tiny": run failed in Add node "add0"/);
      return true;
    });
  }, { logLevel: 'fatal' }));

test('a model ORT rejects fails to load with a RuntimeError', async () => {
  const bad = tinyModel({
    inputs: [{ name: 'x', dtype: 'float32', dims: [2] }],
    outputs: [{ name: 'y', dtype: 'float32', dims: [2] }],
    nodes: [{ op: 'Frobnicate', inputs: ['x'], outputs: ['y'] }],
  });
  await assert.rejects(Session.create(bad, { name: 'bad' }), (e: Error) => e instanceof RuntimeError && /session "bad": loading the model failed: .*Frobnicate/.test(e.message));
});

const cudaInstalled = existsSync(join(bindingDir(), 'libonnxruntime_providers_cuda.so'));

test('cuda without its EP libraries is DeviceUnavailableError with the install hint', { skip: cudaInstalled && 'CUDA EP installed here' }, async () => {
  await assert.rejects(Session.create(addModel(), { device: 'cuda' }), (e: Error) => {
    assert.ok(e instanceof DeviceUnavailableError);
    assert.ok(e instanceof RuntimeError);
    assert.equal(e.device, 'cuda');
    assert.match(e.message, /libonnxruntime_providers_cuda\.so/);
    assert.match(e.message, /npm install onnxruntime-node --onnxruntime-node-install=cuda12/);
    assert.match(e.message, /CUDA 12 \+ cuDNN 9/);
    assert.match(e.message, /never falls back to cpu/);
    return true;
  });
});

test('webgpu either works or is DeviceUnavailableError naming Vulkan', async () => {
  let s: Session;
  try {
    s = await Session.create(addModel(), { device: 'webgpu', logLevel: 'fatal' });
  } catch (e) {
    assert.ok(e instanceof DeviceUnavailableError, String(e));
    assert.equal(e.device, 'webgpu');
    assert.match(e.message, /Vulkan/);
    return;
  }
  try {
    assert.equal(s.device, 'webgpu');
    assert.deepEqual(toNumbers((await s.run(feeds())).y!), [11, 22, 33]);
  } finally {
    await s.release();
  }
});

test('thread and optimisation options are accepted; nonsense is refused', async () => {
  await withSession(async (s) => assert.deepEqual(toNumbers((await s.run(feeds())).y!), [11, 22, 33]), { threads: 2, interOpThreads: 1, optimization: 'basic' });
  await withSession(async (s) => assert.equal(s.name, 'tiny'), { optimization: 'disabled' });
  await assert.rejects(Session.create(addModel(), { threads: 0 }), /threads must be an integer >= 1, got 0/);
  await assert.rejects(Session.create(addModel(), { threads: 1.5 }), /threads must be an integer >= 1/);
});

test('loads from a path on disk and is named after the file', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'opd-runtime-'));
  try {
    const path = join(dir, 'add.onnx');
    writeFileSync(path, addModel());
    const s = await Session.create(path, { threads: 1 });
    assert.equal(s.name, 'add.onnx');
    assert.deepEqual(toNumbers((await s.run(feeds())).w_new!), [2, 4, 6]);
    await s.release();
    await assert.rejects(Session.create(join(dir, 'absent.onnx')), RuntimeError);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('int64, bool and float16 round-trip in their host array types', async () => {
  const model = tinyModel({
    inputs: [
      { name: 'i', dtype: 'int64', dims: [2] },
      { name: 'b', dtype: 'bool', dims: [2] },
      { name: 'h', dtype: 'float16', dims: [] },
    ],
    outputs: [
      { name: 'i1', dtype: 'int64', dims: [2] },
      { name: 'nb', dtype: 'bool', dims: [2] },
      { name: 'h1', dtype: 'float16', dims: [] },
    ],
    nodes: [
      { op: 'Add', inputs: ['i', 'one'], outputs: ['i1'] },
      { op: 'Not', inputs: ['b'], outputs: ['nb'] },
      { op: 'Identity', inputs: ['h'], outputs: ['h1'] },
    ],
    scalars: { one: 1n },
  });
  const s = await Session.create(model, { threads: 1 });
  const out = await s.run({ i: hostTensor('int64', [2], BigInt64Array.of(41n, -1n)), b: hostTensor('bool', [2], Uint8Array.of(1, 0)), h: scalar('float16', 0x3c00) });
  await s.release();
  assert.ok(out.i1!.data instanceof BigInt64Array);
  assert.deepEqual(Array.from(out.i1!.data as BigInt64Array), [42n, 0n]);
  assert.ok(out.nb!.data instanceof Uint8Array);
  assert.equal(out.nb!.dtype, 'bool');
  assert.deepEqual(toNumbers(out.nb!), [0, 1]);
  assert.ok(out.h1!.data instanceof Uint16Array);
  assert.equal(out.h1!.data[0], 0x3c00); // 1.0 in IEEE half
});

test('profiling writes a trace whose path endProfiling returns', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'opd-profile-'));
  try {
    await withSession(async (s) => {
      await s.run(feeds());
      const path = s.endProfiling();
      assert.ok(path && path.startsWith(join(dir, 'trace.')), String(path));
      const events = JSON.parse(readFileSync(path, 'utf8')) as Array<{ cat?: string }>;
      assert.ok(events.some((e) => e.cat === 'Node'));
      assert.equal(s.endProfiling(), null);
    }, { profileFile: join(dir, 'trace') });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('release is idempotent and run afterwards is a clear error', async () => {
  const s = await Session.create(addModel(), { name: 'gone', threads: 1 });
  await s.release();
  await s.release();
  await assert.rejects(s.run(feeds()), /session "gone": run\(\) after release\(\)/);
});
