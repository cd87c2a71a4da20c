// What the layered and LoRA trainers share: the trained tensors, their gradients and AdamW moments
// in host arrays (checkpoints get views of them), the step counters of an applied or skipped
// update, and the host-side fold of the vocabulary-chunked log-softmax that both heads use.

import type { FlatSlot, FloatArray } from '../../engine/optim/chunked.ts';
import { type HostTensor, hostTensor } from '../../engine/runtime/host.ts';
import type { ParamSpec } from '../../engine/train/graph.ts';
import type { Batch, ParamValues, StepResult, StepTrainer } from '../../engine/train/trainer.ts';

export type Combine = Record<string, 'sum' | 'mean' | 'max' | 'min'>;

/** A trainer whose whole state lives in host arrays: `w` (adopted), and g, m, v allocated here. */
export abstract class HostTrainer implements StepTrainer {
  t = 0;
  skippedInARow = 0;
  skippedTotal = 0;
  protected readonly g = new Map<string, FloatArray>();
  protected readonly m = new Map<string, FloatArray>();
  protected readonly v = new Map<string, FloatArray>();

  protected constructor(
    readonly paramSpecs: readonly ParamSpec[],
    protected readonly w: Map<string, FloatArray>,
    protected readonly dtype: 'float32' | 'float64',
  ) {
    for (const p of paramSpecs) for (const map of [this.g, this.m, this.v]) map.set(p.name, this.zeros(w.get(p.name)!.length));
  }

  abstract step(batch: Batch | readonly Batch[], lr: number): Promise<StepResult>;
  abstract release(): Promise<void>;

  params(): ParamValues {
    return Object.fromEntries([...this.w].map(([k, v]) => [k, v.slice()]));
  }

  paramViews(): Record<string, HostTensor> {
    return Object.fromEntries(this.paramSpecs.map((p) => [p.name, this.tensor(this.w.get(p.name)!, p.shape)]));
  }

  /** Views (not copies) of the parameters and moments plus t; valid until the next step. */
  exportState(): { t: number; tensors: Record<string, HostTensor> } {
    const tensors: Record<string, HostTensor> = {};
    for (const [prefix, map] of [['', this.w], ['m.', this.m], ['v.', this.v]] as const)
      for (const p of this.paramSpecs) tensors[prefix + p.name] = this.tensor(map.get(p.name)!, p.shape);
    return { t: this.t, tensors };
  }

  importState(state: { t: number; tensors: Record<string, HostTensor> }): void {
    for (const [name, value] of Object.entries(state.tensors)) {
      const base = name.replace(/^[mv]\./, '');
      const dst = (name.startsWith('m.') ? this.m : name.startsWith('v.') ? this.v : this.w).get(base);
      if (!dst || dst.length !== value.data.length) throw new Error(`${this.constructor.name}: no state "${name}" of ${value.data.length} elements`);
      dst.set(value.data as FloatArray);
    }
    this.t = state.t;
  }

  endProfiling(): string | null {
    return null;
  }

  protected slots(): FlatSlot[] {
    return this.paramSpecs.map((p) => ({ name: p.name, p: this.w.get(p.name)!, g: this.g.get(p.name)!, m: this.m.get(p.name)!, v: this.v.get(p.name)!, weightDecay: p.weightDecay }));
  }

  /** Count the update (t advances only when applied) and report what the fused step reports. */
  protected finish(combined: Record<string, number>, metricNames: readonly string[], update: { gradNorm: number; skipped: boolean }): StepResult {
    if (update.skipped) {
      this.skippedInARow++;
      this.skippedTotal++;
    } else {
      this.t++;
      this.skippedInARow = 0;
    }
    const metrics: Record<string, number> = { loss: combined.loss!, grad_norm: update.gradNorm, skipped: update.skipped ? 1 : 0 };
    for (const n of metricNames) metrics[n] = combined[n]!;
    return { loss: combined.loss!, gradNorm: update.gradNorm, skipped: update.skipped, metrics };
  }

  protected tensor(data: FloatArray, dims: readonly number[]): HostTensor {
    return hostTensor(this.dtype, dims, data);
  }

  protected zeros(n: number): FloatArray {
    return this.dtype === 'float64' ? new Float64Array(n) : new Float32Array(n);
  }
}

