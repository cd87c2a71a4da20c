// Runs train-step graphs step after step with parameters, AdamW moments and gradient accumulators
// kept in pre-allocated ONNX Runtime output buffers (double-buffered: each run reads buffer A and
// has ORT write buffer B, then they swap), so no weights are copied between steps.
//
// A step takes one batch (the fused forward+backward+AdamW graph) or an array of micro-batches (the
// grad graph once per micro-batch, accumulating gradients, then the apply graph). Several sessions
// share the state, which is why the double buffers live here, beside the sessions that use them.
//
// The step counter t counts applied updates: a skipped (non-finite) step leaves it unchanged, so
// bias correction continues exactly as if the bad batch had never been seen.

import { compile } from '../exec.ts';
import { type HostTensor, addInto, cloneTensor, describe, hostTensor } from '../runtime/host.ts';
import { type RuntimeOptions, type Session, mismatch } from '../runtime/session.ts';
import type { Combine, ParamSpec, StepGraph, TrainStepGraph } from './graph.ts';

export interface StepResult {
  loss: number;
  gradNorm: number;
  skipped: boolean;
  /** Every scalar output of the step, by name (loss, grad_norm, skipped and extra metrics). */
  metrics: Record<string, number>;
}

export type ParamValues = Record<string, Float32Array | Float64Array>;
export type Batch = Record<string, HostTensor>;

/** How micro-batch values of a metric become the step's value. */
export const COMBINE: Record<Combine, (xs: readonly number[]) => number> = {
  sum: (xs) => xs.reduce((a, b) => a + b, 0),
  mean: (xs) => xs.reduce((a, b) => a + b, 0) / xs.length,
  max: (xs) => Math.max(...xs),
  min: (xs) => Math.min(...xs),
};

/**
 * What the loops need of a trainer: the fused Trainer below, or a model's own host-state trainer
 * (student/train/layered.ts, lora-trainer.ts) for models too big for two copies of the state.
 */
export interface StepTrainer {
  /** Number of updates applied so far (AdamW's t after the last applied step). */
  t: number;
  skippedInARow: number;
  skippedTotal: number;
  readonly paramSpecs: readonly ParamSpec[];
  step(batch: Batch | readonly Batch[], lr: number): Promise<StepResult>;
  /** Copies of the current parameter values. */
  params(): ParamValues;
  /** The current parameter buffers as feeds, without copying; valid until the next step. */
  paramViews(): Record<string, HostTensor>;
  /** Parameters and moments plus t: everything needed to resume bit-exactly (valid until the next step). */
  exportState(): { t: number; tensors: Record<string, HostTensor> };
  importState(state: { t: number; tensors: Record<string, HostTensor> }): void;
  endProfiling(): string | null;
  release(): Promise<void>;
}

export class Trainer implements StepTrainer {
  /** Number of updates applied so far (AdamW's t after the last applied step). */
  t = 0;
  skippedInARow = 0;
  skippedTotal = 0;
  private accumSessions: Promise<{ grad: Session; apply: Session }> | null = null;
  /** Gradient accumulators (the apply graph's `acc.<name>`) and the later micro-batches' scratch. */
  private readonly acc = new Map<string, HostTensor>();
  private readonly gradScratch = new Map<string, HostTensor>();

  private constructor(
    readonly spec: TrainStepGraph,
    private readonly session: Session,
    private readonly state: StateBuffers,
    private readonly opts: RuntimeOptions,
  ) {}

  get paramSpecs(): readonly ParamSpec[] {
    return this.spec.params;
  }

  static async create(spec: TrainStepGraph, init: ParamValues, opts: RuntimeOptions = {}): Promise<Trainer> {
    const initial: Record<string, HostTensor> = {};
    for (const p of spec.params) {
      const data = init[p.name];
      if (!data) throw new Error(`Trainer: no initial value for parameter "${p.name}" ${JSON.stringify(p.shape)}`);
      initial[p.name] = hostTensor(p.dtype, p.shape, data.slice());
      initial[`m.${p.name}`] = hostTensor(p.dtype, p.shape);
      initial[`v.${p.name}`] = hostTensor(p.dtype, p.shape);
    }
    const session = await compile(spec.graph, opts);
    const state = new StateBuffers(initial);
    state.check(session, spec);
    return new Trainer(spec, session, state, opts);
  }

