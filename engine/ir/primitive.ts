// The primitive registry: each primitive says how to infer its output shapes, how to pull a
// gradient back through itself (its VJP), and how it is written as ONNX.
//
// Op constructors in engine/ops/ register their primitives at import time. Composites (RMSNorm,
// attention, ...) are plain functions of primitives and never appear here.

import type { Dim, Shape } from './dims.ts';
import type { DType, Node, Tensor } from './graph.ts';

export type AttrValue = number | string | boolean | readonly number[] | readonly Dim[] | undefined;
export type Attrs = Readonly<Record<string, AttrValue>>;

export interface OutSpec {
  shape: Shape;
  dtype: DType;
}

/** ONNX attribute values a primitive may emit. */
export type OnnxAttr = number | string | readonly number[] | { float: number } | { tensor: { dtype: DType; dims: number[]; data: number[] } };

export interface OnnxNodeSpec {
  opType: string;
  inputs: readonly string[];
  outputs: readonly string[];
  attrs?: Record<string, OnnxAttr>;
  domain?: string;
}

/** What the emitter offers a primitive while it is being written out. */
export interface EmitCtx {
  /** ONNX value name of an IR tensor. */
  name(t: Tensor): string;
  /** An int64 initializer with these values, as a 1-D tensor (or a scalar when `scalar`). */
  constI64(values: readonly number[], scalar?: boolean): string;
  /** A runtime int64 tensor holding `dims`; symbolic entries are computed from graph inputs. */
  shapeOf(dims: Shape): string;
  /** A fresh value name. */
  fresh(hint: string): string;
  node(spec: OnnxNodeSpec): void;
}

/**
 * `needs[i]` tells the rule whether input i wants a gradient, so it can skip work.
 * Return one entry per input: a gradient with the input's shape, or null.
 */
export type VjpRule = (node: Node, douts: readonly (Tensor | null)[], needs: readonly boolean[]) => (Tensor | null)[];

export interface Primitive {
  readonly name: string;
  infer(inputs: readonly Tensor[], attrs: Attrs): OutSpec[];
  /** Absent: the primitive is not differentiable (comparisons, integer ops); autodiff stops there. */
  vjp?: VjpRule;
  /** Absent: one ONNX node of the same name with the attrs copied. */
  emit?(node: Node, e: EmitCtx): void;
}

const registry = new Map<string, Primitive>();

export function definePrimitive(p: Primitive): Primitive {
  if (registry.has(p.name)) throw new Error(`primitive "${p.name}" registered twice`);
  registry.set(p.name, p);
  return p;
}

export function primitive(name: string): Primitive {
  const p = registry.get(name);
  if (!p) throw new Error(`unknown primitive "${name}" (is engine/ops imported?)`);
  return p;
}

export function allPrimitives(): Primitive[] {
  return [...registry.values()];
}
