// safetensors reader/writer: byte-exact agreement with the reference implementation's own test
// vectors, a file built byte by byte here (independent of the writer), hand-computed F16/BF16 bits,
// every validation error from a crafted file, and a seeded truncation/bit-flip fuzz (R3, R10).

import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { f16BitsToF32Bits } from './half.ts';
import {
  INDEX_FILE, SafetensorsError, parseSafetensors, readSafetensors, readSafetensorsIndex, serializeSafetensors,
  writeSafetensors, type SafetensorsFault, type StWriteTensor,
} from './safetensors.ts';

const dirs: string[] = [];
const tmp = () => {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'opd-st-'));
  dirs.push(d);
  return d;
};
after(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));
const concat = (chunks: Iterable<Uint8Array>) => new Uint8Array(Buffer.concat([...chunks]));
const ascii = (s: string) => [...Buffer.from(s, 'utf8')];
const f32 = (bits: number[]) => new Float32Array(new Uint32Array(bits).buffer);
const bitsOf = (a: Float32Array) => [...new Uint32Array(a.buffer, a.byteOffset, a.length)];

/** xorshift32: a tiny seeded PRNG so the fuzz cases are the same on every run. */
function xorshift(seed: number) {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13; s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5; s >>>= 0;
    return s;
  };
}

/** A file assembled by hand: u64 LE length, the header text exactly as given (no padding), the data. */
function craft(header: unknown, data: number[] | number = 0): Uint8Array {
  const json = ascii(typeof header === 'string' ? header : JSON.stringify(header));
  const body = typeof data === 'number' ? new Array<number>(data).fill(0) : data;
  const len = [0, 1, 2, 3, 4, 5, 6, 7].map((i) => Math.floor(json.length / 256 ** i) % 256);
  return new Uint8Array([...len, ...json, ...body]);
}

function expectFault(bytes: Uint8Array, reason: SafetensorsFault, tensor: string | null): void {
  assert.throws(() => parseSafetensors(bytes, 'bad.safetensors'), (e: unknown) => {
    assert.ok(e instanceof SafetensorsError, `expected SafetensorsError, got ${String(e)}`);
    assert.equal(e.reason, reason, e.message);
    assert.equal(e.tensor, tensor, e.message);
    assert.equal(e.file, 'bad.safetensors');
    assert.ok(e.message.startsWith('bad.safetensors'), e.message);
    if (tensor !== null) assert.ok(e.message.includes(`tensor '${tensor}'`), e.message);
    assert.ok(/;\s\S/.test(e.message), `message carries a hint: ${e.message}`);
    return true;
  });
}

test('writer output is byte-identical to the reference implementation test vectors', () => {
  // huggingface/safetensors bindings/python/tests/test_simple.py::test_serialization
  const i32 = concat(serializeSafetensors([{ name: 'test', shape: [2, 2], data: new Int32Array(4) }]));
  assert.deepEqual([...i32], [64, 0, 0, 0, 0, 0, 0, 0, ...ascii('{"test":{"dtype":"I32","shape":[2,2],"data_offsets":[0,16]}}    '), ...new Array(16).fill(0)]);
  // safetensors/src/tensor.rs::test_serialization_forced_alignement
  const attn = concat(serializeSafetensors([{ name: 'attn0', shape: [1, 1, 2, 3], data: new Float32Array([0, 1, 2, 3, 4, 5]) }]));
  assert.deepEqual([...attn], [72, 0, 0, 0, 0, 0, 0, 0, ...ascii('{"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}}       '),
    0, 0, 0, 0, 0, 0, 128, 63, 0, 0, 0, 64, 0, 0, 64, 64, 0, 0, 128, 64, 0, 0, 160, 64]);
  // safetensors/src/tensor.rs::test_empty, without and with metadata
  assert.deepEqual([...concat(serializeSafetensors([]))], [8, 0, 0, 0, 0, 0, 0, 0, 123, 125, 32, 32, 32, 32, 32, 32]);
  assert.deepEqual([...concat(serializeSafetensors([], { framework: 'pt' }))], [40, 0, 0, 0, 0, 0, 0, 0, ...ascii('{"__metadata__":{"framework":"pt"}}     ')]);
});