  /** One optimizer step on one batch, or on several micro-batches whose losses sum to the batch loss. */
  async step(batch: Batch | readonly Batch[], lr: number): Promise<StepResult> {
    const batches = Array.isArray(batch) ? batch : [batch as Batch];
    if (batches.length === 0) throw new Error('Trainer.step: no micro-batches');
    const metrics = batches.length === 1 ? await this.fused(batches[0]!, lr) : await this.accumulated(batches, lr);
    const skipped = metrics.skipped !== 0;
    if (skipped) {
      this.skippedInARow++;
      this.skippedTotal++;
    } else {
      this.t++;
      this.skippedInARow = 0;
    }
    return { loss: metrics.loss!, gradNorm: metrics.grad_norm!, skipped, metrics };
  }

  /** Copies of the current parameter values. */
  params(): ParamValues {
    const out: ParamValues = {};
    for (const p of this.spec.params) out[p.name] = this.state.get(p.name).data.slice() as Float32Array | Float64Array;
    return out;
  }

  /** The current parameter buffers as feeds, without copying; valid until the next step. */
  paramViews(): Record<string, HostTensor> {
    const out: Record<string, HostTensor> = {};
    for (const p of this.spec.params) out[p.name] = this.state.get(p.name);
    return out;
  }

  /** Copies of parameters and moments plus t: everything needed to resume bit-exactly. */
  exportState(): { t: number; tensors: Record<string, HostTensor> } {
    return { t: this.t, tensors: this.state.snapshot(this.spec.stateMap.map(([n]) => n)) };
  }

  importState(state: { t: number; tensors: Record<string, HostTensor> }): void {
    for (const [name, tensor] of Object.entries(state.tensors)) this.state.set(name, tensor);
    this.t = state.t;
  }

  /** Stop ORT profiling (when `profileFile` was set) and return the fused session's trace file path. */
  endProfiling(): string | null {
    return this.session.endProfiling();
  }

  async release(): Promise<void> {
    await this.session.release();
    if (this.accumSessions) {
      const a = await this.accumSessions;
      await Promise.all([a.grad.release(), a.apply.release()]);
    }
  }

  private async fused(batch: Batch, lr: number): Promise<Record<string, number>> {
    const out = await this.state.run(this.session, this.spec, { ...batch, ...this.scalars(lr) });
    return numbers(out);
  }

  private async accumulated(batches: readonly Batch[], lr: number): Promise<Record<string, number>> {
    const accum = this.spec.accum;
    if (!accum) throw new Error(`Trainer.step: ${batches.length} micro-batches, but the train step was built without accumulation graphs; build it with buildTrainStep(..., { microBatches: true })`);
    const s = await this.openAccum(accum);
    const per: Array<Record<string, number>> = [];
    for (const [i, mb] of batches.entries()) {
      // the first micro-batch writes its gradients into the accumulators, later ones into scratch, then add
      const fetches: Record<string, HostTensor | null> = Object.fromEntries(accum.grad.metrics.map((m) => [m, null]));
      for (const p of this.spec.params) fetches[`grad.${p.name}`] = (i === 0 ? this.acc : this.gradScratch).get(p.name)!;
      const out = await s.grad.run({ ...mb, ...this.paramViews() }, fetches);
      if (i > 0) for (const p of this.spec.params) addInto(this.acc.get(p.name)!.data as Float32Array, this.gradScratch.get(p.name)!.data as Float32Array);
      per.push(Object.fromEntries(accum.grad.metrics.map((m) => [m, Number(out[m]!.data[0])])));
    }
    const combined = combineMetrics(per, this.spec.combine ?? {});
    const accFeeds = Object.fromEntries(this.spec.params.map((p) => [`acc.${p.name}`, this.acc.get(p.name)!]));
    const applied = numbers(await this.state.run(s.apply, accum.apply, { ...this.scalars(lr), loss: scalarOf(this.dtype, combined.loss!), ...accFeeds }));
    const metrics: Record<string, number> = {};
    for (const name of this.spec.metrics) metrics[name] = combined[name] ?? applied[name]!;
    return metrics;
  }

  /** Compile the grad and apply graphs on first use and allocate the gradient accumulators. */
  private openAccum(accum: NonNullable<TrainStepGraph['accum']>): Promise<{ grad: Session; apply: Session }> {
    this.accumSessions ??= (async () => {
      const [grad, apply] = await Promise.all([compile(accum.grad.graph, this.opts), compile(accum.apply.graph, this.opts)]);
      for (const p of this.spec.params) {
        this.acc.set(p.name, hostTensor(p.dtype, p.shape));
        this.gradScratch.set(p.name, hostTensor(p.dtype, p.shape));
      }
      this.state.check(apply, accum.apply);
      return { grad, apply };
    })();
    return this.accumSessions;
  }

