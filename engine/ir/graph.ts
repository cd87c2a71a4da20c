// The graph IR: symbolic tensors (shape + dtype) and the nodes that produce them.
//
// A `Graph` records primitive applications in the order they are built, which is a topological
// order; autodiff appends its backward nodes to the same list. Tensors know their graph, so op
// constructors take tensors and need no global "current graph". Constants are stored beside the
// graph and become ONNX initializers. There is no control flow: every graph is a straight line.

import { type Dim, type Shape, ShapeError, fmtShape } from './dims.ts';
import { type Attrs, primitive } from './primitive.ts';

export type DType = 'float32' | 'float64' | 'float16' | 'int64' | 'int32' | 'bool' | 'uint8';
export type { Dim, Shape };

export const isFloat = (d: DType): boolean => d === 'float32' || d === 'float64' || d === 'float16';

export interface ExternalData {
  file: string;
  offset: number;
  length: number;
}

export type ConstData = Float32Array | Float64Array | BigInt64Array | Int32Array | Uint8Array | Uint16Array;

export class Tensor {
  constructor(
    readonly graph: Graph,
    readonly id: number,
    readonly shape: Shape,
    readonly dtype: DType,
    readonly producer: Node | null,
  ) {}

  get rank(): number {
    return this.shape.length;
  }

  /** Readable handle for errors and dumps: `%12[B, T, 64]f32`. */
  toString(): string {
    return `%${this.id}${fmtShape(this.shape)}${this.dtype}`;
  }
}

export interface Node {
  readonly id: number;
  readonly op: string;
  readonly inputs: readonly Tensor[];
  readonly outputs: readonly Tensor[];
  readonly attrs: Attrs;
  /** Free-form label carried into the dump and ONNX node names (e.g. "layers.0.attn.q"). */
  readonly scope: string;
}

export interface GraphInput {
  readonly name: string;
  readonly tensor: Tensor;
}

export class Graph {
  readonly nodes: Node[] = [];
  readonly inputs: GraphInput[] = [];
  readonly outputs: { name: string; tensor: Tensor }[] = [];
  readonly constants = new Map<number, ConstData>();
  /** Initializers whose bytes live in a file beside the model (see `external`). */
  readonly externals = new Map<number, ExternalData>();
  private nextId = 0;
  private scopes: string[] = [];

  constructor(readonly name = 'opd') {}

  /** Declare a graph input. Symbolic dims (strings) become ONNX dim params. */
  input(name: string, shape: Shape, dtype: DType = 'float32'): Tensor {
    if (this.inputs.some((i) => i.name === name)) throw new Error(`graph input "${name}" declared twice`);
    const t = new Tensor(this, this.nextId++, [...shape], dtype, null);
    this.inputs.push({ name, tensor: t });
    return t;
  }

  /** A constant tensor stored as an initializer. `data.length` must equal the element count. */
  constant(data: ConstData, shape: readonly number[], dtype: DType): Tensor {
    const n = shape.reduce((a, b) => a * b, 1);
    if (data.length !== n) throw new ShapeError('Constant', `data has ${data.length} elements, shape ${fmtShape(shape)} needs ${n}`);
    const t = new Tensor(this, this.nextId++, [...shape], dtype, null);
    this.constants.set(t.id, data);
    return t;
  }

  output(name: string, t: Tensor): void {
    if (t.graph !== this) throw new Error(`output "${name}" belongs to another graph`);
    if (this.outputs.some((o) => o.name === name)) throw new Error(`graph output "${name}" declared twice`);
    this.outputs.push({ name, tensor: t });
  }

  /** Record one primitive application; shapes and dtypes come from the primitive's `infer`. */
  apply(op: string, inputs: readonly Tensor[], attrs: Attrs = {}): Tensor[] {
    for (const t of inputs) if (t.graph !== this) throw new Error(`${op}: input ${t} belongs to another graph`);
    const prim = primitive(op);
    const outs = prim.infer(inputs, attrs);
    const node: { -readonly [K in keyof Node]: Node[K] } = {
      id: this.nodes.length,
      op,
      inputs: [...inputs],
      outputs: [],
      attrs,
      scope: this.scopes.join('.'),
    };
    node.outputs = outs.map((o) => new Tensor(this, this.nextId++, o.shape, o.dtype, node));
    this.nodes.push(node);
    return node.outputs as Tensor[];
  }

  /** Run `fn` with `name` appended to the scope of every node it records. */
  scope<R>(name: string, fn: () => R): R {
    this.scopes.push(name);
    try {
      return fn();
    } finally {
      this.scopes.pop();
    }
  }

  /**
   * A constant whose bytes stay in a file (ONNX external data): `file` is relative to the folder the
   * model is loaded from, `offset` and `length` in bytes. Frozen weights use this so a session loads
   * them once from disk and they never pass through JS.
   */
  external(ref: ExternalData, shape: readonly number[], dtype: DType): Tensor {
    const t = new Tensor(this, this.nextId++, [...shape], dtype, null);
    this.externals.set(t.id, ref);
    return t;
  }

  isConstant(t: Tensor): boolean {
    return this.constants.has(t.id) || this.externals.has(t.id);
  }

  inputName(t: Tensor): string | undefined {
    return this.inputs.find((i) => i.tensor === t)?.name;
  }
}
