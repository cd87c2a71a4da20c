// A frozen base model for LoRA: its weights written once into `<dir>/base.bin` and declared in every
// graph as external-data initializers, so ONNX Runtime maps them from the file at session creation
// and they never pass through JS again, at any step (what a GPU would otherwise copy per step).
//
// What keeps it to one physical copy, measured on this machine (bench/probe notes in the README):
// - offsets are page-aligned, so ORT maps the file instead of reading it into its own buffer;
// - no Transpose of a weight (engine `linear` uses Gemm for initializers), so nothing is folded into
//   a private transposed copy;
// - MLAS prepacking is off for these sessions (`disablePrepacking`), or each would pack a copy;
// - the LM head is declared twice over the same bytes: whole (the embedding Gather, last-token
//   logits) and as row chunks (the chunked log-softmax), never sliced in the graph.
// Every session maps the same file pages: RSS counts them once per session, PSS once in all.

import { mkdirSync } from 'node:fs';
import path from 'node:path';
import type { DType, Graph } from '../../engine/index.ts';
import { scalar } from '../../engine/index.ts';
import { atomicWriteFile } from '../../engine/io/atomic.ts';
import { param } from '../../engine/train/graph.ts';
import { type ModelConfig, tensorShapes } from './config.ts';
import { LORA_SCALE, type Params, type WeightDeclarer, headChunkKey } from './lm.ts';
import { type LoraSpec, loraScale, loraShapes } from './lora.ts';
import type { Weights } from './weights.ts';

const PAGE = 4096;
export const BASE_FILE = 'base.bin';

export interface FrozenBase {
  /** Folder holding base.bin; sessions that use it are compiled into it (external data is relative). */
  dir: string;
  entries: Map<string, { offset: number; length: number; shape: number[] }>;
  /** Rows per head chunk (page-aligned chunk starts). */
  headRows: number;
}

const align = (n: number) => Math.ceil(n / PAGE) * PAGE;
const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));

/** Write `weights` (float32) to `<dir>/base.bin`, page-aligned, atomically; returns the layout. */
export async function writeFrozenBase(dir: string, c: ModelConfig, weights: Weights, opts: { headRows?: number } = {}): Promise<FrozenBase> {
  mkdirSync(dir, { recursive: true });
  const entries = new Map<string, { offset: number; length: number; shape: number[] }>();
  let at = 0;
  for (const [name, shape] of tensorShapes(c)) {
    const data = weights.get(name);
    if (!data) throw new Error(`frozen base: the model has no tensor "${name}"`);
    entries.set(name, { offset: at, length: data.byteLength, shape });
    at = align(at + data.byteLength);
  }
  const chunks = function* () {
    let pos = 0;
    for (const [name, e] of entries) {
      if (e.offset > pos) yield new Uint8Array(e.offset - pos);
      const d = weights.get(name)!;
      yield new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
      pos = e.offset + e.length;
    }
  };
  await atomicWriteFile(path.join(dir, BASE_FILE), chunks());
  // a chunk of rows must start on a page: rows × D × 4 bytes a multiple of the page size
  const step = PAGE / gcd(PAGE, c.hiddenSize * 4);
  const headRows = Math.max(step, Math.round((opts.headRows ?? 8192) / step) * step);
  return { dir, entries, headRows };
}

/**
 * Declare the base as initializers and the adapters of `spec` as inputs (or trainable params, for
 * train graphs, with `weightDecay`). The params also get LoRA's scale and the head's row chunks.
 */
export function frozenWeights(base: FrozenBase, spec: LoraSpec, o: { trainable?: boolean; weightDecay?: number } = {}): WeightDeclarer {
  return (g: Graph, c: ModelConfig, dtype: DType): Params => {
    if (dtype !== 'float32') throw new Error(`frozen base: weights are float32 on disk, the graph computes in ${dtype}`);
    const p: Params = {};
    for (const [name, e] of base.entries) p[name] = g.external({ file: BASE_FILE, offset: e.offset, length: e.length }, e.shape, dtype);
    const head = base.entries.get(c.tieWordEmbeddings ? 'model.embed_tokens.weight' : 'lm_head.weight')!;
    const rowBytes = c.hiddenSize * 4;
    for (let start = 0, i = 0; start < c.vocabSize; start += base.headRows, i++) {
      const rows = Math.min(base.headRows, c.vocabSize - start);
      p[headChunkKey(i)] = g.external({ file: BASE_FILE, offset: head.offset + start * rowBytes, length: rows * rowBytes }, [rows, c.hiddenSize], dtype);
    }
    for (const [name, shape] of loraShapes(c, spec)) {
      p[name] = o.trainable ? param(g, name, shape, { dtype, weightDecay: o.weightDecay ?? 0 }) : g.input(name, shape, dtype);
    }
    p[LORA_SCALE] = scalar(g, loraScale(spec), dtype);
    return p;
  };
}

/**
 * The same parameters with the base as plain graph inputs (not trained): for float64 checks and
 * tests, where a base in a file is not needed. Feed the base and the adapters by name.
 */
export function inputLoraWeights(spec: LoraSpec, o: { trainable?: boolean; weightDecay?: number } = {}): WeightDeclarer {
  return (g: Graph, c: ModelConfig, dtype: DType): Params => {
    const p: Params = {};
    for (const [name, shape] of tensorShapes(c)) p[name] = g.input(name, shape, dtype);
    for (const [name, shape] of loraShapes(c, spec)) {
      p[name] = o.trainable ? param(g, name, shape, { dtype, weightDecay: o.weightDecay ?? 0 }) : g.input(name, shape, dtype);
    }
    p[LORA_SCALE] = scalar(g, loraScale(spec), dtype);
    return p;
  };
}
