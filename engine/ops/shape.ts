// Shape primitives: Reshape, Transpose, Expand, Concat, Slice, Pad, plus two helpers that only
// produce values (DimValue: a symbolic dimension as a scalar; Zeros: a zero tensor of any shape).
// Shapes given to these ops may hold symbolic dims; the emitter computes them at run time.

import { type Dim, type Shape, ShapeError, broadcastShapes, dimAdd, dimMul, dimSub, fmtShape, normAxis, numelOf } from '../ir/dims.ts';
import type { DType, Graph, Tensor } from '../ir/graph.ts';
import { definePrimitive } from '../ir/primitive.ts';
import { onnxDtype } from './elementwise.ts';
import { unbroadcast } from './core.ts';

definePrimitive({
  name: 'Reshape',
  infer: ([x], a) => {
    const shape = a.shape as Dim[];
    if (numelOf(x!.shape) !== numelOf(shape))
      throw new ShapeError('Reshape', `cannot reshape ${fmtShape(x!.shape)} (${numelOf(x!.shape)} elements) to ${fmtShape(shape)} (${numelOf(shape)})`);
    return [{ shape, dtype: x!.dtype }];
  },
  vjp: (n, [g]) => [reshape(g!, n.inputs[0]!.shape)],
  emit: (n, e) =>
    e.node({
      opType: 'Reshape',
      inputs: [e.name(n.inputs[0]!), e.shapeOf(n.attrs.shape as Dim[])],
      outputs: [e.name(n.outputs[0]!)],
      attrs: { allowzero: 1 },
    }),
});
export function reshape(x: Tensor, shape: Shape): Tensor {
  return x.graph.apply('Reshape', [x], { shape: [...shape] })[0]!;
}

definePrimitive({
  name: 'Transpose',
  infer: ([x], a) => {
    const perm = a.perm as number[];
    if (perm.length !== x!.rank || [...perm].sort().some((p, i) => p !== i))
      throw new ShapeError('Transpose', `perm [${perm}] is not a permutation of rank ${x!.rank} for ${x}`);
    return [{ shape: perm.map((p) => x!.shape[p]!), dtype: x!.dtype }];
  },
  vjp: (n, [g]) => {
    const perm = n.attrs.perm as number[];
    const inv = perm.map((_, i) => perm.indexOf(i));
    return [transpose(g!, inv)];
  },
});
export function transpose(x: Tensor, perm: readonly number[]): Tensor {
  return x.graph.apply('Transpose', [x], { perm: [...perm] })[0]!;
}

definePrimitive({
  name: 'Expand',
  infer: ([x], a) => [{ shape: broadcastShapes(x!.shape, a.shape as Dim[], 'Expand'), dtype: x!.dtype }],
  vjp: (n, [g]) => [unbroadcast(g!, n.inputs[0]!.shape)],
  emit: (n, e) =>
    e.node({ opType: 'Expand', inputs: [e.name(n.inputs[0]!), e.shapeOf(n.attrs.shape as Dim[])], outputs: [e.name(n.outputs[0]!)] }),
});
export function expand(x: Tensor, shape: Shape): Tensor {
  return x.graph.apply('Expand', [x], { shape: [...shape] })[0]!;
}

definePrimitive({
  name: 'Concat',
  infer: (xs, a) => {
    const first = xs[0]!;
    const axis = a.axis as number;
    const shape = [...first.shape];
    for (const x of xs.slice(1)) {
      if (x.rank !== first.rank || x.shape.some((d, i) => i !== axis && d !== first.shape[i]))
        throw new ShapeError('Concat', `shapes ${xs.map((t) => fmtShape(t.shape)).join(', ')} differ off axis ${axis}`);
      shape[axis] = dimAdd(shape[axis]!, x.shape[axis]!);
    }
    return [{ shape, dtype: first.dtype }];
  },
  vjp: (n, [g], need) => {
    const axis = n.attrs.axis as number;
    let at: Dim = 0;
    return n.inputs.map((x, i) => {
      const start = at;
      at = dimAdd(at, x.shape[axis]!);
      return need[i] ? slice(g!, [start], [at], [axis]) : null;
    });
  },
});
export function concat(xs: readonly Tensor[], axis: number): Tensor {
  if (xs.length === 1) return xs[0]!;
  return xs[0]!.graph.apply('Concat', xs, { axis: normAxis(axis, xs[0]!.rank, 'Concat') })[0]!;
}

