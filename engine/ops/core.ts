// Shared helpers for op constructors: scalar lifting, constant caching, and the one
// un-broadcast helper every broadcasting VJP uses.

import { type Shape, fmtShape, shapeEq } from '../ir/dims.ts';
import { type DType, type Graph, Tensor, isFloat } from '../ir/graph.ts';

export type TensorLike = Tensor | number;

const scalarCache = new WeakMap<Graph, Map<string, Tensor>>();

/** A rank-0 constant of `dtype`, shared within a graph. */
export function scalar(g: Graph, value: number, dtype: DType): Tensor {
  let cache = scalarCache.get(g);
  if (!cache) scalarCache.set(g, (cache = new Map()));
  const key = `${dtype}:${Object.is(value, -0) ? '-0' : value}`;
  let t = cache.get(key);
  if (!t) {
    t = g.constant(typedArrayOf(dtype, [value]), [], dtype);
    cache.set(key, t);
  }
  return t;
}

export function typedArrayOf(dtype: DType, values: readonly number[]) {
  switch (dtype) {
    case 'float32':
      return Float32Array.from(values);
    case 'float64':
      return Float64Array.from(values);
    case 'int64':
      return BigInt64Array.from(values, (v) => BigInt(v));
    case 'int32':
      return Int32Array.from(values);
    case 'bool':
    case 'uint8':
      return Uint8Array.from(values);
    case 'float16':
      throw new Error('float16 constants are not supported; build in float32 and Cast');
  }
}

/** Turn numbers into constants of the dtype of the first tensor argument. */
export function lift(args: readonly TensorLike[], op: string): Tensor[] {
  const like = args.find((a): a is Tensor => a instanceof Tensor);
  if (!like) throw new Error(`${op}: needs at least one tensor argument`);
  return args.map((a) => (a instanceof Tensor ? a : scalar(like.graph, a, like.dtype)));
}

export function requireFloat(t: Tensor, op: string): void {
  if (!isFloat(t.dtype)) throw new Error(`${op}: expects a floating-point tensor, got ${t}`);
}

export function requireSameDtype(ts: readonly Tensor[], op: string): DType {
  const d = ts[0]!.dtype;
  for (const t of ts) if (t.dtype !== d) throw new Error(`${op}: dtype mismatch: ${ts.map(String).join(' vs ')}`);
  return d;
}

// `unbroadcast` needs reduceSum and reshape; they live in other op files which import this one,
// so they are injected at load time to keep the import graph acyclic.
let reduceSumImpl: (x: Tensor, axes: number[], keepdims: boolean) => Tensor;
let reshapeImpl: (x: Tensor, shape: Shape) => Tensor;
export function installUnbroadcastDeps(rs: typeof reduceSumImpl, rh: typeof reshapeImpl): void {
  reduceSumImpl = rs;
  reshapeImpl = rh;
}

/**
 * Sum a gradient `g` (shaped like a broadcast result) back down to `shape`: over the leading axes
 * `shape` lacks, and over every axis where `shape` has 1 and `g` does not.
 */
export function unbroadcast(g: Tensor, shape: Shape): Tensor {
  if (shapeEq(g.shape, shape)) return g;
  const lead = g.rank - shape.length;
  if (lead < 0) throw new Error(`unbroadcast: gradient ${g} has lower rank than ${fmtShape(shape)}`);
  const axes: number[] = [];
  for (let i = 0; i < g.rank; i++) {
    if (i < lead) axes.push(i);
    else if (shape[i - lead] === 1 && g.shape[i] !== 1) axes.push(i);
  }
  let r = axes.length ? reduceSumImpl(g, axes, true) : g;
  if (!shapeEq(r.shape, shape)) r = reshapeImpl(r, shape);
  return r;
}