test('tensors are laid out by descending dtype alignment, then name bytes, keeping integer-like names in order', () => {
  const bytes = concat(serializeSafetensors([
    { name: 'h', shape: [1], data: new Float32Array(1), dtype: 'F16' },
    { name: '2', shape: [1], data: new Float32Array(1) },
    { name: '10', shape: [1], data: new Float32Array(1) },
    { name: 'u', shape: [1], data: new Uint8Array(1) },
    { name: 'i', shape: [1], data: new BigInt64Array(1) },
  ]));
  const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  assert.equal(n % 8, 0);
  const text = Buffer.from(bytes.subarray(8, 8 + n)).toString();
  assert.deepEqual([...text.matchAll(/"([^"]+)":\{"dtype"/g)].map((m) => m[1]), ['i', '10', '2', 'h', 'u']);
  assert.match(text, /^\{.*\} *$/);
});

test('a file built byte by byte parses to the right values, including an unaligned F32 tensor', () => {
  const header = '{"b":{"dtype":"U8","shape":[3],"data_offsets":[0,3]},"__metadata__":{"format":"pt","note":"hi"},' +
    '"a":{"dtype":"F32","shape":[2],"data_offsets":[3,11]},"h":{"dtype":"F16","shape":[4],"data_offsets":[11,19]},' +
    '"g":{"dtype":"BF16","shape":[2,2],"data_offsets":[19,27]},"i":{"dtype":"I64","shape":[1],"data_offsets":[27,35]},' +
    '"d":{"dtype":"F64","shape":[],"data_offsets":[35,43]},"z":{"dtype":"F32","shape":[0,4],"data_offsets":[43,43]},' +
    '"t":{"dtype":"BOOL","shape":[2],"data_offsets":[43,45]},"j":{"dtype":"I32","shape":[1],"data_offsets":[45,49]}}  ';
  const data = [
    1, 2, 255, // b: U8
    0x00, 0x00, 0xc0, 0x3f, 0x00, 0x00, 0x00, 0x80, // a: 1.5, -0 (starts at byte 3: not 4-aligned)
    0x00, 0x3c, 0x00, 0xc1, 0xff, 0x7b, 0x01, 0x00, // h: 1, -2.5, 65504, 2^-24
    0x80, 0x3f, 0x20, 0xc0, 0x80, 0x7f, 0xc0, 0x7f, // g: 1, -2.5, inf, nan
    0xfd, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // i: -3
    0x18, 0x2d, 0x44, 0x54, 0xfb, 0x21, 0x09, 0x40, // d: pi
    1, 0, // t
    0xf9, 0xff, 0xff, 0xff, // j: -7
  ];
  const st = parseSafetensors(craft(header, data), 'hand.safetensors');
  assert.deepEqual(st.metadata, { format: 'pt', note: 'hi' });
  const get = (n: string) => st.tensors.get(n)!;
  assert.deepEqual([...get('b').data], [1, 2, 255]);
  assert.deepEqual([...get('a').data], [1.5, -0]);
  assert.ok(Object.is(get('a').data[1], -0));
  assert.deepEqual([...get('h').data], [1, -2.5, 65504, 5.960464477539063e-8]);
  assert.deepEqual(get('g').shape, [2, 2]);
  assert.deepEqual([...get('g').data], [1, -2.5, Infinity, NaN]);
  assert.equal(get('g').dtype, 'BF16');
  assert.ok(get('g').data instanceof Float32Array);
  assert.deepEqual([...get('i').data], [-3n]);
  assert.deepEqual(get('d').shape, []);
  assert.equal(get('d').data[0], Math.PI);
  assert.equal(get('z').data.length, 0);
  assert.deepEqual([...get('t').data], [1, 0]);
  assert.deepEqual([...get('j').data], [-7]);
});

test('F32 round trip through disk is bit-identical (NaN payloads, -0, subnormals, inf)', async () => {
  const rand = xorshift(42);
  const bits = Array.from({ length: 1000 }, rand).concat([0x7fc00001, 0xffbfffff, 0x80000000, 0x00000001, 0x7f800000, 0xff800000]);
  const dir = tmp();
  const file = path.join(dir, 'w.safetensors');
  const tensors: StWriteTensor[] = [
    { name: 'w', shape: [2, bits.length / 2], data: f32(bits) },
    { name: 'f64', shape: [3], data: new Float64Array([1e-310, -1e300, NaN]) },
    { name: 'i64', shape: [2], data: new BigInt64Array([-(2n ** 63n), 2n ** 63n - 1n]) },
    { name: 'i32', shape: [2], data: new Int32Array([-(2 ** 31), 2 ** 31 - 1]) },
    { name: 'mask', shape: [3], data: new Uint8Array([1, 0, 1]), dtype: 'BOOL' },
    { name: 'scalar', shape: [], data: new Float32Array([7]) },
    { name: 'empty', shape: [0], data: new Float32Array(0) },
  ];
  await writeSafetensors(file, tensors, { step: '12' });
  const st = readSafetensors(file);
  assert.equal(st.file, file);
  assert.deepEqual(st.metadata, { step: '12' });
  assert.deepEqual(bitsOf(st.tensors.get('w')!.data as Float32Array), bits);
  for (const t of tensors) {
    const got = st.tensors.get(t.name)!;
    assert.deepEqual(got.shape, [...t.shape]);
    const byArray: Record<string, string> = { Float32Array: 'F32', Float64Array: 'F64', BigInt64Array: 'I64', Int32Array: 'I32' };
    assert.equal(got.dtype, t.dtype ?? byArray[t.data.constructor.name]);
    assert.deepEqual(Buffer.from(got.data.buffer, got.data.byteOffset, got.data.byteLength), Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength));
  }
  assert.deepEqual(parseSafetensors(fs.readFileSync(file)).tensors.get('w')!.shape, [2, 503]);
  assert.deepEqual(fs.readdirSync(dir), ['w.safetensors']);
});

