// Elementwise primitives (broadcasting binaries, unaries, comparisons, Where, Cast) and their VJPs.
// Each VJP is the textbook derivative; broadcasting is undone by `unbroadcast` in one place.

import { broadcastShapes } from '../ir/dims.ts';
import type { DType, Tensor } from '../ir/graph.ts';
import { definePrimitive, type VjpRule } from '../ir/primitive.ts';
import { type TensorLike, lift, requireSameDtype, unbroadcast } from './core.ts';

function binary(name: string, vjp?: VjpRule, outDtype?: DType) {
  definePrimitive({
    name,
    infer: ([a, b]) => {
      const dtype = requireSameDtype([a!, b!], name);
      return [{ shape: broadcastShapes(a!.shape, b!.shape, name), dtype: outDtype ?? dtype }];
    },
    vjp,
  });
  return (a: TensorLike, b: TensorLike): Tensor => {
    const [x, y] = lift([a, b], name);
    return x!.graph.apply(name, [x!, y!])[0]!;
  };
}

function unary(name: string, vjp?: VjpRule, outDtype?: DType) {
  definePrimitive({ name, infer: ([a]) => [{ shape: a!.shape, dtype: outDtype ?? a!.dtype }], vjp });
  return (a: Tensor): Tensor => a.graph.apply(name, [a])[0]!;
}

const both = (node: { inputs: readonly Tensor[] }, ga: Tensor | null, gb: Tensor | null) => [
  ga && unbroadcast(ga, node.inputs[0]!.shape),
  gb && unbroadcast(gb, node.inputs[1]!.shape),
];

export const add = binary('Add', (n, [g], need) => both(n, need[0] ? g! : null, need[1] ? g! : null));
export const sub = binary('Sub', (n, [g], need) => both(n, need[0] ? g! : null, need[1] ? neg(g!) : null));
export const mul = binary('Mul', (n, [g], need) => {
  const [a, b] = n.inputs;
  return both(n, need[0] ? mul(g!, b!) : null, need[1] ? mul(g!, a!) : null);
});
export const div = binary('Div', (n, [g], need) => {
  const [, b] = n.inputs;
  const y = n.outputs[0]!;
  // d(a/b)/db = -a/b^2 = -y/b
  return both(n, need[0] ? div(g!, b!) : null, need[1] ? neg(div(mul(g!, y), b!)) : null);
});
export const pow = binary('Pow', (n, [g], need) => {
  const [a, b] = n.inputs;
  const y = n.outputs[0]!;
  return both(
    n,
    need[0] ? mul(g!, mul(b!, pow(a!, sub(b!, 1)))) : null,
    need[1] ? mul(g!, mul(y, log(a!))) : null,
  );
});
/** Elementwise maximum; at ties the gradient goes to the first argument. */
export const maximum = binary('Max', (n, [g], need) => {
  const [a, b] = n.inputs;
  const takeA = greaterOrEqual(a!, b!);
  return both(n, need[0] ? where(takeA, g!, 0) : null, need[1] ? where(takeA, 0, g!) : null);
});
/** Elementwise minimum; at ties the gradient goes to the first argument. */
export const minimum = binary('Min', (n, [g], need) => {
  const [a, b] = n.inputs;
  const takeA = lessOrEqual(a!, b!);
  return both(n, need[0] ? where(takeA, g!, 0) : null, need[1] ? where(takeA, 0, g!) : null);
});

export const equal = binary('Equal', undefined, 'bool');
export const less = binary('Less', undefined, 'bool');
export const greater = binary('Greater', undefined, 'bool');
export const lessOrEqual = binary('LessOrEqual', undefined, 'bool');
export const greaterOrEqual = binary('GreaterOrEqual', undefined, 'bool');
export const and = binary('And');
export const or = binary('Or');

