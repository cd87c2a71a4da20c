// Reductions (sum, mean, max over given axes) and their VJPs: the gradient is re-expanded to the
// input's shape; max routes it to the arg-max positions, split evenly among ties.

import { type Dim, dimMul, normAxis } from '../ir/dims.ts';
import type { Node, Tensor } from '../ir/graph.ts';
import { definePrimitive, type EmitCtx } from '../ir/primitive.ts';
import { installUnbroadcastDeps } from './core.ts';
import { cast, div, equal, mul } from './elementwise.ts';
import { dimValue, expand, reshape } from './shape.ts';

function keptShape(x: Tensor, axes: readonly number[], keepdims: boolean): Dim[] {
  const out: Dim[] = [];
  x.shape.forEach((d, i) => {
    if (!axes.includes(i)) out.push(d);
    else if (keepdims) out.push(1);
  });
  return out;
}

function emitReduce(opType: string) {
  return (n: Node, e: EmitCtx) =>
    e.node({
      opType,
      inputs: [e.name(n.inputs[0]!), e.constI64(n.attrs.axes as number[])],
      outputs: [e.name(n.outputs[0]!)],
      attrs: { keepdims: n.attrs.keepdims ? 1 : 0, noop_with_empty_axes: 1 }, // [] axes means 'none', as in the IR
    });
}

/** The upstream gradient reshaped to keepdims form and broadcast back over the input. */
function spread(n: Node, g: Tensor): Tensor {
  const x = n.inputs[0]!;
  const kept = keptShape(x, n.attrs.axes as number[], true);
  return expand(n.attrs.keepdims ? g : reshape(g, kept), x.shape);
}

function defineReduce(name: string, vjp: (n: Node, g: Tensor) => Tensor) {
  definePrimitive({
    name,
    infer: ([x], a) => [{ shape: keptShape(x!, a.axes as number[], a.keepdims as boolean), dtype: x!.dtype }],
    vjp: (n, [g]) => [vjp(n, g!)],
    emit: emitReduce(name),
  });
  return (x: Tensor, axes: number | readonly number[], keepdims = false): Tensor => {
    const list = (typeof axes === 'number' ? [axes] : [...axes]).map((a) => normAxis(a, x.rank, name));
    const sorted = [...new Set(list)].sort((p, q) => p - q);
    return x.graph.apply(name, [x], { axes: sorted, keepdims })[0]!;
  };
}

export const reduceSum = defineReduce('ReduceSum', (n, g) => spread(n, g));

export const reduceMean = defineReduce('ReduceMean', (n, g) => {
  const x = n.inputs[0]!;
  const count = dimMul(...(n.attrs.axes as number[]).map((a) => x.shape[a]!));
  const scale = typeof count === 'number' ? 1 / count : div(1, dimValue(x.graph, count, x.dtype));
  return mul(spread(n, g), scale);
});

export const reduceMax = defineReduce('ReduceMax', (n, g) => {
  const x = n.inputs[0]!;
  const y = n.outputs[0]!;
  const axes = n.attrs.axes as number[];
  const yk = n.attrs.keepdims ? y : reshape(y, keptShape(x, axes, true));
  const hit = cast(equal(x, yk), x.dtype);
  const ties = reduceSum(hit, axes, true);
  return mul(spread(n, g), div(hit, ties));
});

/** Σ x² over `axes` in one pass (ONNX ReduceSumSquare); d/dx = 2·x·g. */
export const reduceSumSquare = defineReduce('ReduceSumSquare', (n, g) => mul(spread(n, g), mul(n.inputs[0]!, 2)));

/** Sum of all elements, as a rank-0 tensor. */
export function sumAll(x: Tensor): Tensor {
  return x.rank === 0 ? x : reduceSum(x, [...x.shape.keys()], false);
}

/** Mean of all elements, as a rank-0 tensor. */
export function meanAll(x: Tensor): Tensor {
  return x.rank === 0 ? x : reduceMean(x, [...x.shape.keys()], false);
}

installUnbroadcastDeps(reduceSum, reshape);
