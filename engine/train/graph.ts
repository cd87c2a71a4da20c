// The train-step graphs: forward loss -> gradients -> AdamW, either fused in one ONNX graph or split
// for gradient accumulation over micro-batches.
//
// Fused (`finishTrainStep`): the caller declares parameter inputs on a Graph (`param`), builds its
// loss from them and its batch inputs, then calls `finishTrainStep`. That adds the optimizer-state
// inputs (`m.<name>`, `v.<name>`), the run-time scalars `lr` and `step` (t, 1-based count of applied
// updates), and the outputs: `<name>.next`, `m.<name>.next`, `v.<name>.next`, `loss`, `grad_norm`,
// `skipped`, and any extra metrics. `stateMap` pairs each state input with its next value, which is
// what a double-buffered runner needs to keep weights in place between steps.
//
// Accumulated (`buildTrainStep` with `microBatches`): the same objective is built a second time
// into a grad graph, which outputs each parameter's gradient `grad.<name>` and the micro-batch's loss
// and metrics; the host sums the gradients into accumulators `acc.<name>` (the first micro-batch's
// written in place, later ones added), and an apply graph runs AdamW (same clipping, same non-finite
// guard) on them. Per micro-batch only the parameters go in and their gradients come out. Contract: the loss must be written so that its sum over micro-batches is the full-batch loss
// (per-token weights computed on the host over the whole batch make this exact); each metric says
// how it combines over micro-batches (sum, mean, max, min).

import { grad } from '../autodiff.ts';
import { Graph, type DType, type Tensor } from '../ir/graph.ts';
import { ADAMW_DEFAULTS, type AdamWConfig, adamw } from '../optim/adamw.ts';

export interface ParamSpec {
  name: string;
  shape: number[];
  dtype: DType;
  /** Decoupled weight decay for this parameter (0 keeps norms and biases undecayed). */
  weightDecay: number;
}

/** How a per-micro-batch scalar becomes the step's value (see the trainer's COMBINE table). */
export type Combine = 'sum' | 'mean' | 'max' | 'min';

/** An extra metric output: a rank-0 tensor, optionally with its micro-batch combine (default mean). */
export type MetricSpec = Tensor | { value: Tensor; combine: Combine };

/** One emitted graph of a train step with its state pairs and scalar outputs. */
export interface StepGraph {
  graph: Graph;
  /** [state input, its next-value output]. */
  stateMap: Array<[string, string]>;
  /** Names of the scalar outputs reported each run. */
  metrics: string[];
}

export interface TrainStepGraph extends StepGraph {
  params: ParamSpec[];
  /** [state input, its next-value output], for parameters then first then second moments. */
  stateMap: Array<[string, string]>;
  /** Names of the scalar outputs reported each step: loss, grad_norm, skipped, then metrics. */
  metrics: string[];
  /** How each extra metric combines over micro-batches (loss always sums; absent = mean). */
  combine?: Record<string, Combine>;
  /** Grad and apply graphs for gradient accumulation, when built with `microBatches`. */
  accum?: { grad: StepGraph; apply: StepGraph };
}

const declared = new WeakMap<Graph, Array<{ spec: ParamSpec; tensor: Tensor }>>();

/** Declare a trainable parameter as a graph input named `name`. */
export function param(g: Graph, name: string, shape: number[], opts: { weightDecay?: number; dtype?: DType } = {}): Tensor {
  const dtype = opts.dtype ?? 'float32';
  const tensor = g.input(name, shape, dtype);
  let list = declared.get(g);
  if (!list) declared.set(g, (list = []));
  list.push({ spec: { name, shape, dtype, weightDecay: opts.weightDecay ?? 0 }, tensor });
  return tensor;
}

/** The parameters declared so far on `g`, in declaration order. */
export function declaredParams(g: Graph): Array<{ spec: ParamSpec; tensor: Tensor }> {
  return declared.get(g) ?? [];
}

export interface FinishOptions {
  adamw?: Partial<AdamWConfig>;
  /** Extra rank-0 outputs reported each step (e.g. clip fraction). */
  metrics?: Record<string, MetricSpec>;
  /** Only these parameter names are trained (others stay inputs and get no state). */
  trainable?: (name: string) => boolean;
}

/** The fused step: forward + backward + AdamW in `g`. */
export function finishTrainStep(g: Graph, loss: Tensor, opts: FinishOptions = {}): TrainStepGraph {
  const all = trainedParams(g, loss, opts, 'finishTrainStep');
  const grads = g.scope('backward', () => grad(loss, all.map((p) => p.tensor)));
  const stateMap = applyAdamW(g, all, grads, loss, opts.adamw);
  g.output('loss', loss);
  const { names, combine } = outputMetrics(g, opts.metrics);
  return { graph: g, params: all.map((p) => p.spec), stateMap, metrics: ['loss', 'grad_norm', 'skipped', ...names], combine };
}

/** The grad graph of accumulation: outputs `grad.<name>` = ∂loss/∂<name> for every parameter, loss and metrics. */
export function finishGradStep(g: Graph, loss: Tensor, opts: Omit<FinishOptions, 'adamw'> = {}): StepGraph & { params: ParamSpec[] } {
  const all = trainedParams(g, loss, opts, 'finishGradStep');
  const grads = g.scope('backward', () => grad(loss, all.map((p) => p.tensor)));
  all.forEach(({ spec }, i) => g.output(`grad.${spec.name}`, grads[i]!));
  g.output('loss', loss);
  const { names } = outputMetrics(g, opts.metrics);
  return { graph: g, params: all.map((p) => p.spec), stateMap: [], metrics: ['loss', ...names] };
}

