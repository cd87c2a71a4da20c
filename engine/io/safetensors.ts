// Hugging Face safetensors (https://github.com/huggingface/safetensors): read, validate and write
// single files and sharded checkpoints. Layout: u64 little-endian header length N, N bytes of UTF-8
// JSON {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__"?: {key: string}}, then the
// data buffer; offsets are relative to the buffer, which the tensors must cover exactly, with no
// overlap and no hole. Any malformed byte input ends in a SafetensorsError naming the file, the tensor,
// what is wrong and how to fix it (docs/reliability.md R3/R10) -- never a RangeError or a partial result.
// F16/BF16 are widened exactly to Float32Array on read; on write a Float32Array may be narrowed to
// F16/BF16, rounding to nearest even (see half.ts). The writer lays tensors out as the reference does
// (descending dtype alignment, then name) and pads the header with spaces to a multiple of 8 bytes.
// Leaves out: memory mapping / lazy loading (whole tensors are read into memory), dtypes outside
// DTYPES below (FP8, I8, I16, U16, U32, U64, complex), and big-endian hosts.

import fs from 'node:fs';
import path from 'node:path';
import { atomicWriteFile } from './atomic.ts';
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from './half.ts';

export type StDtype = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'U8' | 'BOOL';
export type StData = Float32Array | Float64Array | BigInt64Array | Int32Array | Uint8Array;
/** A loaded tensor. `dtype` is as stored in the file: F16/BF16 tensors carry Float32Array data. */
export type StTensor = { name: string; dtype: StDtype; shape: number[]; data: StData };
export type SafetensorsFile = { file: string; metadata: Record<string, string>; tensors: Map<string, StTensor> };
/** A tensor to write. `dtype` defaults from the array type; a Float32Array may be written as F16/BF16. */
export type StWriteTensor = { name: string; shape: readonly number[]; data: StData; dtype?: StDtype };

export type SafetensorsFault =
  | 'io' | 'truncated' | 'header-size' | 'header-json' | 'entry' | 'dtype' | 'shape' | 'offsets'
  | 'size-mismatch' | 'overlap' | 'hole' | 'metadata' | 'index' | 'missing-shard' | 'missing-tensor'
  | 'unlisted-tensor' | 'bad-input';

export class SafetensorsError extends Error {
  override name = 'SafetensorsError';
  readonly file: string;
  /** The tensor at fault, or null for a file- or header-level problem. */
  readonly tensor: string | null;
  readonly reason: SafetensorsFault;

  constructor(file: string, tensor: string | null, reason: SafetensorsFault, detail: string, hint: string) {
    super(`${file}${tensor === null ? '' : `: tensor '${tensor}'`}: ${detail}; ${hint}`);
    this.file = file;
    this.tensor = tensor;
    this.reason = reason;
  }
}

const CORRUPT = 'the file is truncated, corrupt or not a safetensors file; re-export or re-download it';
const BAD_HEADER = 'the header does not describe the data; the file is corrupt, re-export it';
/** Headers above this are corrupt, not real: a 100k-tensor model has a header of a few MB. */
const MAX_HEADER_BYTES = 100_000_000;
/** Elements narrowed per written chunk, so F16/BF16 output never needs a whole-tensor copy. */
const NARROW_CHUNK = 1 << 20;
/** Largest single read; Node rejects lengths over 2^31-1. */
const MAX_READ = 1 << 30;

// ---- dtype registry: one entry per supported dtype -------------------------------------------

type Raw = StData | Uint16Array;
type Codec = {
  itemsize: number;
  /** Position in the reference writer's Dtype enum; higher is laid out first (larger alignment). */
  rank: number;
  /** Storage the little-endian file bytes are copied into, and what callers get from it. */
  alloc: (n: number) => Raw;
  widen: (raw: Raw) => StData;
  /** Can this array be written as this dtype, and its file bytes in order. */
  accepts: (data: StData) => boolean;
  encode: (data: StData) => Iterable<Uint8Array>;
};

type ArrayCtor = { new (n: number): StData };
function plain(itemsize: number, rank: number, ctor: ArrayCtor): Codec {
  return { itemsize, rank, alloc: (n) => new ctor(n), widen: (raw) => raw as StData,
    accepts: (d) => d instanceof ctor, encode: (d) => [bytesOf(d)] };
}
function half(rank: number, widen: (r: Uint16Array) => Float32Array, narrow: (f: Float32Array) => Uint16Array): Codec {
  return { itemsize: 2, rank, alloc: (n) => new Uint16Array(n), widen: (raw) => widen(raw as Uint16Array),
    accepts: (d) => d instanceof Float32Array, encode: (d) => narrowChunks(d as Float32Array, narrow) };
}

