// Reverse-mode autodiff over a recorded graph.
//
// `grad(y, wrt)` walks the nodes that lie on a path from some `wrt` tensor to `y`, newest first,
// asks each primitive's VJP rule for the input gradients it needs, and sums gradients where a
// tensor fans out. Backward nodes are appended to the same graph, so one ONNX graph holds both
// passes. Integer and bool tensors never receive gradients. Nothing here knows about ONNX.

import { fmtShape, shapeEq } from './ir/dims.ts';
import { type Node, type Tensor, isFloat } from './ir/graph.ts';
import { primitive } from './ir/primitive.ts';
import { scalar } from './ops/core.ts';
import { add } from './ops/elementwise.ts';
import { zeros } from './ops/shape.ts';

/**
 * Gradients of `y` with respect to each tensor in `wrt`. `y` must be a float scalar unless `dy`
 * (the seed, shaped like `y`) is given. A `wrt` tensor that `y` does not depend on gets a zero
 * gradient of its shape only when `allowUnused`; otherwise that is an error (usually a bug).
 */
export function grad(y: Tensor, wrt: readonly Tensor[], opts: { dy?: Tensor; allowUnused?: boolean } = {}): Tensor[] {
  const g = y.graph;
  if (!isFloat(y.dtype)) throw new Error(`grad: ${y} is not floating point`);
  if (!opts.dy && y.rank !== 0) throw new Error(`grad: ${y} is not a scalar; pass a seed gradient (dy)`);
  for (const w of wrt) if (!isFloat(w.dtype)) throw new Error(`grad: cannot differentiate with respect to ${w} (not floating point)`);

  const { nodes, onPath } = pathBetween(g.nodes.slice(), wrt, y);
  const acc = new Map<number, Tensor>();
  acc.set(y.id, opts.dy ?? scalar(g, 1, y.dtype));
  const accumulate = (t: Tensor, d: Tensor) => {
    if (!shapeEq(d.shape, t.shape)) throw new Error(`grad: VJP produced ${fmtShape(d.shape)} for ${t} (rule bug)`);
    const prev = acc.get(t.id);
    acc.set(t.id, prev ? add(prev, d) : d);
  };

  for (let i = nodes.length - 1; i >= 0; i--) {
    const node = nodes[i]!;
    const douts = node.outputs.map((o) => acc.get(o.id) ?? null);
    const rule = primitive(node.op).vjp;
    if (!rule || douts.every((d) => d === null)) continue; // no rule: not differentiable, no gradient flows
    const needs = node.inputs.map((t) => isFloat(t.dtype) && onPath.has(t.id));
    const dins = g.scope(`grad.${node.scope || node.op}`, () => rule(node, douts, needs));
    node.inputs.forEach((t, k) => {
      const d = dins[k];
      if (d && needs[k]) accumulate(t, d);
    });
  }

  return wrt.map((w) => {
    const d = acc.get(w.id);
    if (d) return d;
    if (!opts.allowUnused) throw new Error(`grad: ${y} does not depend on ${w}${g.inputName(w) ? ` (input "${g.inputName(w)}")` : ''}`);
    return zeros(g, w.shape, w.dtype);
  });
}

/** Nodes (in recorded order) whose outputs both depend on some `from` tensor and feed `to`. */
function pathBetween(nodes: readonly Node[], from: readonly Tensor[], to: Tensor) {
  const fwd = new Set(from.map((t) => t.id));
  for (const n of nodes) if (n.inputs.some((t) => fwd.has(t.id))) for (const o of n.outputs) fwd.add(o.id);
  const bwd = new Set([to.id]);
  for (let i = nodes.length - 1; i >= 0; i--) {
    const n = nodes[i]!;
    if (n.outputs.some((o) => bwd.has(o.id))) for (const t of n.inputs) bwd.add(t.id);
  }
  const onPath = new Set([...fwd].filter((id) => bwd.has(id)));
  return { nodes: nodes.filter((n) => n.outputs.some((o) => onPath.has(o.id))), onPath };
}
