// Run a recorded Graph once: emit it, open a session, feed host arrays, return every output.
// For tests, tools and one-off evaluations; hot loops keep a Session (or a Trainer) open.

import type { Graph } from './ir/graph.ts';
import { emitOnnx } from './onnx/emit.ts';
import type { HostTensor } from './runtime/host.ts';
import { type RuntimeOptions, Session } from './runtime/session.ts';

/**
 * Float64 graphs default to ORT's 'basic' optimisation: at 'all', ORT fuses patterns into
 * com.microsoft kernels that exist in float32 only (x·sigmoid(x) → QuickGelu) or that store
 * constants as float32 attributes, which would break float64 reference computations.
 */
export async function compile(g: Graph, opts: RuntimeOptions & { name?: string } = {}): Promise<Session> {
  const f64 = g.inputs.some((i) => i.tensor.dtype === 'float64');
  const optimization = opts.optimization ?? (f64 ? 'basic' : undefined);
  return Session.create(emitOnnx(g), { ...opts, ...(optimization ? { optimization } : {}), name: opts.name ?? g.name });
}

export async function evalGraph(g: Graph, feeds: Record<string, HostTensor>, opts: RuntimeOptions = {}): Promise<Record<string, HostTensor>> {
  const s = await compile(g, opts);
  try {
    return await s.run(feeds);
  } finally {
    await s.release();
  }
}
