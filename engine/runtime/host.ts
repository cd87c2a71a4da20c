// The project's host tensor: a typed array plus dims and an element type, independent of ONNX
// Runtime, so code outside engine/runtime never sees ort types.
//
// Storage is dense, row-major, little-endian (the machine's). bool is stored one byte per element
// in a Uint8Array (0/1), float16 as raw IEEE half bits in a Uint16Array (see engine/io/half.ts to
// convert). Leaves out strings, int8/uint16/uint32/uint64 and sub-byte types: no opd graph uses them.

export type DType = 'float32' | 'float64' | 'float16' | 'int64' | 'int32' | 'bool' | 'uint8';

export type HostData = Float32Array | Float64Array | Uint16Array | BigInt64Array | Int32Array | Uint8Array;

export interface HostTensor {
  dtype: DType;
  dims: readonly number[];
  data: HostData;
}

type ArrayCtor = { new (n: number): HostData; readonly name: string };

/** The typed-array class that stores each dtype. */
export const ARRAY_OF: Readonly<Record<DType, ArrayCtor>> = {
  float32: Float32Array,
  float64: Float64Array,
  float16: Uint16Array,
  int64: BigInt64Array,
  int32: Int32Array,
  bool: Uint8Array,
  uint8: Uint8Array,
};

export const DTYPES = Object.keys(ARRAY_OF) as readonly DType[];

export function isDType(s: string): s is DType {
  return Object.hasOwn(ARRAY_OF, s);
}

/** Number of elements of a tensor with these dims (1 for a scalar). */
export function numel(dims: readonly number[]): number {
  let n = 1;
  for (const d of dims) n *= d;
  return n;
}

/**
 * A host tensor over `data` (not copied), or over fresh zeros when `data` is omitted. Checks dims are
 * non-negative integers, that `data` is the array class of `dtype` and holds exactly numel(dims) values.
 */
export function hostTensor(dtype: DType, dims: readonly number[], data?: HostData): HostTensor {
  const ctor = ARRAY_OF[dtype];
  if (!ctor) throw new TypeError(`hostTensor: unknown dtype "${dtype}" (known: ${DTYPES.join(', ')})`);
  for (const d of dims) {
    if (!Number.isSafeInteger(d) || d < 0) throw new RangeError(`hostTensor: bad dims ${fmtDims(dims)}: each must be an integer >= 0`);
  }
  const n = numel(dims);
  if (data === undefined) return { dtype, dims: [...dims], data: new ctor(n) };
  // Buffer is a Uint8Array subclass, hence instanceof rather than an exact-class test.
  if (!(data instanceof ctor)) {
    throw new TypeError(`hostTensor: dtype ${dtype} needs a ${ctor.name}, got a ${arrayName(data)}`);
  }
  if (data.length !== n) {
    throw new RangeError(`hostTensor: dims ${fmtDims(dims)} need ${n} elements, got a ${arrayName(data)} of length ${data.length}`);
  }
  return { dtype, dims: [...dims], data };
}

/** A rank-0 tensor. bool takes true/false (or 0/1); int64 takes a bigint or a safe integer. */
export function scalar(dtype: DType, value: number | bigint | boolean): HostTensor {
  const t = hostTensor(dtype, []);
  if (dtype === 'int64') t.data[0] = typeof value === 'bigint' ? value : BigInt(Number(value));
  else t.data[0] = Number(value);
  return t;
}

/** A float32 tensor from plain numbers (a test and tool convenience). */
export function f32(dims: readonly number[], values: ArrayLike<number>): HostTensor {
  return hostTensor('float32', dims, Float32Array.from(values));
}

/**
 * Why `t` is not a usable HostTensor (unknown dtype, wrong array class, length != numel(dims)), or
 * null if it is. HostTensor is a plain interface, so values built by hand are checked at the seams.
 */
export function malformed(t: HostTensor): string | null {
  if (!t || !isDType(t.dtype)) return `not a HostTensor (dtype ${String(t?.dtype)})`;
  const ctor = ARRAY_OF[t.dtype];
  if (!(t.data instanceof ctor)) return `dtype ${t.dtype} needs a ${ctor.name}, got a ${arrayName(t.data)}`;
  if (t.data.length !== numel(t.dims)) return `dims ${fmtDims(t.dims)} need ${numel(t.dims)} elements, data has ${t.data.length}`;
  return null;
}

/** The values as plain numbers, for messages, metrics and tests (int64 exact only below 2^53). */
export function toNumbers(t: HostTensor): number[] {
  return Array.from(t.data as ArrayLike<number | bigint>, Number);
}

type Named = ReadonlyArray<readonly [string, HostData]>;

/**
 * The first pair whose bytes overlap among `written` arrays, or between a `read` array and a
 * written one (reads may share memory with each other), or null. Guards buffers that ORT writes.
 */
export function firstOverlap(written: Named, read: Named = []): [string, string] | null {
  const spans = new Map<ArrayBufferLike, Array<{ name: string; lo: number; hi: number }>>();
  const clash = (a: HostData) => spans.get(a.buffer)?.find((s) => a.byteOffset < s.hi && s.lo < a.byteOffset + a.byteLength);
  for (const [name, a] of written) {
    const c = clash(a);
    if (c) return [c.name, name];
    if (a.byteLength > 0) spans.set(a.buffer, [...(spans.get(a.buffer) ?? []), { name, lo: a.byteOffset, hi: a.byteOffset + a.byteLength }]);
  }
  for (const [name, a] of read) {
    const c = clash(a);
    if (c) return [c.name, name];
  }
  return null;
}

/** A deep copy: same dtype and dims, new storage. */
export function cloneTensor(t: HostTensor): HostTensor {
  return { dtype: t.dtype, dims: [...t.dims], data: t.data.slice() };
}

/** True when dtype and dims are equal (contents not compared). */
export function sameLayout(a: HostTensor, b: HostTensor): boolean {
  return a.dtype === b.dtype && a.dims.length === b.dims.length && a.dims.every((d, i) => d === b.dims[i]);
}

/** `float32[2,3]`, for error messages. */
export function describe(t: Pick<HostTensor, 'dtype' | 'dims'>): string {
  return `${t.dtype}${fmtDims(t.dims)}`;
}

export function fmtDims(dims: ReadonlyArray<number | string>): string {
  return `[${dims.join(',')}]`;
}

function arrayName(data: unknown): string {
  return (data as { constructor?: { name?: string } })?.constructor?.name ?? typeof data;
}

/** dst += src, elementwise, in place (gradient accumulation on the host). */
export function addInto(dst: Float32Array | Float64Array, src: Float32Array | Float64Array): void {
  for (let i = 0; i < dst.length; i++) dst[i]! += src[i]!;
}