const DTYPES: Record<StDtype, Codec> = {
  BOOL: plain(1, 0, Uint8Array),
  U8: plain(1, 1, Uint8Array),
  F16: half(7, f16ToF32, f32ToF16),
  BF16: half(8, bf16ToF32, f32ToBf16),
  I32: plain(4, 9, Int32Array),
  F32: plain(4, 11, Float32Array),
  F64: plain(8, 12, Float64Array),
  I64: plain(8, 13, BigInt64Array),
};
const isDtype = (s: unknown): s is StDtype => typeof s === 'string' && Object.hasOwn(DTYPES, s);
const DEFAULT_DTYPE: Array<[ArrayCtor, StDtype]> = [
  [Float32Array, 'F32'], [Float64Array, 'F64'], [BigInt64Array, 'I64'], [Int32Array, 'I32'], [Uint8Array, 'U8'],
];

function bytesOf(a: Raw): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}
function* narrowChunks(data: Float32Array, narrow: (f: Float32Array) => Uint16Array): Iterable<Uint8Array> {
  for (let i = 0; i < data.length; i += NARROW_CHUNK) yield bytesOf(narrow(data.subarray(i, i + NARROW_CHUNK)));
}

// ---- reading ----------------------------------------------------------------------------------

type Entry = { name: string; dtype: StDtype; shape: number[]; begin: number; end: number };
type Header = { metadata: Record<string, string>; entries: Entry[] };

export function parseSafetensors(bytes: Uint8Array, file = '<memory>'): SafetensorsFile {
  requireLittleEndian(file);
  const n = headerLength(file, bytes, bytes.length);
  const header = parseHeader(file, bytes.subarray(8, 8 + n), bytes.length - 8 - n);
  const start = 8 + n;
  return assemble(file, header, (e, dst) => dst.set(bytes.subarray(start + e.begin, start + e.end)));
}

/** Reads a whole .safetensors file; tensor bytes go straight into their arrays (files may exceed 2 GB). */
export function readSafetensors(file: string): SafetensorsFile {
  requireLittleEndian(file);
  const fd = io(file, () => fs.openSync(file, 'r'));
  try {
    const size = io(file, () => fs.fstatSync(fd).size);
    const n = headerLength(file, readAt(file, fd, 0, new Uint8Array(Math.min(8, size))), size);
    const header = parseHeader(file, readAt(file, fd, 8, new Uint8Array(n)), size - 8 - n);
    return assemble(file, header, (e, dst) => readAt(file, fd, 8 + n + e.begin, dst));
  } finally {
    fs.closeSync(fd);
  }
}

/** Validates the 8-byte length prefix; `prefix` holds at least the first min(8, fileSize) bytes. */
function headerLength(file: string, prefix: Uint8Array, fileSize: number): number {
  if (fileSize < 8) throw new SafetensorsError(file, null, 'truncated', `only ${fileSize} bytes, less than the 8-byte header length`, CORRUPT);
  const n = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER_BYTES)) throw new SafetensorsError(file, null, 'header-size', `header length ${n} bytes is absurd (limit ${MAX_HEADER_BYTES})`, CORRUPT);
  if (n > BigInt(fileSize - 8)) throw new SafetensorsError(file, null, 'truncated', `header length ${n} bytes exceeds the ${fileSize - 8} bytes after the length field`, CORRUPT);
  return Number(n);
}

function parseHeader(file: string, bytes: Uint8Array, dataLen: number): Header {
  const json = decodeJson(file, bytes);
  const metadata = parseMetadata(file, json['__metadata__']);
  const entries = Object.entries(json)
    .filter(([name]) => name !== '__metadata__')
    .map(([name, v]) => parseEntry(file, name, v, dataLen));
  checkCoverage(file, entries, dataLen);
  return { metadata, entries };
}

function decodeJson(file: string, bytes: Uint8Array): Record<string, unknown> {
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (err) {
    throw new SafetensorsError(file, null, 'header-json', `header is not valid UTF-8 JSON (${(err as Error).message})`, CORRUPT);
  }
  if (!isObject(json)) throw new SafetensorsError(file, null, 'header-json', `header is ${describe(json)}, not a JSON object`, CORRUPT);
  return json;
}

