// Indexing primitives: Gather, GatherElements, GatherND, ScatterElements, ScatterND, ArgMax, TopK.
// Gradients of gathers are scatter-adds into zeros; index inputs are never differentiated.

import { ShapeError, normAxis } from '../ir/dims.ts';
import type { Tensor } from '../ir/graph.ts';
import { definePrimitive } from '../ir/primitive.ts';
import { unsqueeze, zeros } from './shape.ts';

const isIndex = (t: Tensor) => t.dtype === 'int64' || t.dtype === 'int32';
function requireIndex(t: Tensor, op: string) {
  if (!isIndex(t)) throw new ShapeError(op, `indices must be int64 or int32, got ${t}`);
}

definePrimitive({
  name: 'Gather',
  infer: ([x, idx], a) => {
    requireIndex(idx!, 'Gather');
    const ax = a.axis as number;
    return [{ shape: [...x!.shape.slice(0, ax), ...idx!.shape, ...x!.shape.slice(ax + 1)], dtype: x!.dtype }];
  },
  vjp: (n, [g]) => {
    const [x, idx] = n.inputs;
    if (n.attrs.axis !== 0) throw new Error('Gather: gradients are implemented for axis 0 only (use GatherElements)');
    return [scatterND(zeros(x!.graph, x!.shape, x!.dtype), unsqueeze(idx!, -1), g!, 'add'), null];
  },
});
/** Rows (or slices along `axis`) of `x` picked by integer `indices`. */
export function gather(x: Tensor, indices: Tensor, axis = 0): Tensor {
  return x.graph.apply('Gather', [x, indices], { axis: normAxis(axis, x.rank, 'Gather') })[0]!;
}

definePrimitive({
  name: 'GatherElements',
  infer: ([x, idx], a) => {
    requireIndex(idx!, 'GatherElements');
    if (idx!.rank !== x!.rank) throw new ShapeError('GatherElements', `indices ${idx} must have the rank of ${x}`);
    return [{ shape: idx!.shape, dtype: x!.dtype }];
  },
  vjp: (n, [g]) => {
    const [x, idx] = n.inputs;
    return [scatterElements(zeros(x!.graph, x!.shape, x!.dtype), idx!, g!, n.attrs.axis as number, 'add'), null];
  },
});
export function gatherElements(x: Tensor, indices: Tensor, axis: number): Tensor {
  return x.graph.apply('GatherElements', [x, indices], { axis: normAxis(axis, x.rank, 'GatherElements') })[0]!;
}

definePrimitive({
  name: 'GatherND',
  infer: ([x, idx]) => {
    requireIndex(idx!, 'GatherND');
    const k = idx!.shape[idx!.rank - 1];
    if (typeof k !== 'number') throw new ShapeError('GatherND', `last axis of ${idx} must be static`);
    return [{ shape: [...idx!.shape.slice(0, -1), ...x!.shape.slice(k)], dtype: x!.dtype }];
  },
  vjp: (n, [g]) => {
    const [x, idx] = n.inputs;
    return [scatterND(zeros(x!.graph, x!.shape, x!.dtype), idx!, g!, 'add'), null];
  },
});
export function gatherND(x: Tensor, indices: Tensor): Tensor {
  return x.graph.apply('GatherND', [x, indices])[0]!;
}

type Reduction = 'none' | 'add';

definePrimitive({
  name: 'ScatterElements',
  infer: ([x, idx, upd]) => {
    requireIndex(idx!, 'ScatterElements');
    return [{ shape: x!.shape, dtype: x!.dtype }];
  },
  vjp: (n, [g], need) => {
    const [, idx, upd] = n.inputs;
    const axis = n.attrs.axis as number;
    // With 'none' the scattered positions of data are overwritten, so their gradient is zero.
    const dData = n.attrs.reduction === 'add' ? g! : scatterElements(g!, idx!, zeros(g!.graph, upd!.shape, g!.dtype), axis, 'none');
    return [need[0] ? dData : null, null, need[2] ? gatherElements(g!, idx!, axis) : null];
  },
});
export function scatterElements(x: Tensor, indices: Tensor, updates: Tensor, axis: number, reduction: Reduction = 'none'): Tensor {
  return x.graph.apply('ScatterElements', [x, indices, updates], { axis: normAxis(axis, x.rank, 'ScatterElements'), reduction })[0]!;
}

definePrimitive({
  name: 'ScatterND',
  infer: ([x, idx]) => {
    requireIndex(idx!, 'ScatterND');
    return [{ shape: x!.shape, dtype: x!.dtype }];
  },
  vjp: (n, [g], need) => {
    const [, idx, upd] = n.inputs;
    const dData = n.attrs.reduction === 'add' ? g! : scatterND(g!, idx!, zeros(g!.graph, upd!.shape, g!.dtype), 'none');
    return [need[0] ? dData : null, null, need[2] ? gatherND(g!, idx!) : null];
  },
});
export function scatterND(x: Tensor, indices: Tensor, updates: Tensor, reduction: Reduction = 'none'): Tensor {
  return x.graph.apply('ScatterND', [x, indices, updates], { reduction })[0]!;
}

definePrimitive({
  name: 'ArgMax',
  infer: ([x], a) => {
    const ax = a.axis as number;
    const shape = a.keepdims ? x!.shape.map((d, i) => (i === ax ? 1 : d)) : x!.shape.filter((_, i) => i !== ax);
    return [{ shape, dtype: 'int64' }];
  },
});
/** Index of the first maximum along `axis` (ties resolve to the lowest index, as ONNX specifies). */
export function argMax(x: Tensor, axis: number, keepdims = false): Tensor {
  return x.graph.apply('ArgMax', [x], { axis: normAxis(axis, x.rank, 'ArgMax'), keepdims: keepdims ? 1 : 0, select_last_index: 0 })[0]!;
}

definePrimitive({
  name: 'TopK',
  infer: ([x], a) => {
    const ax = a.axis as number;
    const shape = x!.shape.map((d, i) => (i === ax ? (a.k as number) : d));
    return [
      { shape, dtype: x!.dtype },
      { shape, dtype: 'int64' },
    ];
  },
  vjp: (n, [g]) => {
    const [x] = n.inputs;
    const idx = n.outputs[1]!;
    return [g ? scatterElements(zeros(x!.graph, x!.shape, x!.dtype), idx, g, n.attrs.axis as number, 'add') : null];
  },
  emit: (n, e) =>
    e.node({
      opType: 'TopK',
      inputs: [e.name(n.inputs[0]!), e.constI64([n.attrs.k as number])],
      outputs: n.outputs.map((t) => e.name(t)),
      attrs: { axis: n.attrs.axis as number, largest: 1, sorted: 1 },
    }),
});
/** The k largest values along `axis`, sorted descending, and their indices. */
export function topK(x: Tensor, k: number, axis = -1): [Tensor, Tensor] {
  const [v, i] = x.graph.apply('TopK', [x], { k, axis: normAxis(axis, x.rank, 'TopK') });
  return [v!, i!];
}