test('F16/BF16 widen to hand-computed values, and every F16 pattern matches the IEEE formula', () => {
  const cases: Array<[number, number]> = [[0x3c00, 1], [0xc100, -2.5], [0x7bff, 65504], [0x0001, 5.960464477539063e-8],
    [0x03ff, 6.097555160522461e-5], [0x0400, 6.103515625e-5], [0x7c00, Infinity], [0xfc00, -Infinity], [0x8000, -0]];
  const h = craft({ h: { dtype: 'F16', shape: [cases.length + 1], data_offsets: [0, 2 * cases.length + 2] } },
    [...cases.flatMap(([b]) => [b & 0xff, b >> 8]), 0x00, 0x7e]);
  const got = [...parseSafetensors(h).tensors.get('h')!.data as Float32Array];
  cases.forEach(([, v], i) => assert.ok(Object.is(got[i], v), `f16 ${cases[i]![0].toString(16)}: ${got[i]} != ${v}`));
  assert.ok(Number.isNaN(got[cases.length]));
  for (let b = 0; b < 65536; b++) {
    const e = (b >> 10) & 0x1f, m = b & 0x3ff, s = b & 0x8000 ? -1 : 1;
    const want = e === 31 ? (m ? NaN : s * Infinity) : s * (e === 0 ? m * 2 ** -24 : (1 + m / 1024) * 2 ** (e - 15));
    const value = f32([f16BitsToF32Bits(b)])[0]!;
    assert.ok(Object.is(value, want), `f16 0x${b.toString(16)}: ${value} != ${want}`);
  }
  const bf = craft({ g: { dtype: 'BF16', shape: [3], data_offsets: [0, 6] } }, [0x01, 0x00, 0x7f, 0x7f, 0x80, 0xff]);
  assert.deepEqual([...parseSafetensors(bf).tensors.get('g')!.data], [2 ** -133, 3.3895313892515355e38, -Infinity]);
});

/** Writes `values` as `dtype` and returns the stored 16-bit patterns, read straight from the bytes. */
function narrowed(values: number[], dtype: 'F16' | 'BF16'): number[] {
  const bytes = concat(serializeSafetensors([{ name: 'x', shape: [values.length], data: new Float32Array(values), dtype }]));
  const start = bytes.length - 2 * values.length;
  return values.map((_, i) => bytes[start + 2 * i]! | (bytes[start + 2 * i + 1]! << 8));
}

