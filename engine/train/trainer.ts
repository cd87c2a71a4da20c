// Runs a train-step graph step after step with parameters and AdamW moments kept in ONNX Runtime
// output buffers (double-buffered by StatefulRunner), so no weights are copied between steps.
//
// The step counter t counts applied updates: a skipped (non-finite) step leaves it unchanged, so
// bias correction continues exactly as if the bad batch had never been seen.

import { compile } from '../exec.ts';
import { type HostTensor, hostTensor } from '../runtime/host.ts';
import type { RuntimeOptions } from '../runtime/session.ts';
import { StatefulRunner } from '../runtime/stateful.ts';
import type { TrainStepGraph } from './graph.ts';

export interface StepResult {
  loss: number;
  gradNorm: number;
  skipped: boolean;
  /** Every scalar output of the step, by name (loss, grad_norm, skipped and extra metrics). */
  metrics: Record<string, number>;
}

export type ParamValues = Record<string, Float32Array | Float64Array>;

export class Trainer {
  /** Number of updates applied so far (AdamW's t after the last applied step). */
  t = 0;
  skippedInARow = 0;
  skippedTotal = 0;

  private constructor(
    readonly spec: TrainStepGraph,
    private readonly runner: StatefulRunner,
  ) {}

  static async create(spec: TrainStepGraph, init: ParamValues, opts: RuntimeOptions = {}): Promise<Trainer> {
    const session = await compile(spec.graph, opts);
    const initial: Record<string, HostTensor> = {};
    for (const p of spec.params) {
      const data = init[p.name];
      if (!data) throw new Error(`Trainer: no initial value for parameter "${p.name}" ${JSON.stringify(p.shape)}`);
      initial[p.name] = hostTensor(p.dtype, p.shape, data.slice());
      initial[`m.${p.name}`] = hostTensor(p.dtype, p.shape);
      initial[`v.${p.name}`] = hostTensor(p.dtype, p.shape);
    }
    return new Trainer(spec, new StatefulRunner(session, spec.stateMap, initial));
  }

  async step(batch: Record<string, HostTensor>, lr: number): Promise<StepResult> {
    const dtype = this.spec.params[0]!.dtype;
    const feeds = { ...batch, lr: scalarOf(dtype, lr), step: scalarOf(dtype, this.t + 1) };
    const out = await this.runner.step(feeds, this.spec.metrics);
    const metrics: Record<string, number> = {};
    for (const name of this.spec.metrics) metrics[name] = Number(out[name]!.data[0]);
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
    for (const p of this.spec.params) out[p.name] = this.runner.state(p.name).data.slice() as Float32Array | Float64Array;
    return out;
  }

  /** Copies of parameters and moments plus t: everything needed to resume bit-exactly. */
  exportState(): { t: number; tensors: Record<string, HostTensor> } {
    return { t: this.t, tensors: this.runner.snapshot() };
  }

  importState(state: { t: number; tensors: Record<string, HostTensor> }): void {
    for (const [name, tensor] of Object.entries(state.tensors)) this.runner.setState(name, tensor.data);
    this.t = state.t;
  }

  /** Stop ORT profiling (when `profileFile` was set) and return the trace file's path. */
  endProfiling(): string | null {
    return this.runner.session.endProfiling();
  }

  async release(): Promise<void> {
    await this.runner.release();
  }
}

function scalarOf(dtype: string, v: number): HostTensor {
  return dtype === 'float64' ? hostTensor('float64', [], Float64Array.of(v)) : hostTensor('float32', [], Float32Array.of(v));
}
