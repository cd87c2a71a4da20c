// Host side of model graphs: weights as feeds (views, never copies), batches of token sequences
// packed into ids / attention mask / positions, and a session wrapper that adds the weights to
// every run.

import { compile } from '../../engine/exec.ts';
import type { Graph } from '../../engine/index.ts';
import { type HostTensor, hostTensor } from '../../engine/runtime/host.ts';
import type { RuntimeOptions, Session } from '../../engine/runtime/session.ts';
import { type ModelConfig, tensorShapes } from './config.ts';
import type { Weights } from './weights.ts';

/** Current weights as feeds; called before every run so a trainer's fresh buffers are used. */
export type WeightSource = () => Record<string, HostTensor>;

/** Wrap a weight map as feeds (no copy); every tensor the config names must be present. */
export function weightFeeds(c: ModelConfig, w: Weights): Record<string, HostTensor> {
  const out: Record<string, HostTensor> = {};
  for (const [name, shape] of tensorShapes(c)) {
    const data = w.get(name);
    if (!data) throw new Error(`weights: missing tensor "${name}" ${JSON.stringify(shape)}`);
    out[name] = hostTensor('float32', shape, data);
  }
  return out;
}

export class ModelSession {
  private constructor(
    readonly session: Session,
    private readonly weights: WeightSource,
  ) {}

  static async create(g: Graph, weights: WeightSource, opts: RuntimeOptions & { modelDir?: string } = {}): Promise<ModelSession> {
    return new ModelSession(await compile(g, opts), weights);
  }

  run(feeds: Record<string, HostTensor>, fetches?: readonly string[]): Promise<Record<string, HostTensor>> {
    return this.session.run({ ...this.weights(), ...feeds }, fetches);
  }

  release(): Promise<void> {
    return this.session.release();
  }
}

export interface PackedBatch {
  input_ids: HostTensor; // [B, T] int64
  attention_mask: HostTensor; // [B, T] int64, 0 = padding
  position_ids: HostTensor; // [B, T] int64, counting real tokens only
  /** Per row, the number of padding columns (left padding) or the real length (right padding). */
  lengths: number[];
}

/**
 * Pack token sequences into a rectangle. Right padding suits scoring and training; left padding
 * suits generation (every row's next token lands in the last column).
 */
export function packSequences(seqs: readonly (readonly number[])[], padId: number, side: 'left' | 'right' = 'right', width?: number): PackedBatch {
  const b = seqs.length;
  const t = width ?? Math.max(1, ...seqs.map((s) => s.length));
  const ids = new BigInt64Array(b * t).fill(BigInt(padId));
  const mask = new BigInt64Array(b * t);
  const pos = new BigInt64Array(b * t);
  seqs.forEach((s, i) => {
    if (s.length > t) throw new Error(`packSequences: row ${i} has ${s.length} tokens, more than the width ${t}`);
    const off = side === 'left' ? t - s.length : 0;
    s.forEach((tok, j) => {
      ids[i * t + off + j] = BigInt(tok);
      mask[i * t + off + j] = 1n;
      pos[i * t + off + j] = BigInt(j);
    });
  });
  return {
    input_ids: hostTensor('int64', [b, t], ids),
    attention_mask: hostTensor('int64', [b, t], mask),
    position_ids: hostTensor('int64', [b, t], pos),
    lengths: seqs.map((s) => s.length),
  };
}

export const scalarF32 = (v: number): HostTensor => hostTensor('float32', [], Float32Array.of(v));
