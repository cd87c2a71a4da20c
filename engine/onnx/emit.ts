// The ONNX emitter: a recorded Graph -> ModelProto bytes (IR 10, opset 21, default domain only).
//
// Only nodes that feed a declared output are written. Symbolic dimensions that an op needs as a
// run-time value (Reshape/Expand/Slice/Pad shapes) are computed from the graph inputs that carry
// them (Shape with start/end, then Add/Mul/Concat); each distinct shape is built once. Constants
// become initializers in raw little-endian form. Weights stay graph inputs in training graphs, so
// models stay small; external-data files for >2 GB initializers are left to the model loaders.

import { create, toBinary } from '@bufbuild/protobuf';
import {
  type AttributeProto,
  AttributeProtoSchema,
  AttributeProto_AttributeType as AT,
  GraphProtoSchema,
  ModelProtoSchema,
  type NodeProto,
  NodeProtoSchema,
  OperatorSetIdProtoSchema,
  StringStringEntryProtoSchema,
  type TensorProto,
  TensorProtoSchema,
  TensorProto_DataLocation,
  TensorShapeProtoSchema,
  TensorShapeProto_DimensionSchema,
  TypeProtoSchema,
  TypeProto_TensorSchema,
  type ValueInfoProto,
  ValueInfoProtoSchema,
} from 'onnx-buf';
import { type DimExpr, type Shape, parseDim } from '../ir/dims.ts';
import type { ConstData, DType, ExternalData, Graph, Node, Tensor } from '../ir/graph.ts';
import { type EmitCtx, type OnnxAttr, type OnnxNodeSpec, primitive } from '../ir/primitive.ts';
import { onnxDtype, typedArrayOf } from '../ops/index.ts';

export const OPSET = 21;
export const IR_VERSION = 10;

/** Serialise `g` as an ONNX model. */
export function emitOnnx(g: Graph): Uint8Array {
  return toBinary(ModelProtoSchema, buildModel(g));
}

export function buildModel(g: Graph) {
  const em = new Emitter(g);
  const graph = em.build();
  return create(ModelProtoSchema, {
    irVersion: BigInt(IR_VERSION),
    opsetImport: [create(OperatorSetIdProtoSchema, { domain: '', version: BigInt(OPSET) })],
    producerName: 'opd',
    graph,
  });
}

/** Nodes needed for the graph's outputs, in recorded (topological) order. */
export function liveNodes(g: Graph): Node[] {
  const live = new Set(g.outputs.map((o) => o.tensor.id));
  const keep: Node[] = [];
  for (let i = g.nodes.length - 1; i >= 0; i--) {
    const n = g.nodes[i]!;
    if (!n.outputs.some((o) => live.has(o.id))) continue;
    keep.push(n);
    for (const t of n.inputs) live.add(t.id);
  }
  return keep.reverse();
}

class Emitter implements EmitCtx {
  private names = new Map<number, string>();
  private nodes: NodeProto[] = [];
  private inits: TensorProto[] = [];
  private initCache = new Map<string, string>();
  private shapeCache = new Map<string, string>();
  private counter = 0;
  private current: Node | null = null;

  constructor(private readonly g: Graph) {
    for (const i of g.inputs) this.names.set(i.tensor.id, i.name);
    // An output produced by a node takes the output's name directly, so no Identity copy is needed.
    for (const o of g.outputs) {
      if (o.tensor.producer && !this.names.has(o.tensor.id)) this.names.set(o.tensor.id, o.name);
    }
  }

  build() {
    const live = liveNodes(this.g);
    for (const n of live) {
      this.current = n;
      const p = primitive(n.op);
      if (p.emit) p.emit(n, this);
      else this.node({ opType: n.op, inputs: n.inputs.map((t) => this.name(t)), outputs: n.outputs.map((t) => this.name(t)), attrs: plainAttrs(n) });
    }
    this.current = null;
    for (const o of this.g.outputs) {
      if (this.name(o.tensor) !== o.name) this.node({ opType: 'Identity', inputs: [this.name(o.tensor)], outputs: [o.name] });
    }
    return create(GraphProtoSchema, {
      name: this.g.name,
      node: this.nodes,
      initializer: this.inits,
      input: this.g.inputs.map((i) => valueInfo(i.name, i.tensor.shape, i.tensor.dtype)),
      output: this.g.outputs.map((o) => valueInfo(o.name, o.tensor.shape, o.tensor.dtype)),
    });
  }

  name(t: Tensor): string {
    let n = this.names.get(t.id);
    if (n) return n;
    n = `t${t.id}`;
    this.names.set(t.id, n);
    const data = this.g.constants.get(t.id);
    if (data) this.inits.push(tensorProto(n, t.shape as number[], t.dtype, data));
    const ext = this.g.externals.get(t.id);
    if (ext) this.inits.push(externalTensorProto(n, t.shape as number[], t.dtype, ext));
    return n;
  }

  fresh(hint: string): string {
    return `_${hint}${this.counter++}`;
  }

  constI64(values: readonly number[], isScalar = false): string {
    const key = `${isScalar ? 's' : 'v'}:${values.join(',')}`;
    let n = this.initCache.get(key);
    if (!n) {
      n = this.fresh('c');
      this.inits.push(tensorProto(n, isScalar ? [] : [values.length], 'int64', typedArrayOf('int64', values)));
      this.initCache.set(key, n);
    }
    return n;
  }

