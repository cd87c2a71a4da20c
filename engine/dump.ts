// A readable text dump of a graph: one line per node with output shapes, op, inputs, attributes and
// scope. Tests snapshot this text (never model bytes); people read it to see what a graph does.

import { fmtShape } from './ir/dims.ts';
import type { Graph, Tensor } from './ir/graph.ts';
import { liveNodes } from './onnx/emit.ts';

export interface DumpOptions {
  /** Only nodes that feed an output (what the emitter writes). Default true. */
  liveOnly?: boolean;
}

export function dumpGraph(g: Graph, opts: DumpOptions = {}): string {
  const nodes = opts.liveOnly === false ? g.nodes : liveNodes(g);
  const ref = (t: Tensor) => {
    const input = g.inputName(t);
    if (input) return input;
    const data = g.constants.get(t.id);
    if (data) return data.length === 1 ? `const(${String(data[0])})` : `const%${t.id}${fmtShape(t.shape)}`;
    return `%${t.id}`;
  };
  const lines = [`graph ${g.name}`];
  for (const i of g.inputs) lines.push(`  input  ${i.name}: ${fmtShape(i.tensor.shape)} ${i.tensor.dtype}`);
  for (const n of nodes) {
    const outs = n.outputs.map((o) => `%${o.id}${fmtShape(o.shape)}${short(o.dtype)}`).join(', ');
    const attrs = Object.entries(n.attrs)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => `${k}=${Array.isArray(v) ? `[${v.join(',')}]` : String(v)}`)
      .join(' ');
    const scope = n.scope ? `  # ${n.scope}` : '';
    lines.push(`  ${outs} = ${n.op}(${n.inputs.map(ref).join(', ')})${attrs ? ' ' + attrs : ''}${scope}`);
  }
  for (const o of g.outputs) lines.push(`  output ${o.name} = ${ref(o.tensor)}`);
  return lines.join('\n');
}

/** Op counts, e.g. for checking that a graph has the structure a test expects. */
export function opHistogram(g: Graph): Record<string, number> {
  const h: Record<string, number> = {};
  for (const n of liveNodes(g)) h[n.op] = (h[n.op] ?? 0) + 1;
  return h;
}

function short(d: string): string {
  return ({ float32: 'f32', float64: 'f64', float16: 'f16', int64: 'i64', int32: 'i32', bool: 'b', uint8: 'u8' } as Record<string, string>)[d] ?? d;
}