test('F32 -> F16 on write rounds to nearest, ties to even', () => {
  const u = 2 ** -10; // spacing of F16 just above 1
  assert.deepEqual(narrowed([1, -2.5, 65504, 65519, 65520, 1e9, -1e9], 'F16'), [0x3c00, 0xc100, 0x7bff, 0x7bff, 0x7c00, 0x7c00, 0xfc00]);
  assert.deepEqual(narrowed([1 + u / 2, 1 + 1.5 * u, 1 + u / 2 + 2 ** -20, 1 + u / 2 - 2 ** -20], 'F16'), [0x3c00, 0x3c02, 0x3c01, 0x3c00]);
  // subnormals: the unit is 2^-24; half a unit ties to 0 (even), 1.5 units tie to 2
  assert.deepEqual(narrowed([2 ** -24, 2 ** -25, 3 * 2 ** -25, 2 ** -25 * 1.0001, 2 ** -26, -(2 ** -24)], 'F16'), [0x0001, 0x0000, 0x0002, 0x0001, 0x0000, 0x8001]);
  assert.deepEqual(narrowed([6.097555160522461e-5 + 2 ** -25, Infinity, -Infinity, -0], 'F16'), [0x0400, 0x7c00, 0xfc00, 0x8000]);
  const [nan] = narrowed([NaN], 'F16');
  assert.ok((nan! & 0x7c00) === 0x7c00 && (nan! & 0x3ff) !== 0);
});

test('F32 -> BF16 on write rounds to nearest, ties to even', () => {
  const u = 2 ** -7;
  assert.deepEqual(narrowed([1, -2.5, Infinity, -0], 'BF16'), [0x3f80, 0xc020, 0x7f80, 0x8000]);
  assert.deepEqual(narrowed([1 + u / 2, 1 + 1.5 * u, 1 + u / 2 + 2 ** -20], 'BF16'), [0x3f80, 0x3f82, 0x3f81]);
  assert.deepEqual(narrowed([3.4028234663852886e38, 3.3895313892515355e38], 'BF16'), [0x7f80, 0x7f7f]);
  const [nan] = narrowed([NaN], 'BF16');
  assert.ok((nan! & 0x7f80) === 0x7f80 && (nan! & 0x7f) !== 0);
});

test('every validation error comes from a crafted file and names the file, tensor and a fix', () => {
  const w = (over: object) => ({ w: { dtype: 'F32', shape: [2], data_offsets: [0, 8], ...over } });
  expectFault(new Uint8Array(5), 'truncated', null);
  expectFault(craft(w({}), 8).subarray(0, 20), 'truncated', null);
  expectFault(new Uint8Array([0, 0, 0, 0, 0, 0, 0, 0x80, 0x7b, 0x7d]), 'header-size', null);
  expectFault(new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]), 'header-size', null);
  expectFault(new Uint8Array([2, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xfe]), 'header-json', null);
  expectFault(craft('{"w": '), 'header-json', null);
  expectFault(craft('[1, 2]'), 'header-json', null);
  expectFault(craft('null'), 'header-json', null);
  expectFault(craft({ w: 5 }), 'entry', 'w');
  expectFault(craft(w({ dtype: 'Q7' }), 8), 'dtype', 'w');
  expectFault(craft(w({ dtype: 'F8_E4M3' }), 8), 'dtype', 'w');
  expectFault(craft(w({ dtype: 'constructor' }), 8), 'dtype', 'w');
  expectFault(craft('{"__proto__":{"dtype":"toString","shape":[],"data_offsets":[0,0]}}'), 'dtype', '__proto__');
  for (const shape of [2, [-1, -2], [2.5], ['2'], null]) expectFault(craft(w({ shape }), 8), 'shape', 'w');
  for (const data_offsets of [8, [0], [0, 8, 8], [0, 8.5], [-8, 0], [8, 0], ['0', '8']]) expectFault(craft(w({ data_offsets }), 8), 'offsets', 'w');
  expectFault(craft(w({ data_offsets: [0, 16] }), 8), 'offsets', 'w');
  expectFault(craft(w({ shape: [3] }), 8), 'size-mismatch', 'w');
  expectFault(craft(w({ dtype: 'F16' }), 8), 'size-mismatch', 'w');
  expectFault(craft(w({ shape: [2 ** 40, 2 ** 40] }), 8), 'size-mismatch', 'w');
  const two = (a: number[], b: number[]) => ({ a: { dtype: 'U8', shape: [a[1]! - a[0]!], data_offsets: a }, b: { dtype: 'U8', shape: [b[1]! - b[0]!], data_offsets: b } });
  expectFault(craft(two([0, 6], [4, 8]), 8), 'overlap', 'b');
  expectFault(craft(two([0, 4], [6, 8]), 8), 'hole', 'b');
  expectFault(craft(two([2, 6], [6, 8]), 8), 'hole', 'a');
  expectFault(craft(two([0, 4], [4, 6]), 8), 'hole', 'b');
  expectFault(craft({}, 3), 'hole', null);
  expectFault(craft({ __metadata__: { step: 3 }, ...w({}) }, 8), 'metadata', null);
  expectFault(craft({ __metadata__: ['x'], ...w({}) }, 8), 'metadata', null);
  assert.equal(parseSafetensors(craft(w({}), 8)).tensors.get('w')!.data.length, 2); // the baseline is valid
});