  private get dtype(): string {
    return this.spec.params[0]!.dtype;
  }

  private scalars(lr: number): Batch {
    return { lr: scalarOf(this.dtype, lr), step: scalarOf(this.dtype, this.t + 1) };
  }
}

/** Per-micro-batch metric values folded with each metric's combine; loss always sums. */
export function combineMetrics(per: ReadonlyArray<Record<string, number>>, combine: Record<string, Combine>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const name of Object.keys(per[0] ?? {})) out[name] = COMBINE[name === 'loss' ? 'sum' : (combine[name] ?? 'mean')](per.map((m) => m[name]!));
  return out;
}

/**
 * Two buffers per state tensor, shared by every session of a trainer. A run feeds the current
 * buffer of each state input the session declares (read-only unless it is in the step's stateMap),
 * has ORT write each mapped output into the spare buffer, and swaps only after the run succeeded:
 * a run that throws leaves the state as it was.
 */
class StateBuffers {
  private cur = new Map<string, HostTensor>();
  private spare = new Map<string, HostTensor>();

  constructor(initial: Record<string, HostTensor>) {
    for (const [n, t] of Object.entries(initial)) this.add(n, t);
  }

  add(name: string, t: HostTensor): void {
    this.cur.set(name, t);
    this.spare.set(name, hostTensor(t.dtype, t.dims));
  }

  /** Every state the session reads or writes exists and fits what the graph declares. */
  check(session: Session, step: StepGraph): void {
    const fail = (m: string) => new Error(`Trainer (${session.name}): ${m}`);
    for (const [i, o] of step.stateMap) {
      if (!this.cur.has(i)) throw fail(`state "${i}" has no buffer`);
      if (!session.output(o)) throw fail(`state output "${o}" is not a graph output`);
    }
    for (const n of session.inputNames) {
      const t = this.cur.get(n);
      const why = t && mismatch(session.input(n)!, t);
      if (why) throw fail(`state "${n}": ${why}`);
    }
  }

  async run(session: Session, step: StepGraph, feeds: Batch): Promise<Record<string, HostTensor>> {
    const all: Batch = { ...feeds };
    for (const n of session.inputNames) {
      const t = this.cur.get(n);
      if (!t) continue;
      if (feeds[n]) throw new Error(`Trainer: feed "${n}" is trainer state; use importState() to change it`);
      all[n] = t;
    }
    const fetches: Record<string, HostTensor | null> = {};
    for (const [i, o] of step.stateMap) fetches[o] = this.spare.get(i)!;
    for (const n of step.metrics) fetches[n] = null;
    const out = await session.run(all, fetches);
    for (const [i] of step.stateMap) {
      const t = this.cur.get(i)!;
      this.cur.set(i, this.spare.get(i)!);
      this.spare.set(i, t);
    }
    return Object.fromEntries(step.metrics.map((n) => [n, out[n]!]));
  }

  /** The current value: a view, valid until the next run that writes it. */
  get(name: string): HostTensor {
    const t = this.cur.get(name);
    if (!t) throw new Error(`Trainer: no state "${name}"; state: ${[...this.cur.keys()].slice(0, 8).join(', ')}...`);
    return t;
  }

  /** Overwrite a state's current value (copied in); dtype and dims must match. */
  set(name: string, value: HostTensor): void {
    const dst = this.get(name);
    if (dst.dtype !== value.dtype || dst.data.length !== value.data.length || dst.dims.join() !== value.dims.join())
      throw new Error(`Trainer: state "${name}" is ${describe(dst)}, got ${describe(value)}`);
    (dst.data as Float32Array).set(value.data as Float32Array);
  }

  snapshot(names: readonly string[]): Record<string, HostTensor> {
    return Object.fromEntries(names.map((n) => [n, cloneTensor(this.get(n))]));
  }
}

function numbers(out: Record<string, HostTensor>): Record<string, number> {
  return Object.fromEntries(Object.entries(out).map(([n, t]) => [n, Number(t.data[0])]));
}

function scalarOf(dtype: string, v: number): HostTensor {
  return dtype === 'float64' ? hostTensor('float64', [], Float64Array.of(v)) : hostTensor('float32', [], Float32Array.of(v));
}
