// Test helper: hand-built ONNX models (IR 10, opset 21) for the runtime adapter's tests, written
// straight with onnx-buf so these tests do not depend on the engine's own emitter.
//
// Leaves out everything but dense tensors of fixed or symbolic shape, default-domain ops, float
// attributes and float32/int64 scalar initializers: enough for `y = x + w`-style graphs.

import { create, toBinary } from '@bufbuild/protobuf';
import {
  AttributeProtoSchema,
  AttributeProto_AttributeType as AT,
  GraphProtoSchema,
  ModelProtoSchema,
  NodeProtoSchema,
  OperatorSetIdProtoSchema,
  TensorProtoSchema,
  TensorProto_DataType as DT,
  TensorShapeProtoSchema,
  TensorShapeProto_DimensionSchema,
  TypeProtoSchema,
  TypeProto_TensorSchema,
  ValueInfoProtoSchema,
} from 'onnx-buf';
import type { DType } from './host.ts';

/** A graph input or output: name, element type, dims (number = fixed, string = symbolic, null = no shape). */
export interface TinyValue {
  name: string;
  dtype: DType;
  dims: ReadonlyArray<number | string> | null;
}

export interface TinyNode {
  op: string;
  inputs: string[];
  outputs: string[];
  /** Float attributes only (e.g. Constant's value_float). */
  floats?: Record<string, number>;
}

export interface TinyModel {
  inputs: TinyValue[];
  outputs: TinyValue[];
  nodes: TinyNode[];
  /** Scalar constants by name: a number is float32, a bigint int64. */
  scalars?: Record<string, number | bigint>;
}

const ELEM: Record<DType, DT> = {
  float32: DT.FLOAT,
  float64: DT.DOUBLE,
  float16: DT.FLOAT16,
  int64: DT.INT64,
  int32: DT.INT32,
  bool: DT.BOOL,
  uint8: DT.UINT8,
};

/** Serialise a tiny model to ONNX bytes. */
export function tinyModel(m: TinyModel): Uint8Array {
  const graph = create(GraphProtoSchema, {
    name: 'tiny',
    input: m.inputs.map(valueInfo),
    output: m.outputs.map(valueInfo),
    node: m.nodes.map((n, i) =>
      create(NodeProtoSchema, {
        name: `${n.op.toLowerCase()}${i}`,
        opType: n.op,
        input: n.inputs,
        output: n.outputs,
        attribute: Object.entries(n.floats ?? {}).map(([name, f]) => create(AttributeProtoSchema, { name, type: AT.FLOAT, f })),
      }),
    ),
    initializer: Object.entries(m.scalars ?? {}).map(([name, v]) =>
      typeof v === 'bigint'
        ? create(TensorProtoSchema, { name, dataType: DT.INT64, dims: [], int64Data: [v] })
        : create(TensorProtoSchema, { name, dataType: DT.FLOAT, dims: [], floatData: [v] }),
    ),
  });
  const model = create(ModelProtoSchema, {
    irVersion: 10n,
    opsetImport: [create(OperatorSetIdProtoSchema, { domain: '', version: 21n })],
    producerName: 'opd-runtime-tests',
    graph,
  });
  return toBinary(ModelProtoSchema, model);
}

function valueInfo(v: TinyValue) {
  const shape =
    v.dims === null
      ? undefined
      : create(TensorShapeProtoSchema, {
          dim: v.dims.map((d) =>
            create(TensorShapeProto_DimensionSchema, {
              value: typeof d === 'number' ? { case: 'dimValue', value: BigInt(d) } : { case: 'dimParam', value: d },
            }),
          ),
        });
  const tensorType = create(TypeProto_TensorSchema, { elemType: ELEM[v.dtype], shape });
  return create(ValueInfoProtoSchema, { name: v.name, type: create(TypeProtoSchema, { value: { case: 'tensorType', value: tensorType } }) });
}