function parseMetadata(file: string, v: unknown): Record<string, string> {
  if (v === undefined) return {};
  const fail = (what: string) => new SafetensorsError(file, null, 'metadata', `__metadata__ ${what}`, 'metadata must map strings to strings; re-export the file');
  if (!isObject(v)) throw fail(`is ${describe(v)}, not an object`);
  for (const [k, s] of Object.entries(v)) if (typeof s !== 'string') throw fail(`value for '${k}' is ${describe(s)}, not a string`);
  return { ...(v as Record<string, string>) };
}

function parseEntry(file: string, name: string, v: unknown, dataLen: number): Entry {
  const fail = (reason: SafetensorsFault, detail: string, hint = BAD_HEADER) => new SafetensorsError(file, name, reason, detail, hint);
  if (!isObject(v)) throw fail('entry', `header entry is ${describe(v)}, not {dtype, shape, data_offsets}`);
  const { dtype, shape, data_offsets: offsets } = v;
  if (!isDtype(dtype)) {
    throw fail('dtype', `dtype ${JSON.stringify(dtype) ?? 'undefined'} is not supported (supported: ${Object.keys(DTYPES).join(', ')})`,
      'convert the checkpoint to a supported dtype, e.g. F32, F16 or BF16, and re-export it');
  }
  if (!Array.isArray(shape) || !shape.every(isCount)) throw fail('shape', `shape ${short(shape)} is not an array of non-negative integers`);
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isCount) || offsets[0] > offsets[1]) {
    throw fail('offsets', `data_offsets ${short(offsets)} is not [begin, end] with integers 0 <= begin <= end`);
  }
  const [begin, end] = offsets as [number, number];
  if (end > dataLen) throw fail('offsets', `data_offsets [${begin}, ${end}] run past the ${dataLen}-byte data buffer`, CORRUPT);
  const numel = shape.includes(0) ? 0 : shape.reduce((a: number, b: number) => a * b, 1);
  const need = numel * DTYPES[dtype].itemsize;
  if (need !== end - begin) {
    throw fail('size-mismatch', `shape [${shape.join(', ')}] of ${dtype} needs ${need} bytes but data_offsets [${begin}, ${end}] span ${end - begin}`);
  }
  return { name, dtype, shape: shape.slice(), begin, end };
}

/** The spec requires the tensors to tile the data buffer exactly: sorted by offset, no overlap, no hole. */
function checkCoverage(file: string, entries: Entry[], dataLen: number): void {
  const sorted = entries.slice().sort((a, b) => a.begin - b.begin || a.end - b.end);
  let covered = 0;
  let prev: Entry | null = null;
  for (const e of sorted) {
    const span = `bytes [${e.begin}, ${e.end})`;
    if (e.begin < covered) throw new SafetensorsError(file, e.name, 'overlap', `${span} overlap tensor '${prev!.name}' [${prev!.begin}, ${prev!.end})`, BAD_HEADER);
    if (e.begin > covered) throw new SafetensorsError(file, e.name, 'hole', `${span} leave bytes [${covered}, ${e.begin}) before it unused`, BAD_HEADER);
    covered = e.end;
    prev = e;
  }
  if (covered !== dataLen) {
    const after = prev === null ? 'but the header lists no tensors' : 'after the last tensor';
    throw new SafetensorsError(file, prev?.name ?? null, 'hole', `${dataLen - covered} bytes of the data buffer are unused ${after}`, BAD_HEADER);
  }
}

/** Builds each tensor: allocate its storage, let `fill` copy its file bytes in, widen if needed. */
function assemble(file: string, header: Header, fill: (e: Entry, dst: Uint8Array) => void): SafetensorsFile {
  const tensors = new Map<string, StTensor>();
  for (const e of header.entries) {
    const codec = DTYPES[e.dtype];
    const raw = codec.alloc((e.end - e.begin) / codec.itemsize);
    fill(e, bytesOf(raw));
    tensors.set(e.name, { name: e.name, dtype: e.dtype, shape: e.shape, data: codec.widen(raw) });
  }
  return { file, metadata: header.metadata, tensors };
}

