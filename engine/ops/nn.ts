// MatMul, Softmax, LogSoftmax, CumSum and Trilu with their VJPs.
//
// MatMul's weight gradient has a fast path: when a rank-2 weight B meets a batched A, dB is one
// [K, rows] x [rows, N] product over the flattened rows rather than a batched product summed
// afterwards (which would materialise a [batch, K, N] tensor).

import { type Dim, ShapeError, broadcastShapes, dimMul, fmtShape, normAxis } from '../ir/dims.ts';
import type { Tensor } from '../ir/graph.ts';
import { definePrimitive } from '../ir/primitive.ts';
import { requireSameDtype, unbroadcast } from './core.ts';
import { exp, mul, sub } from './elementwise.ts';
import { reduceSum } from './reduce.ts';
import { reshape, transpose } from './shape.ts';

/** Swap the last two axes. */
export function mT(x: Tensor): Tensor {
  const perm = [...x.shape.keys()];
  [perm[x.rank - 2], perm[x.rank - 1]] = [perm[x.rank - 1]!, perm[x.rank - 2]!];
  return transpose(x, perm);
}

definePrimitive({
  name: 'MatMul',
  infer: ([a, b]) => {
    const dtype = requireSameDtype([a!, b!], 'MatMul');
    if (a!.rank < 2 || b!.rank < 2) throw new ShapeError('MatMul', `operands must have rank >= 2: ${a} @ ${b}`);
    const [m, k1] = a!.shape.slice(-2);
    const [k2, n] = b!.shape.slice(-2);
    if (k1 !== k2) throw new ShapeError('MatMul', `inner dims differ: ${fmtShape(a!.shape)} @ ${fmtShape(b!.shape)}`);
    const batch = broadcastShapes(a!.shape.slice(0, -2), b!.shape.slice(0, -2), 'MatMul');
    return [{ shape: [...batch, m!, n!], dtype }];
  },
  vjp: (node, [g], need) => {
    const [a, b] = node.inputs;
    const dA = need[0] ? unbroadcast(matmul(g!, mT(b!)), a!.shape) : null;
    let dB: Tensor | null = null;
    if (need[1] && b!.rank === 2 && a!.rank > 2) {
      const rows: Dim = dimMul(...a!.shape.slice(0, -1));
      dB = matmul(mT(reshape(a!, [rows, a!.shape[a!.rank - 1]!])), reshape(g!, [rows, g!.shape[g!.rank - 1]!]));
    } else if (need[1]) {
      dB = unbroadcast(matmul(mT(a!), g!), b!.shape);
    }
    return [dA, dB];
  },
});
export function matmul(a: Tensor, b: Tensor): Tensor {
  return a.graph.apply('MatMul', [a, b])[0]!;
}

// Gemm with transB = 1: y = a · bᵀ for a [M, K], b [N, K]. `linear` uses it for frozen weights stored
// as initializers: MatMul(a, Transpose(b)) would make ONNX Runtime fold the transpose into a private
// copy of the weight per session, while Gemm reads b in place (the backward's dA = g · b too).
definePrimitive({
  name: 'Gemm',
  infer: ([a, b], attrs) => {
    const dtype = requireSameDtype([a!, b!], 'Gemm');
    if (attrs.transB !== 1 || a!.rank !== 2 || b!.rank !== 2) throw new ShapeError('Gemm', `only a [M, K] · b [N, K]ᵀ (transB = 1) is supported: ${a}, ${b}`);
    if (a!.shape[1] !== b!.shape[1]) throw new ShapeError('Gemm', `inner dims differ: ${fmtShape(a!.shape)} · ${fmtShape(b!.shape)}ᵀ`);
    return [{ shape: [a!.shape[0]!, b!.shape[0]!], dtype }];
  },
  vjp: (node, [g], need) => {
    const [a, b] = node.inputs;
    return [need[0] ? matmul(g!, b!) : null, need[1] ? matmul(mT(g!), a!) : null]; // dA [M, K], dB [N, K]
  },
});
/** a [M, K] · bᵀ, b [N, K] -> [M, N] (ONNX Gemm, transB = 1). */
export function gemmT(a: Tensor, b: Tensor): Tensor {
  return a.graph.apply('Gemm', [a, b], { transB: 1 })[0]!;
}

definePrimitive({
  name: 'Softmax',
  infer: ([x]) => [{ shape: x!.shape, dtype: x!.dtype }],
  vjp: (n, [g]) => {
    const y = n.outputs[0]!;
    const axis = n.attrs.axis as number;
    return [mul(y, sub(g!, reduceSum(mul(g!, y), axis, true)))];
  },
});
export function softmax(x: Tensor, axis = -1): Tensor {
  return x.graph.apply('Softmax', [x], { axis: normAxis(axis, x.rank, 'Softmax') })[0]!;
}

definePrimitive({
  name: 'LogSoftmax',
  infer: ([x]) => [{ shape: x!.shape, dtype: x!.dtype }],
  vjp: (n, [g]) => {
    const y = n.outputs[0]!;
    const axis = n.attrs.axis as number;
    return [sub(g!, mul(exp(y), reduceSum(g!, axis, true)))];
  },
});
export function logSoftmax(x: Tensor, axis = -1): Tensor {
  return x.graph.apply('LogSoftmax', [x], { axis: normAxis(axis, x.rank, 'LogSoftmax') })[0]!;
}

definePrimitive({
  name: 'CumSum',
  infer: ([x]) => [{ shape: x!.shape, dtype: x!.dtype }],
  // The adjoint of a running sum is the running sum taken the other way.
  vjp: (n, [g]) => [cumsum(g!, n.attrs.axis as number, { exclusive: !!n.attrs.exclusive, reverse: !n.attrs.reverse })],
  emit: (n, e) =>
    e.node({
      opType: 'CumSum',
      inputs: [e.name(n.inputs[0]!), e.constI64([n.attrs.axis as number], true)],
      outputs: [e.name(n.outputs[0]!)],
      attrs: { exclusive: n.attrs.exclusive ? 1 : 0, reverse: n.attrs.reverse ? 1 : 0 },
    }),
});
export function cumsum(x: Tensor, axis: number, opts: { exclusive?: boolean; reverse?: boolean } = {}): Tensor {
  return x.graph.apply('CumSum', [x], { axis: normAxis(axis, x.rank, 'CumSum'), exclusive: !!opts.exclusive, reverse: !!opts.reverse })[0]!;
}

definePrimitive({
  name: 'Trilu',
  infer: ([x]) => {
    if (x!.rank < 2) throw new ShapeError('Trilu', `needs rank >= 2, got ${x}`);
    return [{ shape: x!.shape, dtype: x!.dtype }];
  },
  vjp: (n, [g]) => [trilu(g!, !!n.attrs.upper, n.attrs.k as number)],
  emit: (n, e) =>
    e.node({
      opType: 'Trilu',
      inputs: [e.name(n.inputs[0]!), e.constI64([n.attrs.k as number], true)],
      outputs: [e.name(n.outputs[0]!)],
      attrs: { upper: n.attrs.upper ? 1 : 0 },
    }),
});
/** Keep the lower (or upper) triangle of the last two axes, offset by diagonal k; zero the rest. */
export function trilu(x: Tensor, upper: boolean, k = 0): Tensor {
  return x.graph.apply('Trilu', [x], { upper, k })[0]!;
}
