// The full-vocabulary divergences (divergences.ts, full_*) in the layered train step: three more
// per-vocab-chunk graphs beside head.fwd / head.bwd (layered-graphs.ts), so neither side's
// [tokens × V] logits exist at once, in the forward or in the backward.
//
//   teacher.fwd   teacher_hidden, teacher_head[c0:c1], 1/τ_T         -> max, sum_exp of z^T_c    (pass 1; the host
//                                                                       folds them into lse_T like the student's lse)
//   full.fwd      hn, head[c0:c1], 1/τ, lse; the teacher's, lse_T     -> Σ_c D terms, Σ_c q·a     (pass 2; host sums → D, ā)
//   loss          logprobs, full_d = D, the loss's inputs              -> loss, metrics, d.logprobs, d.full_d
//   full.bwd      pass 2's inputs + d.full_d, ā                        -> d.head_chunk, dhn        (added to head.bwd's)
//
// The gradient. With q = softmax(z^S) and a_v = ∂D/∂q_v, the softmax Jacobian gives
// ∂D/∂z^S_v = q_v (a_v − ā), ā = Σ_u q_u a_u, a per-position sum over the whole vocabulary (pass 2
// returns its chunk parts). q_v a_v per divergence (any constant shift of a cancels in a − ā):
//
//   full_fkl   a_v = −p_v/q_v                 q_v a_v = −p_v                    (so ∂D/∂z_v = q_v − p_v)
//   full_rkl   a_v = log q_v − log p_v         q_v a_v = q_v (log q_v − log p_v)
//   full_jsd   a_v = (1−β)(log q_v − log m_v)  q_v a_v = (1−β) q_v (log q_v − log m_v)
//
// Then dz_v = g_D · (q_v a_v − q_v ā) / τ with g_D = ∂L/∂D from the loss graph, and
// d.head_chunk = dzᵀ·hn, dhn = dz·W_c exactly as head.bwd does for the log-prob term.
// Everything is position-aligned ([B, T], 0 at t = 0); teacher_hidden is aligned already (row t
// predicts token t), the student's hn is not (row t predicts token t + 1).

import { type DType, Graph, type Tensor, add, dimAdd, exp, flattenRows, grad, linear, log, matmul, maximum, mul, pad, reduceMax, reduceSum, slice, squeeze, sub, transpose, unsqueeze } from '../../engine/index.ts';
import type { MetricSpec } from '../../engine/train/graph.ts';
import type { ModelConfig } from '../model/config.ts';
import { FULL_DIVERGENCES, type FullDivergenceName } from './divergences.ts';

/** A loss on aligned log-probs [B, T] and a given per-token full-vocabulary divergence [B, T]. */
export type FullDObjective = (g: Graph, logprobs: Tensor, perToken: Tensor) => { loss: Tensor; metrics?: Record<string, MetricSpec> };

const predicted = (x: Tensor) => slice(x, [1], ['T'], [1]); // [B, T−1, ...]: the positions a token is predicted at
const front = (y: Tensor) => pad(y, [0, 1, 0, 0]); // [B, T−1] -> [B, T], 0 at t = 0

/** teacher.fwd: one chunk of the teacher's logits -> max, sum_exp, z_next (= 0), aligned [B, T]. */
export function teacherForwardChunkGraph(dtype: DType): Graph {
  const g = new Graph('layered.teacher.fwd');
  const z = teacherLogits(g, dtype); // [B, T−1, C]
  const m = reduceMax(z, -1, true);
  g.output('max', front(squeeze(m, -1)));
  g.output('sum_exp', front(reduceSum(exp(sub(z, m)), -1, false)));
  g.output('z_next', front(mul(squeeze(m, -1), 0)));
  return g;
}

function teacherLogits(g: Graph, dtype: DType): Tensor {
  const h = g.input('teacher_hidden', ['B', 'T', 'Dt'], dtype);
  const w = g.input('teacher_head_chunk', ['C', 'Dt'], dtype);
  return mul(linear(predicted(h), w), g.input('teacher_inv_temperature', [], dtype)); // [B, T−1, C]
}