/** Fills `dst` from `position`; a file that ends early (e.g. shrank while read) is truncation. */
function readAt(file: string, fd: number, position: number, dst: Uint8Array): Uint8Array {
  for (let off = 0; off < dst.length; ) {
    const got = io(file, () => fs.readSync(fd, dst, off, Math.min(dst.length - off, MAX_READ), position + off));
    if (got === 0) throw new SafetensorsError(file, null, 'truncated', `file ended at byte ${position + off} while reading`, CORRUPT);
    off += got;
  }
  return dst;
}

// ---- writing ----------------------------------------------------------------------------------

/**
 * The bytes of a safetensors file as chunks: the header, then each tensor's bytes (views of the
 * caller's arrays where no conversion is needed). Inputs are validated now, before any byte is produced.
 */
export function serializeSafetensors(tensors: readonly StWriteTensor[], metadata?: Record<string, string>, file = '<memory>'): Iterable<Uint8Array> {
  requireLittleEndian(file);
  const plan = tensors.map((t) => planTensor(file, t));
  const names = new Set<string>();
  for (const t of plan) {
    if (names.has(t.name)) throw new SafetensorsError(file, t.name, 'bad-input', 'tensor name given twice', 'give each tensor a unique name');
    names.add(t.name);
  }
  if (metadata !== undefined) checkWriteMetadata(file, metadata);
  plan.sort((a, b) => DTYPES[b.dtype].rank - DTYPES[a.dtype].rank || Buffer.compare(Buffer.from(a.name), Buffer.from(b.name)));
  const header = encodeHeader(plan, metadata);
  return (function* () {
    yield header;
    for (const t of plan) yield* DTYPES[t.dtype].encode(t.data);
  })();
}

/** Writes atomically (temp file, fsync, rename): a crash leaves the old file or the new one. */
export async function writeSafetensors(file: string, tensors: readonly StWriteTensor[], metadata?: Record<string, string>): Promise<void> {
  await atomicWriteFile(file, serializeSafetensors(tensors, metadata, file));
}

type Planned = { name: string; dtype: StDtype; shape: number[]; data: StData };

function planTensor(file: string, t: StWriteTensor): Planned {
  const fail = (detail: string, hint: string) => new SafetensorsError(file, String(t.name), 'bad-input', detail, hint);
  if (typeof t.name !== 'string' || t.name === '' || t.name === '__metadata__') throw fail('invalid tensor name', 'use a non-empty name other than __metadata__');
  const dtype = t.dtype ?? DEFAULT_DTYPE.find(([ctor]) => t.data instanceof ctor)?.[1];
  if (!isDtype(dtype)) throw fail(`dtype ${String(dtype)} is not supported`, `use one of ${Object.keys(DTYPES).join(', ')}`);
  if (!DTYPES[dtype].accepts(t.data)) throw fail(`a ${t.data?.constructor?.name} cannot be written as ${dtype}`, 'pass the array type matching the dtype (F16/BF16 take a Float32Array)');
  if (!Array.isArray(t.shape) || !t.shape.every(isCount)) throw fail(`shape ${short(t.shape)} is not an array of non-negative integers`, 'fix the shape');
  const numel = t.shape.reduce((a, b) => a * b, 1);
  if (numel !== t.data.length) throw fail(`shape [${t.shape.join(', ')}] holds ${numel} elements but data has ${t.data.length}`, 'fix the shape or the data');
  return { name: t.name, dtype, shape: t.shape.slice(), data: t.data };
}

function checkWriteMetadata(file: string, metadata: Record<string, string>): void {
  for (const [k, v] of Object.entries(metadata)) {
    if (typeof v !== 'string') throw new SafetensorsError(file, null, 'bad-input', `metadata '${k}' is ${describe(v)}`, 'metadata values must be strings (JSON-encode others)');
  }
}

/** 8-byte length + JSON, space-padded to a multiple of 8 so the data buffer starts 8-aligned. */
function encodeHeader(plan: Planned[], metadata: Record<string, string> | undefined): Uint8Array {
  // Built by hand: a JS object would move integer-like tensor names ("0", "12") to the front.
  const fields: string[] = metadata === undefined ? [] : [`"__metadata__":${JSON.stringify(metadata)}`];
  let offset = 0;
  for (const t of plan) {
    const end = offset + t.data.length * DTYPES[t.dtype].itemsize;
    fields.push(`${JSON.stringify(t.name)}:${JSON.stringify({ dtype: t.dtype, shape: t.shape, data_offsets: [offset, end] })}`);
    offset = end;
  }
  const json = new TextEncoder().encode(`{${fields.join(',')}}`);
  const n = Math.ceil(json.length / 8) * 8;
  const out = new Uint8Array(8 + n).fill(0x20, 8);
  new DataView(out.buffer).setBigUint64(0, BigInt(n), true);
  out.set(json, 8);
  return out;
}

