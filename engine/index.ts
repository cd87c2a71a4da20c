// The engine's public surface: graph IR, op constructors, autodiff, emitter.
// Model code imports from here; it never touches the emitter's protobufs or ONNX Runtime directly.

export * from './ir/dims.ts';
export * from './ir/graph.ts';
export * from './ops/index.ts';
export { grad } from './autodiff.ts';
export { emitOnnx } from './onnx/emit.ts';
export * from './nn/layers.ts';
export { dumpGraph, opHistogram } from './dump.ts';