/** Both sides' chunk log-probs [B, T−1, C] and what the backward needs. */
function chunkSides(g: Graph, c: ModelConfig, dtype: DType) {
  const hn = g.input('hn', ['B', 'T', c.hiddenSize], dtype);
  const w = g.input('head_chunk', ['C', c.hiddenSize], dtype);
  const invTemp = g.input('inv_temperature', [], dtype);
  const prev = slice(hn, [0], [dimAdd('T', -1)], [1]); // [B, T−1, D]
  const lq = sub(mul(linear(prev, w), invTemp), unsqueeze(predicted(g.input('lse', ['B', 'T'], dtype)), -1));
  const lp = sub(teacherLogits(g, dtype), unsqueeze(predicted(g.input('teacher_lse', ['B', 'T'], dtype)), -1));
  return { prev, w, invTemp, lp, lq };
}

/** q_v a_v of the header's table, [B, T−1, C]. */
function qa(name: FullDivergenceName, lp: Tensor, lq: Tensor, beta: number): Tensor {
  if (name === 'full_fkl') return mul(exp(lp), -1);
  if (name === 'full_rkl') return mul(exp(lq), sub(lq, lp));
  // log m = log(β e^lp + (1 − β) e^lq) by the max trick
  const u = add(lp, Math.log(beta));
  const v = add(lq, Math.log(1 - beta));
  const m = maximum(u, v);
  const lm = add(m, log(add(exp(sub(u, m)), exp(sub(v, m)))));
  return mul(mul(exp(lq), sub(lq, lm)), 1 - beta);
}

/** full.fwd: the chunk's Σ_v of the divergence's terms and of q_v a_v, aligned [B, T]. */
export function fullForwardChunkGraph(c: ModelConfig, dtype: DType, name: FullDivergenceName, beta: number): Graph {
  const g = new Graph(`layered.${name}.fwd`);
  const { lp, lq } = chunkSides(g, c, dtype);
  g.output('d_part', front(reduceSum(FULL_DIVERGENCES[name].perOutcome(lp, lq, beta), -1, false)));
  g.output('abar_part', front(reduceSum(qa(name, lp, lq, beta), -1, false)));
  return g;
}

/** full.bwd: the divergence's share of d.head_chunk [C, D] and dhn [B, T, D] (zero at the last position). */
export function fullBackwardChunkGraph(c: ModelConfig, dtype: DType, name: FullDivergenceName, beta: number): Graph {
  const g = new Graph(`layered.${name}.bwd`);
  const { prev, w, invTemp, lp, lq } = chunkSides(g, c, dtype);
  const gd = unsqueeze(predicted(g.input('d.full_d', ['B', 'T'], dtype)), -1); // [B, T−1, 1]
  const abar = unsqueeze(predicted(g.input('full_abar', ['B', 'T'], dtype)), -1);
  const dz = mul(mul(sub(qa(name, lp, lq, beta), mul(exp(lq), abar)), gd), invTemp); // [B, T−1, C]
  g.output('d.head_chunk', matmul(transpose(flattenRows(dz), [1, 0]), flattenRows(prev)));
  g.output('dhn', pad(matmul(dz, w), [0, 0, 0, 0, 1, 0]));
  return g;
}

/** The layered step's loss graph when the objective has a full-vocabulary divergence: also full_d in, d.full_d out. */
export function fullLossGraph(objective: FullDObjective, dtype: DType): { graph: Graph; metrics: string[]; combine: Record<string, 'sum' | 'mean' | 'max' | 'min'> } {
  const g = new Graph('layered.loss.full');
  const logp = g.input('logprobs', ['B', 'T'], dtype);
  const d = g.input('full_d', ['B', 'T'], dtype);
  const o = objective(g, logp, d);
  const metrics: string[] = [];
  const combine: Record<string, 'sum' | 'mean' | 'max' | 'min'> = {};
  for (const [n, m] of Object.entries(o.metrics ?? {})) {
    g.output(n, 'value' in m ? m.value : m);
    metrics.push(n);
    combine[n] = 'value' in m ? m.combine : 'mean';
  }
  g.output('loss', o.loss);
  const [dlogp, dd] = grad(o.loss, [logp, d]);
  g.output('d.logprobs', dlogp!);
  g.output('d.full_d', dd!);
  return { graph: g, metrics, combine };
}
