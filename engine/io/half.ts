// IEEE 754 binary16 (F16) and bfloat16 (BF16) <-> float32 conversion on raw bit patterns.
// Widening (F16/BF16 -> F32) is exact for every input: subnormals, ±0, ±inf, and NaN (payload kept).
// Narrowing (F32 -> F16/BF16) rounds to nearest, ties to even, as torch's .half()/.bfloat16() do;
// values past the largest finite half round to ±inf, and NaN stays a quiet NaN of the same sign.
// Leaves out: FP8 formats, stochastic rounding, other rounding modes.

let f16Table: Uint32Array | null = null;

/** float32 bit pattern of the F16 value with bit pattern `h` (0..0xffff). */
export function f16BitsToF32Bits(h: number): number {
  const sign = (h & 0x8000) << 16;
  const exp = (h >>> 10) & 0x1f;
  let mant = h & 0x3ff;
  if (exp === 0x1f) return (sign | 0x7f800000 | (mant << 13)) >>> 0; // inf, or NaN with its payload
  if (exp !== 0) return (sign | ((exp + 112) << 23) | (mant << 13)) >>> 0; // rebias 15 -> 127
  if (mant === 0) return sign >>> 0;
  // Subnormal half = mant * 2^-24, a normal float32: shift the leading 1 up to the implicit bit.
  let e = 113;
  while ((mant & 0x400) === 0) {
    mant <<= 1;
    e--;
  }
  return (sign | (e << 23) | ((mant & 0x3ff) << 13)) >>> 0;
}

/** F16 bit pattern nearest (ties to even) to the float32 with bit pattern `x`. */
export function f32BitsToF16Bits(x: number): number {
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  const mant = x & 0x7fffff;
  if (exp === 0xff) return mant === 0 ? sign | 0x7c00 : sign | 0x7e00 | (mant >>> 13);
  const he = exp - 112; // half exponent field if the result is normal
  if (he >= 0x1f) return sign | 0x7c00;
  if (he >= 1) return sign | roundShift((he << 23) | mant, 13);
  // Result is subnormal or zero: in units of 2^-24 it is (mant | 0x800000) * 2^(he - 14).
  const shift = 14 - he;
  if (shift > 24) return sign; // below half the smallest subnormal
  return sign | roundShift(mant | 0x800000, shift);
}

/** BF16 bit pattern nearest (ties to even) to the float32 with bit pattern `x`. */
export function f32BitsToBf16Bits(x: number): number {
  if ((x & 0x7fffffff) >>> 0 > 0x7f800000) return ((x >>> 16) | 0x40) & 0xffff; // keep NaN quiet
  return roundShift(x >>> 0, 16) & 0xffff; // a carry into the exponent correctly gives inf
}

/** `v >> shift` rounded to nearest, ties to even (0 <= v < 2^32, 1 <= shift <= 24). */
function roundShift(v: number, shift: number): number {
  const kept = v >>> shift;
  const rest = v & ((1 << shift) - 1);
  const half = 1 << (shift - 1);
  return rest > half || (rest === half && (kept & 1) === 1) ? kept + 1 : kept;
}

/** Widen F16 bit patterns to float32 through a 64K-entry table (built once, 256 KB). */
export function f16ToF32(src: Uint16Array): Float32Array {
  if (f16Table === null) {
    f16Table = new Uint32Array(65536);
    for (let h = 0; h < 65536; h++) f16Table[h] = f16BitsToF32Bits(h);
  }
  const out = new Float32Array(src.length);
  const bits = new Uint32Array(out.buffer); // write bits, so NaN payloads survive
  for (let i = 0; i < src.length; i++) bits[i] = f16Table[src[i]!]!;
  return out;
}

/** Widen BF16 bit patterns to float32: bf16 is the top half of a float32. */
export function bf16ToF32(src: Uint16Array): Float32Array {
  const out = new Float32Array(src.length);
  const bits = new Uint32Array(out.buffer);
  for (let i = 0; i < src.length; i++) bits[i] = src[i]! << 16;
  return out;
}

/** Narrow float32 values to F16 bit patterns, round to nearest even. */
export function f32ToF16(src: Float32Array): Uint16Array {
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  const out = new Uint16Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = f32BitsToF16Bits(bits[i]!);
  return out;
}

/** Narrow float32 values to BF16 bit patterns, round to nearest even. */
export function f32ToBf16(src: Float32Array): Uint16Array {
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  const out = new Uint16Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = f32BitsToBf16Bits(bits[i]!);
  return out;
}