/**
 * The log-softmax folded over vocabulary chunks on the host, in float64, from each chunk's
 * position-aligned max m, Σexp(z − m) and next-token logit (layered-graphs.ts head.fwd):
 * M ← max(M, m), S ← S·e^{M_old − M} + s·e^{m − M}, zy ← zy + z;  lse = M + log S, log p = zy − lse
 * (0 at each row's first position, which nothing predicts).
 */
export class LogsumexpFold {
  private readonly M: Float64Array;
  private readonly S: Float64Array;
  private readonly zy: Float64Array;

  constructor(private readonly dims: readonly [number, number]) {
    const n = dims[0] * dims[1];
    this.M = new Float64Array(n).fill(-Infinity);
    this.S = new Float64Array(n);
    this.zy = new Float64Array(n);
  }

  add(out: Record<string, HostTensor>): void {
    const [m, s, z] = [out.max!.data as FloatArray, out.sum_exp!.data as FloatArray, out.z_next!.data as FloatArray];
    for (let j = 0; j < this.M.length; j++) {
      const nm = Math.max(this.M[j]!, m[j]!);
      this.S[j] = this.S[j]! * Math.exp(this.M[j]! - nm) + s[j]! * Math.exp(m[j]! - nm);
      this.M[j] = nm;
      this.zy[j]! += z[j]!;
    }
  }

  finish(dtype: 'float32' | 'float64'): { logprobs: HostTensor; lse: HostTensor } {
    const n = this.M.length;
    const [lse, logprobs] = dtype === 'float64' ? [new Float64Array(n), new Float64Array(n)] : [new Float32Array(n), new Float32Array(n)];
    for (let j = 0; j < n; j++) {
      if (j % this.dims[1] === 0) continue;
      lse[j] = this.M[j]! + Math.log(this.S[j]!);
      logprobs[j] = this.zy[j]! - lse[j]!;
    }
    return { logprobs: hostTensor(dtype, this.dims, logprobs), lse: hostTensor(dtype, this.dims, lse) };
  }
}

/**
 * z at the teacher's top-k ids summed over head chunks (each id lies in exactly one; the others
 * return 0 for it), then log π_θ(S) = z − lse, position-aligned [B, T, k] (0 at t = 0).
 */
export class TopkFold {
  private z: Float64Array | null = null;
  /** The student's own best k per position so far: values and ids (merged over chunks). */
  private own: { z: Float64Array; ids: Float64Array } | null = null;

  constructor(
    private readonly k: number,
    ids: HostTensor | undefined,
  ) {
    if (!ids) throw new Error('the objective has a top-k divergence but the batch has no teacher_top_ids');
  }

  add(out: Record<string, HostTensor>): void {
    const z = out.z_top!.data as FloatArray;
    if (!this.z) this.z = new Float64Array(z.length);
    for (let j = 0; j < z.length; j++) this.z[j]! += z[j]!;
    const [vz, vi] = [out.own_top_z!.data as FloatArray, out.own_top_ids!.data as BigInt64Array];
    if (!this.own) {
      this.own = { z: Float64Array.from(vz), ids: Float64Array.from(vi, Number) };
      return;
    }
    const k = this.k;
    const cand: Array<[number, number]> = [];
    for (let p = 0; p < vz.length / k; p++) {
      cand.length = 0;
      for (let q = 0; q < k; q++) cand.push([this.own.z[p * k + q]!, this.own.ids[p * k + q]!], [vz[p * k + q]!, Number(vi[p * k + q])]);
      cand.sort((a, b) => b[0] - a[0]); // stable: on a tie the earlier chunk's id stays first
      for (let q = 0; q < k; q++) [this.own.z[p * k + q], this.own.ids[p * k + q]] = cand[q]!;
    }
  }

  /** The student's own top-k ids [B, T, k] over the whole vocabulary (for the overlap metric). */
  ownIds(dims: readonly number[]): HostTensor {
    return hostTensor('int64', [dims[0]!, dims[1]!, this.k], BigInt64Array.from(this.own!.ids, (x) => BigInt(x)));
  }

  finish(lse: HostTensor, dtype: 'float32' | 'float64'): HostTensor {
    const [b, t] = lse.dims as [number, number];
    const k = this.k;
    const out = dtype === 'float64' ? new Float64Array(b * t * k) : new Float32Array(b * t * k);
    for (let j = 0; j < b * t; j++) {
      if (j % t === 0) continue;
      for (let q = 0; q < k; q++) out[j * k + q] = this.z![j * k + q]! - Number(lse.data[j]);
    }
    return hostTensor(dtype, [b, t, k], out);
  }
}
