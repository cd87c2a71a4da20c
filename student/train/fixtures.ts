// Test helpers for student/train: tiny random-init models of each supported family, random
// rollouts, and a loss+gradient evaluator for finite-difference and equivalence checks.
// Not imported by production code.

import { compile } from '../../engine/exec.ts';
import { type Graph as G, Graph, grad } from '../../engine/index.ts';
import { Rng } from '../../engine/rng.ts';
import { type HostTensor, hostTensor } from '../../engine/runtime/host.ts';
import type { RuntimeOptions, Session } from '../../engine/runtime/session.ts';
import { type MetricSpec, type Objective, declaredParams } from '../../engine/train/graph.ts';
import { type ModelConfig, parseConfig, tensorShapes } from '../model/config.ts';
import { initWeights } from '../model/init.ts';
import type { PolicyRollout } from './batch.ts';

const BASE = {
  vocab_size: 300, hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2,
  rms_norm_eps: 1e-6, rope_theta: 10000, initializer_range: 0.2,
};

/** Qwen2 (q/k/v biases, untied lm_head), Qwen3 (q_norm/k_norm, head_dim 16 ≠ D/H), Llama (tied embeddings). */
export const TINY: Record<string, ModelConfig> = {
  qwen2: parseConfig({ ...BASE, architectures: ['Qwen2ForCausalLM'], tie_word_embeddings: false }),
  qwen3: parseConfig({ ...BASE, architectures: ['Qwen3ForCausalLM'], head_dim: 16, tie_word_embeddings: false }),
  llama: parseConfig({ ...BASE, architectures: ['LlamaForCausalLM'], tie_word_embeddings: true }),
};

export type Weights64 = Record<string, Float64Array>;

/** initWeights, with norms and biases moved off 1 and 0 so their gradients are generic; in float64. */
export function tinyWeights(c: ModelConfig, seed: number): Weights64 {
  const rng = new Rng(seed + 1000);
  const out: Weights64 = {};
  for (const [name, w] of initWeights(c, seed)) {
    const jitter = name.endsWith('.bias') || name.includes('norm');
    out[name] = Float64Array.from(w, (x) => (jitter ? x + 0.1 * rng.normal() : x));
  }
  return out;
}

export const asF32 = (w: Weights64): Record<string, Float32Array> => Object.fromEntries(Object.entries(w).map(([k, v]) => [k, Float32Array.from(v)]));

/** `n` rollouts with prompts of 1..4 tokens and completions of 0..`maxC` tokens (ids in [3, 300)). */
export function randomRollouts(seed: number, n: number, maxC = 5, minC = 1): PolicyRollout[] {
  const rng = new Rng(seed);
  const ids = (k: number) => Array.from({ length: k }, () => 3 + rng.int(297));
  return Array.from({ length: n }, () => {
    const c = minC + rng.int(maxC - minC + 1);
    const lp = () => Array.from({ length: c }, () => -5.7 + 0.3 * rng.normal()); // near log(1/300): ρ spreads around 1
    return {
      promptIds: ids(1 + rng.int(4)),
      completionIds: ids(c),
      advantages: Array.from({ length: c }, () => rng.normal()),
      samplerLogprobs: lp(),
      refLogprobs: lp(),
      teacherLogprobs: lp(),
    };
  });
}

export const weightFeeds64 = (c: ModelConfig, w: Weights64): Record<string, HostTensor> =>
  Object.fromEntries(tensorShapes(c).map(([n, s]) => [n, hostTensor('float64', s, w[n]!)]));

/**
 * A session computing the objective's loss, metrics and `d.<param>` for every parameter. Compare
 * float64 graphs at one optimization level: ORT's extended MatMulScaleFusion stores the attention
 * scale as a float32 attribute, which moves float64 log-probs by ~1e-9 relative.
 */
export async function lossAndGrads(objective: Objective, opts: RuntimeOptions = {}): Promise<{ session: Session; params: string[] }> {
  const g: G = new Graph('loss-and-grads');
  const { loss, metrics } = objective(g);
  const params = declaredParams(g);
  const grads = grad(loss, params.map((p) => p.tensor));
  g.output('loss', loss);
  for (const [k, m] of Object.entries(metrics ?? {})) g.output(k, valueOf(m));
  params.forEach((p, i) => g.output(`d.${p.spec.name}`, grads[i]!));
  return { session: await compile(g, { threads: 1, ...opts }), params: params.map((p) => p.spec.name) };
}

const valueOf = (m: MetricSpec) => ('value' in m ? m.value : m);

export interface Evaluated {
  loss: number;
  metrics: Record<string, number>;
  grads: Record<string, Float64Array>;
}

export async function evaluate(s: { session: Session; params: string[] }, feeds: Record<string, HostTensor>): Promise<Evaluated> {
  const out = await s.session.run(feeds);
  const grads = Object.fromEntries(s.params.map((p) => [p, out[`d.${p}`]!.data as Float64Array]));
  const metrics = Object.fromEntries(Object.entries(out).filter(([, t]) => t.dims.length === 0).map(([k, t]) => [k, Number(t.data[0])]));
  return { loss: metrics.loss!, metrics, grads };
}

/** max |a − b| / max(1, |b|) over elements. */
export function maxRelDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!) / Math.max(1e-3, Math.abs(b[i]!)));
  return a.length === b.length ? m : Infinity;
}