  shapeOf(dims: Shape): string {
    if (dims.every((d) => typeof d === 'number')) return this.constI64(dims as number[]);
    const key = dims.join(',');
    let out = this.shapeCache.get(key);
    if (out) return out;
    const parts = dims.map((d) => this.dimTensor(parseDim(d)));
    out = this.fresh('shape');
    this.node({ opType: 'Concat', inputs: parts, outputs: [out], attrs: { axis: 0 } });
    this.shapeCache.set(key, out);
    return out;
  }

  /** A 1-D int64 tensor [1] holding the run-time value of a dimension expression. */
  private dimTensor(e: DimExpr): string {
    if (e.kind === 'num') return this.constI64([e.value]);
    const key = `dim:${JSON.stringify(e)}`;
    const hit = this.shapeCache.get(key);
    if (hit) return hit;
    let out: string;
    if (e.kind === 'sym') {
      const src = this.g.inputs.find((i) => i.tensor.shape.includes(e.name));
      if (!src) throw new Error(`emit: symbolic dimension "${e.name}" appears in no graph input, so its value is unknown at run time`);
      const axis = src.tensor.shape.indexOf(e.name);
      out = this.fresh(`dim_${e.name}_`);
      this.node({ opType: 'Shape', inputs: [src.name], outputs: [out], attrs: { start: axis, end: axis + 1 } });
    } else {
      const terms = e.terms.map((t) => this.dimTensor(t));
      out = terms[0]!;
      for (const t of terms.slice(1)) {
        const next = this.fresh('dim');
        this.node({ opType: e.kind === 'add' ? 'Add' : 'Mul', inputs: [out, t], outputs: [next] });
        out = next;
      }
    }
    this.shapeCache.set(key, out);
    return out;
  }

  node(spec: OnnxNodeSpec): void {
    const scope = this.current ? `${this.current.scope ? this.current.scope + '/' : ''}${this.current.op}_${this.current.id}` : 'out';
    this.nodes.push(
      create(NodeProtoSchema, {
        name: `${scope}#${this.nodes.length}`,
        opType: spec.opType,
        domain: spec.domain ?? '',
        input: [...spec.inputs],
        output: [...spec.outputs],
        attribute: Object.entries(spec.attrs ?? {}).map(([k, v]) => attrProto(k, v)),
      }),
    );
  }
}

function plainAttrs(n: Node): Record<string, OnnxAttr> {
  const out: Record<string, OnnxAttr> = {};
  for (const [k, v] of Object.entries(n.attrs)) {
    if (v === undefined) continue;
    out[k] = typeof v === 'boolean' ? (v ? 1 : 0) : (v as OnnxAttr);
  }
  return out;
}

function attrProto(name: string, v: OnnxAttr): AttributeProto {
  if (typeof v === 'string') return create(AttributeProtoSchema, { name, type: AT.STRING, s: new TextEncoder().encode(v) });
  if (typeof v === 'number') {
    return Number.isInteger(v)
      ? create(AttributeProtoSchema, { name, type: AT.INT, i: BigInt(v) })
      : create(AttributeProtoSchema, { name, type: AT.FLOAT, f: v });
  }
  if (Array.isArray(v)) return create(AttributeProtoSchema, { name, type: AT.INTS, ints: v.map((x) => BigInt(x)) });
  if ('float' in v) return create(AttributeProtoSchema, { name, type: AT.FLOAT, f: v.float });
  if ('tensor' in v) {
    const { dtype, dims, data } = v.tensor;
    return create(AttributeProtoSchema, { name, type: AT.TENSOR, t: tensorProto('', dims, dtype, typedArrayOf(dtype, data)) });
  }
  throw new Error(`emit: unsupported attribute ${name}=${JSON.stringify(v)}`);
}

function tensorProto(name: string, dims: readonly number[], dtype: DType, data: ConstData): TensorProto {
  const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return create(TensorProtoSchema, { name, dims: dims.map((d) => BigInt(d)), dataType: onnxDtype(dtype), rawData: bytes.slice() });
}

function externalTensorProto(name: string, dims: readonly number[], dtype: DType, ext: ExternalData): TensorProto {
  const entry = (key: string, value: string) => create(StringStringEntryProtoSchema, { key, value });
  return create(TensorProtoSchema, {
    name,
    dims: dims.map((d) => BigInt(d)),
    dataType: onnxDtype(dtype),
    dataLocation: TensorProto_DataLocation.EXTERNAL,
    externalData: [entry('location', ext.file), entry('offset', String(ext.offset)), entry('length', String(ext.length))],
  });
}

function valueInfo(name: string, shape: Shape, dtype: DType): ValueInfoProto {
  const dim = shape.map((d) =>
    create(TensorShapeProto_DimensionSchema, { value: typeof d === 'number' ? { case: 'dimValue', value: BigInt(d) } : { case: 'dimParam', value: d } }),
  );
  const tensorType = create(TypeProto_TensorSchema, { elemType: onnxDtype(dtype), shape: create(TensorShapeProtoSchema, { dim }) });
  return create(ValueInfoProtoSchema, { name, type: create(TypeProtoSchema, { value: { case: 'tensorType', value: tensorType } }) });
}
