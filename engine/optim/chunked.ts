// AdamW applied chunk by chunk to parameters, gradients and moments held in host buffers, for train
// steps too big to pass every weight through one graph (engine/train/graph.ts's fused step keeps
// two copies of all state; this keeps one, plus three chunks of scratch).
//
// Same update as adamw.ts, built from the same `adamwScalars` / `adamwSlot`, with the same global
// clipping and non-finite guard:
//
//   ‖g‖² = Σ_tensors ReduceSumSquare(g_tensor)     (tensor order; a tensor longer than a chunk sums
//                                                    its chunks' partial sums in the buffer dtype)
//   ok   = ‖g‖² and the loss are finite            (not ok: nothing is written, as the fused guard)
//   p, m, v ← adamwSlot(p, g, m, v; lr, t, ‖g‖)   one graph run per chunk of ≤ `chunk` elements,
//                                                    written to scratch, then copied over the chunk
//
// Two small sessions serve every tensor: shapes are 1-D with a symbolic length, so any chunk fits.

import { Graph, type Tensor } from '../ir/graph.ts';
import { compile } from '../exec.ts';
import { reduceSumSquare } from '../ops/reduce.ts';
import { type HostTensor, hostTensor } from '../runtime/host.ts';
import type { RuntimeOptions, Session } from '../runtime/session.ts';
import { ADAMW_DEFAULTS, type AdamWConfig, adamwScalars, adamwSlot } from './adamw.ts';

export type FloatArray = Float32Array | Float64Array;

/** One trained tensor as four flat buffers of equal length. */
export interface FlatSlot {
  name: string;
  p: FloatArray;
  g: FloatArray;
  m: FloatArray;
  v: FloatArray;
  weightDecay: number;
}

export interface ChunkedAdamWOptions extends RuntimeOptions {
  /** Elements per graph run (default 1M: 4 MB of float32 per buffer; measured as fast as 4M, and its arena is a quarter). */
  chunk?: number;
  dtype?: 'float32' | 'float64';
}

export class ChunkedAdamW {
  private constructor(
    private readonly sumsq: Session,
    private readonly update: Session,
    private readonly dtype: 'float32' | 'float64',
    readonly chunk: number,
    private readonly scratch: { p: FloatArray; m: FloatArray; v: FloatArray },
  ) {}

  static async create(cfg: Partial<AdamWConfig> = {}, o: ChunkedAdamWOptions = {}): Promise<ChunkedAdamW> {
    const dtype = o.dtype ?? 'float32';
    const chunk = o.chunk ?? 1024 * 1024;
    const full = { ...ADAMW_DEFAULTS, ...cfg };
    const [sumsq, update] = await Promise.all([compile(sumsqGraph(dtype), o), compile(updateGraph(full, dtype), o)]);
    const Arr = dtype === 'float64' ? Float64Array : Float32Array;
    return new ChunkedAdamW(sumsq, update, dtype, chunk, { p: new Arr(chunk), m: new Arr(chunk), v: new Arr(chunk) });
  }

  /** ‖g‖² over every slot's gradient, summed in slot order in the buffer dtype. */
  async gradNormSq(slots: readonly FlatSlot[]): Promise<number> {
    let total = 0;
    for (const s of slots) {
      let tensorSum = 0;
      for (const [at, n] of this.pieces(s.g.length)) {
        const out = await this.sumsq.run({ x: this.flat(s.g, at, n) });
        tensorSum = this.round(tensorSum + Number(out.sum_sq!.data[0]));
      }
      total = this.round(total + tensorSum);
    }
    return total;
  }

  /**
   * One AdamW update of every slot in place, given ‖g‖² (from gradNormSq) and whether the loss was
   * finite; returns what the fused step reports (grad_norm, skipped).
   */
  async step(slots: readonly FlatSlot[], lr: number, t: number, normSq: number, lossFinite: boolean): Promise<{ gradNorm: number; skipped: boolean }> {
    const gradNorm = this.round(Math.sqrt(normSq));
    if (!Number.isFinite(normSq) || !lossFinite) return { gradNorm, skipped: true };
    const scalars = { lr: this.scalar(lr), step: this.scalar(t), grad_norm: this.scalar(gradNorm) };
    for (const s of slots) {
      const wd = this.scalar(s.weightDecay);
      for (const [at, n] of this.pieces(s.p.length)) {
        const fetches = { 'p.next': this.flat(this.scratch.p, 0, n), 'm.next': this.flat(this.scratch.m, 0, n), 'v.next': this.flat(this.scratch.v, 0, n) };
        await this.update.run({ p: this.flat(s.p, at, n), g: this.flat(s.g, at, n), m: this.flat(s.m, at, n), v: this.flat(s.v, at, n), weight_decay: wd, ...scalars }, fetches);
        s.p.set(this.scratch.p.subarray(0, n), at);
        s.m.set(this.scratch.m.subarray(0, n), at);
        s.v.set(this.scratch.v.subarray(0, n), at);
      }
    }
    return { gradNorm, skipped: false };
  }

  async release(): Promise<void> {
    await Promise.all([this.sumsq.release(), this.update.release()]);
  }

  private *pieces(length: number): Generator<[number, number]> {
    for (let at = 0; at < length; at += this.chunk) yield [at, Math.min(this.chunk, length - at)];
  }

  private flat(a: FloatArray, at: number, n: number): HostTensor {
    return hostTensor(this.dtype, [n], a.subarray(at, at + n));
  }

  private scalar(x: number): HostTensor {
    return hostTensor(this.dtype, [], this.dtype === 'float64' ? Float64Array.of(x) : Float32Array.of(x));
  }

  private round(x: number): number {
    return this.dtype === 'float64' ? x : Math.fround(x);
  }
}

function sumsqGraph(dtype: 'float32' | 'float64'): Graph {
  const g = new Graph('adamw.sumsq');
  const x = g.input('x', ['N'], dtype);
  g.output('sum_sq', reduceSumSquare(x, [0], false));
  return g;
}

function updateGraph(cfg: AdamWConfig, dtype: 'float32' | 'float64'): Graph {
  const g = new Graph('adamw.chunk');
  const vec = (n: string): Tensor => g.input(n, ['N'], dtype);
  const [p, grad, m, v] = [vec('p'), vec('g'), vec('m'), vec('v')];
  const [lr, step, norm, wd] = ['lr', 'step', 'grad_norm', 'weight_decay'].map((n) => g.input(n, [], dtype)) as [Tensor, Tensor, Tensor, Tensor];
  const u = adamwSlot({ p, g: grad, m, v, weightDecay: wd }, adamwScalars(norm, lr, step, cfg), cfg);
  g.output('p.next', u.p);
  g.output('m.next', u.m);
  g.output('v.next', u.v);
  return g;
}