test('reading a missing path or a directory is a SafetensorsError, not a native error', () => {
  const dir = tmp();
  for (const p of [path.join(dir, 'nope.safetensors'), dir]) {
    assert.throws(() => readSafetensors(p), (e: unknown) => e instanceof SafetensorsError && e.reason === 'io' && e.file === p);
  }
});

test('fuzz: every truncation is an error and header byte flips never escape as other errors', () => {
  const valid = concat(serializeSafetensors([
    { name: 'emb', shape: [3, 2], data: new Float32Array([1, 2, 3, 4, 5, 6]) },
    { name: 'h', shape: [3], data: new Float32Array([1, -2, 0.5]), dtype: 'F16' },
    { name: 'b', shape: [2], data: new Float32Array([1, 2]), dtype: 'BF16' },
    { name: 'ids', shape: [2], data: new BigInt64Array([5n, -1n]) },
    { name: 'm', shape: [3], data: new Uint8Array([1, 0, 1]), dtype: 'BOOL' },
  ], { a: 'b' }));
  const dir = tmp();
  for (let len = 0; len < valid.length; len++) {
    assert.throws(() => parseSafetensors(valid.subarray(0, len)), SafetensorsError, `length ${len}`);
    const file = path.join(dir, `t${len}`);
    fs.writeFileSync(file, valid.subarray(0, len));
    assert.throws(() => readSafetensors(file), SafetensorsError, `file length ${len}`);
  }
  const headerEnd = 8 + Number(new DataView(valid.buffer).getBigUint64(0, true));
  const rand = xorshift(20240601);
  const outcomes = { ok: 0, error: 0 };
  for (let i = 0; i < 4000; i++) {
    const bytes = valid.slice();
    const flips = 1 + (rand() % 3);
    for (let f = 0; f < flips; f++) bytes[rand() % headerEnd] ^= 1 + (rand() % 255);
    const junk = i % 10 === 0 ? new Uint8Array(rand() % 64).map(() => rand()) : bytes;
    try {
      const st = parseSafetensors(junk);
      for (const t of st.tensors.values()) assert.equal(t.data.length, t.shape.reduce((a, b) => a * b, 1));
      outcomes.ok++;
    } catch (e) {
      if (!(e instanceof SafetensorsError)) throw e;
      outcomes.error++;
    }
  }
  assert.ok(outcomes.error > 1000, JSON.stringify(outcomes));
});

test('writeSafetensors refuses bad input before touching the target', async () => {
  const dir = tmp();
  const file = path.join(dir, 'out.safetensors');
  const bad: Array<[StWriteTensor[], string]> = [
    [[{ name: 'a', shape: [2], data: new Float32Array(3) }], 'elements'],
    [[{ name: 'a', shape: [1], data: new Int32Array(1), dtype: 'F16' }], 'cannot be written as F16'],
    [[{ name: 'a', shape: [1], data: new Float32Array(1) }, { name: 'a', shape: [1], data: new Float32Array(1) }], 'twice'],
    [[{ name: '__metadata__', shape: [1], data: new Float32Array(1) }], 'name'],
    [[{ name: 'a', shape: [-1], data: new Float32Array(1) }], 'shape'],
  ];
  for (const [tensors, why] of bad) {
    await assert.rejects(writeSafetensors(file, tensors), (e: unknown) => e instanceof SafetensorsError && e.reason === 'bad-input' && e.message.includes(why));
  }
  await assert.rejects(writeSafetensors(file, [], { n: 3 as unknown as string }), SafetensorsError);
  assert.deepEqual(fs.readdirSync(dir), []);
});