export const neg = unary('Neg', (_n, [g]) => [neg(g!)]);
export const exp = unary('Exp', (n, [g]) => [mul(g!, n.outputs[0]!)]);
export const log = unary('Log', (n, [g]) => [div(g!, n.inputs[0]!)]);
export const sqrt = unary('Sqrt', (n, [g]) => [div(mul(g!, 0.5), n.outputs[0]!)]);
export const reciprocal = unary('Reciprocal', (n, [g]) => {
  const y = n.outputs[0]!;
  return [neg(mul(g!, mul(y, y)))];
});
export const sigmoid = unary('Sigmoid', (n, [g]) => {
  const y = n.outputs[0]!;
  return [mul(g!, mul(y, sub(1, y)))];
});
export const tanh = unary('Tanh', (n, [g]) => {
  const y = n.outputs[0]!;
  return [mul(g!, sub(1, mul(y, y)))];
});
export const sin = unary('Sin', (n, [g]) => [mul(g!, cos(n.inputs[0]!))]);
export const cos = unary('Cos', (n, [g]) => [neg(mul(g!, sin(n.inputs[0]!)))]);
export const abs = unary('Abs', (n, [g]) => [mul(g!, sign(n.inputs[0]!))]);
export const erf = unary('Erf', (n, [g]) => {
  const x = n.inputs[0]!;
  return [mul(g!, mul(exp(neg(mul(x, x))), 2 / Math.sqrt(Math.PI)))];
});
export const identity = unary('Identity', (_n, [g]) => [g]);
export const sign = unary('Sign');
export const not = unary('Not');
export const isNaN = unary('IsNaN', undefined, 'bool');
export const isInf = unary('IsInf', undefined, 'bool');

definePrimitive({
  name: 'Where',
  infer: ([c, a, b]) => {
    if (c!.dtype !== 'bool') throw new Error(`Where: condition must be bool, got ${c}`);
    const dtype = requireSameDtype([a!, b!], 'Where');
    const ab = broadcastShapes(a!.shape, b!.shape, 'Where');
    return [{ shape: broadcastShapes(c!.shape, ab, 'Where'), dtype }];
  },
  vjp: (n, [g], need) => {
    const [c, a, b] = n.inputs;
    return [
      null,
      need[1] ? unbroadcast(where(c!, g!, 0), a!.shape) : null,
      need[2] ? unbroadcast(where(c!, 0, g!), b!.shape) : null,
    ];
  },
});
export function where(cond: Tensor, a: TensorLike, b: TensorLike): Tensor {
  const [x, y] = lift([a, b], 'Where');
  return cond.graph.apply('Where', [cond, x!, y!])[0]!;
}

definePrimitive({
  name: 'Cast',
  infer: ([a], attrs) => [{ shape: a!.shape, dtype: attrs.to as DType }],
  vjp: (n, [g]) => {
    const from = n.inputs[0]!.dtype;
    const floaty = (d: DType) => d === 'float32' || d === 'float64' || d === 'float16';
    return [floaty(from) && floaty(g!.dtype) ? cast(g!, from) : null];
  },
  emit: (n, e) =>
    e.node({ opType: 'Cast', inputs: [e.name(n.inputs[0]!)], outputs: [e.name(n.outputs[0]!)], attrs: { to: onnxDtype(n.attrs.to as DType) } }),
});
export function cast(x: Tensor, to: DType): Tensor {
  return x.dtype === to ? x : x.graph.apply('Cast', [x], { to })[0]!;
}

/** ONNX TensorProto.DataType codes. */
export function onnxDtype(d: DType): number {
  const codes: Record<DType, number> = { float32: 1, uint8: 2, int32: 6, int64: 7, bool: 9, float16: 10, float64: 11 };
  return codes[d];
}

/** True where every element is finite (neither NaN nor ±Inf). */
export function isFinite(x: Tensor): Tensor {
  return not(or(isNaN(x), isInf(x)));
}

/** Clamp to [lo, hi]; the gradient passes inside the interval (ties included) and is zero outside. */
export function clip(x: Tensor, lo: number, hi: number): Tensor {
  return minimum(maximum(x, lo), hi);
}
