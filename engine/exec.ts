// Run a recorded Graph once: emit it, open a session, feed host arrays, return every output.
// For tests, tools and one-off evaluations; hot loops keep a Session (or a Trainer) open.

import path from 'node:path';
import { atomicWriteFile } from './io/atomic.ts';
import type { Graph } from './ir/graph.ts';
import { emitOnnx } from './onnx/emit.ts';
import type { HostTensor } from './runtime/host.ts';
import { type RuntimeOptions, Session } from './runtime/session.ts';

/**
 * Float64 graphs default to ORT's 'basic' optimisation: at 'all', ORT fuses patterns into
 * com.microsoft kernels that exist in float32 only (x·sigmoid(x) → QuickGelu) or that store
 * constants as float32 attributes, which would break float64 reference computations.
 */
/** Session options plus `modelDir`: where a graph with external-data initializers is written and loaded from. */
export type CompileOptions = RuntimeOptions & { name?: string; modelDir?: string };

export async function compile(g: Graph, opts: CompileOptions = {}): Promise<Session> {
  const f64 = g.inputs.some((i) => i.tensor.dtype === 'float64');
  const optimization = opts.optimization ?? (f64 ? 'basic' : undefined);
  const { modelDir, ...rest } = opts;
  const so = { ...rest, ...(optimization ? { optimization } : {}), name: opts.name ?? g.name };
  if (g.externals.size === 0) return Session.create(emitOnnx(g), so);
  // external data is found relative to the model file: write it beside the data and load by path
  if (!modelDir) throw new Error(`compile ${g.name}: the graph has external-data initializers; pass modelDir (the folder of their file)`);
  const file = path.join(modelDir, `${g.name}.onnx`);
  await atomicWriteFile(file, emitOnnx(g));
  return Session.create(file, so);
}

export async function evalGraph(g: Graph, feeds: Record<string, HostTensor>, opts: RuntimeOptions = {}): Promise<Record<string, HostTensor>> {
  const s = await compile(g, opts);
  try {
    return await s.run(feeds);
  } finally {
    await s.release();
  }
}