test('sharded checkpoints merge all shards and name the index, shard and tensor on mismatch', async () => {
  const dir = tmp();
  const t = (name: string, v: number): StWriteTensor => ({ name, shape: [1], data: new Float32Array([v]) });
  await writeSafetensors(path.join(dir, 's1.safetensors'), [t('a', 1), t('b', 2)]);
  await writeSafetensors(path.join(dir, 's2.safetensors'), [t('c', 3)]);
  const index = (weight_map: object) => fs.writeFileSync(path.join(dir, INDEX_FILE), JSON.stringify({ metadata: { total_size: 12 }, weight_map }));
  index({ a: 's1.safetensors', b: 's1.safetensors', c: 's2.safetensors' });
  const merged = readSafetensorsIndex(dir);
  assert.deepEqual([...merged.tensors.keys()].sort(), ['a', 'b', 'c']);
  assert.deepEqual([...merged.tensors.get('c')!.data], [3]);
  assert.deepEqual(merged.metadata, { total_size: 12 });

  const fault = (reason: SafetensorsFault, file: string, tensor: string | null) => (e: unknown) => {
    assert.ok(e instanceof SafetensorsError, String(e));
    assert.deepEqual([e.reason, e.file, e.tensor], [reason, path.join(dir, file), tensor]);
    return true;
  };
  index({ a: 's1.safetensors', b: 's1.safetensors', c: 's3.safetensors' });
  assert.throws(() => readSafetensorsIndex(dir), fault('missing-shard', INDEX_FILE, 'c'));
  index({ a: 's1.safetensors', b: 's1.safetensors', c: 's2.safetensors', d: 's2.safetensors' });
  assert.throws(() => readSafetensorsIndex(dir), fault('missing-tensor', 's2.safetensors', 'd'));
  index({ a: 's1.safetensors', c: 's2.safetensors' });
  assert.throws(() => readSafetensorsIndex(dir), fault('unlisted-tensor', 's1.safetensors', 'b'));
  index({ a: '../s1.safetensors' });
  assert.throws(() => readSafetensorsIndex(dir), fault('index', INDEX_FILE, 'a'));
  fs.writeFileSync(path.join(dir, INDEX_FILE), '{"weight_map": ');
  assert.throws(() => readSafetensorsIndex(dir), fault('index', INDEX_FILE, null));
  fs.writeFileSync(path.join(dir, 's2.safetensors'), 'garbage!');
  index({ a: 's1.safetensors', b: 's1.safetensors', c: 's2.safetensors' });
  assert.throws(() => readSafetensorsIndex(dir), fault('header-size', 's2.safetensors', null));
  assert.throws(() => readSafetensorsIndex(path.join(dir, 'nowhere')), fault('io', path.join('nowhere', INDEX_FILE), null));
});

test('large tensors are streamed in bounded chunks, and narrowing is right across chunk edges', async () => {
  const n = 2_500_000; // more than 2 narrowing chunks of 2^20 elements
  const data = new Float32Array(n).map((_, i) => (i % 2047) - 1023); // integers, all exact in F16
  const tensors: StWriteTensor[] = [{ name: 'big', shape: [n], data, dtype: 'F16' }, { name: 'raw', shape: [n], data }];
  const chunks = [...serializeSafetensors(tensors)];
  assert.deepEqual(chunks.map((c) => c.length).slice(1), [4 * n, 2 * 2 ** 20, 2 * 2 ** 20, 2 * (n - 2 ** 21)]);
  assert.equal(chunks[1]!.buffer, data.buffer, 'F32 bytes are a view of the caller array, not a copy');
  const file = path.join(tmp(), 'big.safetensors');
  await writeSafetensors(file, tensors);
  const st = readSafetensors(file);
  assert.deepEqual(st.tensors.get('big')!.data, data);
  assert.deepEqual(st.tensors.get('raw')!.data, data);
});
