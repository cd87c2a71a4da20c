// A frozen base model for LoRA: its weights written once into `<dir>/base.bin` and declared in every
// graph as external-data initializers, so ONNX Runtime maps them from the file at session creation
// and they never pass through JS again, at any step (what a GPU would otherwise copy per step).
//
// What keeps it to one physical copy, measured on this machine (docs/design.md, Memory at real size):
// - offsets are page-aligned, so ORT maps the file instead of reading it into its own buffer;
// - no Transpose of a weight (engine `linear` uses Gemm for initializers), so nothing is folded into
//   a private transposed copy;
// - MLAS prepacking is off for these sessions (`disablePrepacking`), or each would pack a copy;
// - the LM head is never sliced in a graph: the LoRA trainer's head sessions each declare one
//   page-aligned row chunk of it over the same bytes (headChunkRefs).
// RSS counts a mapped page once per session that maps it (PSS once in all), so the LoRA trainer maps
// each base byte in one session (lora-trainer.ts).

import { mkdirSync } from 'node:fs';
import path from 'node:path';
import type { DType, ExternalData, Graph } from '../../engine/index.ts';
import { scalar } from '../../engine/index.ts';
import { atomicWriteFile } from '../../engine/io/atomic.ts';
import { param } from '../../engine/train/graph.ts';
import { type ModelConfig, tensorShapes } from './config.ts';
import { LORA_SCALE, type Params, type WeightDeclarer } from './lm.ts';
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
  // 16384 rows: 10 chunks of a 151,936-row head. Each chunk's session takes hn in twice and gives dhn
  // back once per micro-batch, so fewer chunks cross less (19 chunks of 8192 rows were a third of a
  // 0.6B LoRA step's boundary bytes); a chunk's transient buffers, about ten of [tokens × rows] floats
  // (16 MB each at 256 tokens), are freed after each run (no arena), so larger chunks raise the peak.
  const headRows = Math.max(step, Math.round((opts.headRows ?? 16384) / step) * step);
  return { dir, entries, headRows };
}

/** Rows [start, start + rows) of a frozen LM head, as an external-data view of base.bin. */
export interface FrozenChunk {
  index: number;
  start: number;
  rows: number;
  ref: ExternalData;
}

/** The frozen head's row chunks of `base.headRows` rows (page-aligned starts, the last one shorter). */
export function headChunkRefs(c: ModelConfig, base: FrozenBase): FrozenChunk[] {
  const head = base.entries.get(c.tieWordEmbeddings ? 'model.embed_tokens.weight' : 'lm_head.weight')!;
  const rowBytes = c.hiddenSize * 4;
  const out: FrozenChunk[] = [];
  for (let start = 0; start < c.vocabSize; start += base.headRows) {
    const rows = Math.min(base.headRows, c.vocabSize - start);
    out.push({ index: out.length, start, rows, ref: { file: BASE_FILE, offset: head.offset + start * rowBytes, length: rows * rowBytes } });
  }
  return out;
}

/** Declare the base as initializers in base.bin and the adapters of `spec` as inputs, with LoRA's scale. */
export function frozenWeights(base: FrozenBase, spec: LoraSpec): WeightDeclarer {
  return (g: Graph, c: ModelConfig, dtype: DType): Params => {
    if (dtype !== 'float32') throw new Error(`frozen base: weights are float32 on disk, the graph computes in ${dtype}`);
    const p: Params = {};
    for (const [name, e] of base.entries) p[name] = g.external({ file: BASE_FILE, offset: e.offset, length: e.length }, e.shape, dtype);
    return withAdapters(p, g, c, spec, dtype, {});
  };
}

/**
 * The same parameters with the base as plain graph inputs (not trained): for float64 checks and
 * tests, where a base in a file is not needed. Feed the base and the adapters by name; with
 * `trainable` the adapters are params (gradients and AdamW state in a fused train step).
 */
export function inputLoraWeights(spec: LoraSpec, o: { trainable?: boolean; weightDecay?: number } = {}): WeightDeclarer {
  return (g: Graph, c: ModelConfig, dtype: DType): Params => {
    const p: Params = {};
    for (const [name, shape] of tensorShapes(c)) p[name] = g.input(name, shape, dtype);
    return withAdapters(p, g, c, spec, dtype, o);
  };
}

function withAdapters(p: Params, g: Graph, c: ModelConfig, spec: LoraSpec, dtype: DType, o: { trainable?: boolean; weightDecay?: number }): Params {
  for (const [name, shape] of loraShapes(c, spec)) {
    p[name] = o.trainable ? param(g, name, shape, { dtype, weightDecay: o.weightDecay ?? 0 }) : g.input(name, shape, dtype);
  }
  p[LORA_SCALE] = scalar(g, loraScale(spec), dtype);
  return p;
}