// ---- sharded checkpoints ----------------------------------------------------------------------

export const INDEX_FILE = 'model.safetensors.index.json';
export type SafetensorsIndex = {
  file: string;
  /** The index's own metadata (e.g. total_size, a number), not the shards' __metadata__. */
  metadata: Record<string, unknown>;
  weightMap: Map<string, string>;
  tensors: Map<string, StTensor>;
};

/** Reads `dir/model.safetensors.index.json` and every shard it lists; each shard must hold exactly its listed tensors. */
export function readSafetensorsIndex(dir: string): SafetensorsIndex {
  const file = path.join(dir, INDEX_FILE);
  const { metadata, weightMap } = parseIndex(file, io(file, () => fs.readFileSync(file, 'utf8')));
  const byShard = new Map<string, string[]>();
  for (const [tensor, shard] of weightMap) byShard.set(shard, [...(byShard.get(shard) ?? []), tensor]);
  const tensors = new Map<string, StTensor>();
  for (const [shard, listed] of byShard) {
    const shardPath = path.join(dir, shard);
    if (!fs.existsSync(shardPath)) {
      throw new SafetensorsError(file, listed[0]!, 'missing-shard', `shard '${shard}' (listed for ${listed.length} tensors) does not exist in ${dir}`, 'download or copy every shard the index lists');
    }
    const loaded = readSafetensors(shardPath).tensors;
    for (const name of listed) {
      const t = loaded.get(name);
      if (t === undefined) throw new SafetensorsError(shardPath, name, 'missing-tensor', `listed in ${INDEX_FILE} but absent from this shard`, 'the index and shards come from different exports; re-download them together');
      tensors.set(name, t);
    }
    for (const name of loaded.keys()) {
      if (weightMap.get(name) !== shard) throw new SafetensorsError(shardPath, name, 'unlisted-tensor', `present in this shard but ${INDEX_FILE} does not map it here`, 'the index and shards come from different exports; re-download them together');
    }
  }
  return { file, metadata, weightMap, tensors };
}

function parseIndex(file: string, text: string): { metadata: Record<string, unknown>; weightMap: Map<string, string> } {
  const fail = (detail: string) => new SafetensorsError(file, null, 'index', detail, 'the index is corrupt; re-download or re-export it');
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw fail(`not valid JSON (${(err as Error).message})`);
  }
  if (!isObject(json) || !isObject(json.weight_map)) throw fail('expected {"metadata": {...}, "weight_map": {tensor: shard file}}');
  if (json.metadata !== undefined && !isObject(json.metadata)) throw fail(`metadata is ${describe(json.metadata)}, not an object`);
  const weightMap = new Map<string, string>();
  for (const [tensor, shard] of Object.entries(json.weight_map)) {
    // Shards live beside the index; refusing absolute and '..' paths keeps a bad index from reading elsewhere.
    if (typeof shard !== 'string' || shard === '' || path.isAbsolute(shard) || shard.split(/[\\/]/).includes('..')) {
      throw new SafetensorsError(file, tensor, 'index', `weight_map entry ${short(shard)} is not a shard file name in this directory`, 'the index is corrupt; re-download or re-export it');
    }
    weightMap.set(tensor, shard);
  }
  return { metadata: (json.metadata as Record<string, unknown> | undefined) ?? {}, weightMap };
}

// ---- small helpers ----------------------------------------------------------------------------

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
function isCount(v: unknown): v is number {
  return Number.isSafeInteger(v) && (v as number) >= 0;
}
function describe(v: unknown): string {
  return v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v === 'object' ? 'an object' : `${typeof v} ${short(v)}`;
}
/** A value quoted for an error message, cut short so a corrupt header cannot flood the log. */
function short(v: unknown): string {
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

/** Runs a filesystem call, turning its native error into a SafetensorsError that names the file. */
function io<T>(file: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof SafetensorsError) throw err;
    throw new SafetensorsError(file, null, 'io', `cannot read (${(err as Error).message})`, 'check that the path exists and is a readable file');
  }
}

function requireLittleEndian(file: string): void {
  if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) {
    throw new SafetensorsError(file, null, 'io', 'this host is big-endian', 'safetensors is little-endian; run on a little-endian machine');
  }
}