/**
 * The apply graph of accumulation: AdamW with gradient `acc.<name>` (the host sums the grad graph's
 * outputs into it); inputs lr, step and `loss` (the summed micro-batch losses, for the non-finite
 * guard). Only parameters and moments are state: the accumulators never come back out.
 */
export function buildApplyStep(params: readonly ParamSpec[], opts: { adamw?: Partial<AdamWConfig>; name?: string } = {}): StepGraph {
  if (params.length === 0) throw new Error('buildApplyStep: no parameters');
  const g = new Graph(opts.name ?? 'apply');
  const slots = params.map((spec) => ({ spec, tensor: g.input(spec.name, spec.shape, spec.dtype) }));
  const accs = params.map((s) => g.input(`acc.${s.name}`, s.shape, s.dtype));
  const loss = g.input('loss', [], params[0]!.dtype);
  const stateMap = applyAdamW(g, slots, accs, loss, opts.adamw);
  return { graph: g, stateMap, metrics: ['grad_norm', 'skipped'] };
}

/** What a step computes, built on a fresh graph: called once per emitted graph. */
export type Objective = (g: Graph) => { loss: Tensor; metrics?: Record<string, MetricSpec> };

export interface BuildOptions extends Omit<FinishOptions, 'metrics'> {
  /** Graph name (the grad and apply graphs get `.grad` / `.apply` appended). */
  name?: string;
  /** Also build the grad and apply graphs, so Trainer.step accepts several micro-batches. */
  microBatches?: boolean;
}

/** The fused step of `objective`, plus the accumulation graphs when `microBatches` is set. */
export function buildTrainStep(objective: Objective, opts: BuildOptions = {}): TrainStepGraph {
  const name = opts.name ?? 'train';
  const fusedGraph = new Graph(name);
  const fused = objective(fusedGraph);
  const spec = finishTrainStep(fusedGraph, fused.loss, { ...opts, metrics: fused.metrics });
  if (!opts.microBatches) return spec;
  const gradGraph = new Graph(`${name}.grad`);
  const o = objective(gradGraph);
  const gradStep = finishGradStep(gradGraph, o.loss, { trainable: opts.trainable, metrics: o.metrics });
  const same = gradStep.params.length === spec.params.length && gradStep.params.every((p, i) => p.name === spec.params[i]!.name);
  if (!same || gradStep.metrics.join() !== ['loss', ...spec.metrics.slice(3)].join())
    throw new Error('buildTrainStep: the objective built different parameters or metrics on its second call; it must be deterministic');
  return { ...spec, accum: { grad: gradStep, apply: buildApplyStep(spec.params, { adamw: opts.adamw, name: `${name}.apply` }) } };
}

function trainedParams(g: Graph, loss: Tensor, opts: Pick<FinishOptions, 'trainable'>, who: string) {
  if (loss.rank !== 0) throw new Error(`${who}: loss must be a scalar, got ${loss}`);
  const all = declaredParams(g).filter((p) => !opts.trainable || opts.trainable(p.spec.name));
  if (all.length === 0) throw new Error(`${who}: no parameters declared with param()`);
  return all;
}

/** AdamW over `params` with gradients `grads`; outputs next params and moments, grad_norm, skipped. */
function applyAdamW(g: Graph, params: Array<{ spec: ParamSpec; tensor: Tensor }>, grads: Tensor[], loss: Tensor, cfg?: Partial<AdamWConfig>) {
  const lr = g.input('lr', [], loss.dtype);
  const step = g.input('step', [], loss.dtype);
  const slots = params.map((p, i) => ({
    p: p.tensor,
    g: grads[i]!,
    m: g.input(`m.${p.spec.name}`, p.spec.shape, p.spec.dtype),
    v: g.input(`v.${p.spec.name}`, p.spec.shape, p.spec.dtype),
    weightDecay: p.spec.weightDecay,
  }));
  const upd = g.scope('adamw', () => adamw(slots, lr, step, loss, { ...ADAMW_DEFAULTS, ...cfg }));
  const stateMap: Array<[string, string]> = [];
  const emit = (n: string, t: Tensor) => {
    g.output(`${n}.next`, t);
    stateMap.push([n, `${n}.next`]);
  };
  params.forEach((p, i) => emit(p.spec.name, upd.p[i]!));
  params.forEach((p, i) => emit(`m.${p.spec.name}`, upd.m[i]!));
  params.forEach((p, i) => emit(`v.${p.spec.name}`, upd.v[i]!));
  g.output('grad_norm', upd.gradNorm);
  g.output('skipped', upd.skipped);
  return stateMap;
}

function outputMetrics(g: Graph, metrics: Record<string, MetricSpec> = {}) {
  const names: string[] = [];
  const combine: Record<string, Combine> = {};
  for (const [name, m] of Object.entries(metrics)) {
    const t = 'value' in m ? m.value : m;
    if (t.rank !== 0) throw new Error(`metric "${name}" must be a scalar, got ${t}`);
    g.output(name, t);
    names.push(name);
    combine[name] = 'value' in m ? m.combine : 'mean';
  }
  return { names, combine };
}
