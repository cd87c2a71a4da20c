// The train-step graph: forward loss -> gradients -> AdamW, all in one ONNX graph.
//
// The caller declares parameter inputs on a Graph (`param`), builds its loss from them and its
// batch inputs, then calls `finishTrainStep`. That adds the optimizer-state inputs (`m.<name>`,
// `v.<name>`), the run-time scalars `lr` and `step` (t, 1-based count of applied updates), and the
// outputs: `<name>.next`, `m.<name>.next`, `v.<name>.next`, `loss`, `grad_norm`, `skipped`, and
// any extra metrics. `stateMap` pairs each state input with its next value, which is what a
// double-buffered runner needs to keep weights in place between steps.

import { grad } from '../autodiff.ts';
import type { DType, Graph, Tensor } from '../ir/graph.ts';
import { ADAMW_DEFAULTS, type AdamWConfig, adamw } from '../optim/adamw.ts';

export interface ParamSpec {
  name: string;
  shape: number[];
  dtype: DType;
  /** Decoupled weight decay for this parameter (0 keeps norms and biases undecayed). */
  weightDecay: number;
}

export interface TrainStepGraph {
  graph: Graph;
  params: ParamSpec[];
  /** [state input, its next-value output], for parameters then first then second moments. */
  stateMap: Array<[string, string]>;
  /** Names of the scalar outputs reported each step: loss, grad_norm, skipped, then metrics. */
  metrics: string[];
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
  metrics?: Record<string, Tensor>;
  /** Only these parameter names are trained (others stay inputs and get no state). */
  trainable?: (name: string) => boolean;
}

export function finishTrainStep(g: Graph, loss: Tensor, opts: FinishOptions = {}): TrainStepGraph {
  if (loss.rank !== 0) throw new Error(`finishTrainStep: loss must be a scalar, got ${loss}`);
  const all = declaredParams(g).filter((p) => !opts.trainable || opts.trainable(p.spec.name));
  if (all.length === 0) throw new Error('finishTrainStep: no parameters declared with param()');
  const grads = g.scope('backward', () => grad(loss, all.map((p) => p.tensor)));
  const lr = g.input('lr', [], loss.dtype);
  const step = g.input('step', [], loss.dtype);
  const slots = all.map((p, i) => ({
    p: p.tensor,
    g: grads[i]!,
    m: g.input(`m.${p.spec.name}`, p.spec.shape, p.spec.dtype),
    v: g.input(`v.${p.spec.name}`, p.spec.shape, p.spec.dtype),
    weightDecay: p.spec.weightDecay,
  }));
  const upd = g.scope('adamw', () => adamw(slots, lr, step, loss, { ...ADAMW_DEFAULTS, ...opts.adamw }));
  const stateMap: Array<[string, string]> = [];
  all.forEach((p, i) => {
    const n = p.spec.name;
    g.output(`${n}.next`, upd.p[i]!);
    stateMap.push([n, `${n}.next`]);
  });
  for (const [which, list] of [['m', upd.m], ['v', upd.v]] as const) {
    all.forEach((p, i) => {
      const n = `${which}.${p.spec.name}`;
      g.output(`${n}.next`, list[i]!);
      stateMap.push([n, `${n}.next`]);
    });
  }
  g.output('loss', loss);
  g.output('grad_norm', upd.gradNorm);
  g.output('skipped', upd.skipped);
  const metrics = ['loss', 'grad_norm', 'skipped'];
  for (const [name, t] of Object.entries(opts.metrics ?? {})) {
    g.output(name, t);
    metrics.push(name);
  }
  return { graph: g, params: all.map((p) => p.spec), stateMap, metrics };
}