definePrimitive({
  name: 'Slice',
  infer: ([x], a) => {
    const shape = [...x!.shape];
    const [starts, ends, axes] = [a.starts as Dim[], a.ends as Dim[], a.axes as number[]];
    axes.forEach((ax, i) => (shape[ax] = dimSub(ends[i]!, starts[i]!)));
    return [{ shape, dtype: x!.dtype }];
  },
  vjp: (n, [g]) => {
    const x = n.inputs[0]!;
    const [starts, ends, axes] = [n.attrs.starts as Dim[], n.attrs.ends as Dim[], n.attrs.axes as number[]];
    const pads: Dim[] = new Array(2 * x.rank).fill(0);
    axes.forEach((ax, i) => {
      pads[ax] = starts[i]!;
      pads[x.rank + ax] = dimSub(x.shape[ax]!, ends[i]!);
    });
    return [pad(g!, pads)];
  },
  emit: (n, e) =>
    e.node({
      opType: 'Slice',
      inputs: [e.name(n.inputs[0]!), e.shapeOf(n.attrs.starts as Dim[]), e.shapeOf(n.attrs.ends as Dim[]), e.constI64(n.attrs.axes as number[])],
      outputs: [e.name(n.outputs[0]!)],
    }),
});
/** x[start:end] along each listed axis (step 1; bounds must lie inside the tensor). */
export function slice(x: Tensor, starts: readonly Dim[], ends: readonly Dim[], axes: readonly number[]): Tensor {
  const ax = axes.map((a) => normAxis(a, x.rank, 'Slice'));
  ax.forEach((a, i) => {
    const [s, e, d] = [starts[i]!, ends[i]!, x.shape[a]!];
    if (typeof s === 'number' && (s < 0 || (typeof d === 'number' && s > d)))
      throw new ShapeError('Slice', `start ${s} outside axis ${a} of ${x}`);
    if (typeof e === 'number' && typeof d === 'number' && e > d) throw new ShapeError('Slice', `end ${e} outside axis ${a} of ${x}`);
  });
  return x.graph.apply('Slice', [x], { starts: [...starts], ends: [...ends], axes: ax })[0]!;
}

definePrimitive({
  name: 'Pad',
  infer: ([x], a) => {
    const pads = a.pads as Dim[];
    return [{ shape: x!.shape.map((d, i) => dimAdd(pads[i]!, d, pads[x!.rank + i]!)), dtype: x!.dtype }];
  },
  vjp: (n, [g]) => {
    const x = n.inputs[0]!;
    const pads = n.attrs.pads as Dim[];
    const axes = [...x.shape.keys()];
    return [slice(g!, axes.map((i) => pads[i]!), axes.map((i) => dimAdd(pads[i]!, x.shape[i]!)), axes)];
  },
  emit: (n, e) =>
    e.node({ opType: 'Pad', inputs: [e.name(n.inputs[0]!), e.shapeOf(n.attrs.pads as Dim[])], outputs: [e.name(n.outputs[0]!)] }),
});
/** Zero padding: `pads` = [begin_0 .. begin_{r-1}, end_0 .. end_{r-1}] as in ONNX. */
export function pad(x: Tensor, pads: readonly Dim[]): Tensor {
  if (pads.length !== 2 * x.rank) throw new ShapeError('Pad', `needs ${2 * x.rank} pads for ${x}, got ${pads.length}`);
  return x.graph.apply('Pad', [x], { pads: [...pads] })[0]!;
}

definePrimitive({
  name: 'DimValue',
  infer: (_x, a) => [{ shape: [], dtype: a.dtype as DType }],
  emit: (n, e) => {
    const asI64 = e.shapeOf([n.attrs.dim as Dim]);
    const cast = e.fresh('dimcast');
    e.node({ opType: 'Cast', inputs: [asI64], outputs: [cast], attrs: { to: onnxDtype(n.attrs.dtype as DType) } });
    e.node({ opType: 'Reshape', inputs: [cast, e.constI64([])], outputs: [e.name(n.outputs[0]!)] });
  },
});
/** The run-time value of a (symbolic) dimension as a rank-0 tensor. */
export function dimValue(g: Graph, dim: Dim, dtype: DType): Tensor {
  return g.apply('DimValue', [], { dim, dtype })[0]!;
}

definePrimitive({
  name: 'Zeros',
  infer: (_x, a) => [{ shape: a.shape as Dim[], dtype: a.dtype as DType }],
  emit: (n, e) =>
    e.node({
      opType: 'ConstantOfShape',
      inputs: [e.shapeOf(n.attrs.shape as Dim[])],
      outputs: [e.name(n.outputs[0]!)],
      attrs: { value: { tensor: { dtype: n.attrs.dtype as DType, dims: [1], data: [0] } } },
    }),
});
export function zeros(g: Graph, shape: Shape, dtype: DType): Tensor {
  return g.apply('Zeros', [], { shape: [...shape], dtype })[0]!;
}

/** Insert a size-1 axis at `axis` (negative counts from the end of the result). */
export function unsqueeze(x: Tensor, axis: number): Tensor {
  const a = normAxis(axis, x.rank + 1, 'unsqueeze');
  return reshape(x, [...x.shape.slice(0, a), 1, ...x.shape.slice(a)]);
}

/** Remove a size-1 axis. */
export function squeeze(x: Tensor, axis: number): Tensor {
  const a = normAxis(axis, x.rank, 'squeeze');
  if (x.shape[a] !== 1) throw new ShapeError('squeeze', `axis ${a} of ${x} is not 1`);
  return reshape(x, [...x.shape.slice(0, a), ...x.shape.slice(a + 1)]);
}

/** Flatten all but the last axis: [..., D] -> [N, D]. */
export function flattenRows(x: Tensor): Tensor {
  return reshape(x, [dimMul(...x.shape.slice(0, -1)), x.shape[x.rank - 1]!]);
}
