// Loss-level divergences through the teacher's distribution (docs/algorithms.md §9), one registry
// entry each, differentiated through log π_θ inside the train graph.
//
// At a completion position let S be the teacher's top-k ids (k = K), a_j = log π_T(S_j) (data, fed),
// b_j = log π_θ(S_j) (the student's log-softmax at those ids, at the sampler's temperature, like
// every other log π_θ of the train step). The mass outside S is one extra "tail" outcome, so each
// divergence is taken between two distributions over K + 1 outcomes:
//
//   p_j = e^{a_j},  p_tail = 1 − Σ_j p_j          q_j = e^{b_j},  q_tail = 1 − Σ_j q_j
//
//   topk_fkl   KL(p ‖ q) = Σ_{o ∈ S ∪ {tail}} p_o (log p_o − log q_o)          (forward; GKD β = 0, TRL loss_add_tail)
//   topk_rkl   KL(q ‖ p) = Σ_{o ∈ S ∪ {tail}} q_o (log q_o − log p_o)          (reverse, WITH the tail bucket, not renormalised)
//   topk_jsd   JSD(β) = β·KL(p ‖ m) + (1 − β)·KL(q ‖ m),  m = β p + (1 − β) q   (GKD / TRL generalized_jsd_loss)
//
// JSD's β convention is TRL's: β weights the teacher in the mixture. JSD(β)/β → KL(p ‖ q) as β → 0
// and JSD(β)/(1 − β) → KL(q ‖ p) as β → 1, so the endpoints (where JSD itself vanishes) are the two
// KL entries above; β must lie strictly inside (0, 1). log m is a two-term logsumexp, so no
// probability is ever formed and then logged.
//
// Numerics of the tail. log(1 − Σ e^{x_j}) is computed as log(max(1 − Σ e^{x_j}, TAIL_FLOOR)): the
// engine has no log1p, and log1p would not help here anyway since the cancellation is in forming
// 1 − Σ itself (float32 rounds Σ to ~6e-8). Below the floor the tail counts as TAIL_FLOOR (a bias of
// at most 1e-6 in probability) and its gradient is zero, so the log never sees 0 or a negative
// number (teacher top-k log-probs rounded to float32 may sum slightly above 1) and −∞ never
// reaches a product. A teacher whose top-k covers everything therefore gives p_tail = 1e-6, not 0.
//
// The per-token values are [B, T]; policy.ts masks and weights them like any other loss term.

import { type DType, type Tensor, add, cast, concat, equal, exp, linear, log, maximum, mul, reduceMax, reduceSum, slice, squeeze, sub, unsqueeze } from '../../engine/index.ts';

export type TopkDivergenceName = 'topk_fkl' | 'topk_rkl' | 'topk_jsd';

/** Probability floor of the tail bucket (see the header). */
export const TAIL_FLOOR = 1e-6;

export interface TopkDivergence {
  /** The formula, for messages and docs. */
  formula: string;
  /** Per-position divergence [B, T] from log p, log q over the K + 1 outcomes [B, T, K+1] (tail last). */
  perToken: (lp: Tensor, lq: Tensor, beta: number) => Tensor;
}

const kl = (la: Tensor, lb: Tensor) => reduceSum(mul(exp(la), sub(la, lb)), -1, false); // Σ a (log a − log b)

/** log(β e^x + (1 − β) e^y), elementwise, by the max trick. */
function logMix(x: Tensor, y: Tensor, beta: number): Tensor {
  const u = add(x, Math.log(beta));
  const v = add(y, Math.log(1 - beta));
  const m = maximum(u, v);
  return add(m, log(add(exp(sub(u, m)), exp(sub(v, m)))));
}

export const TOPK_DIVERGENCES: Readonly<Record<TopkDivergenceName, TopkDivergence>> = {
  topk_fkl: { formula: 'KL(p‖q) = Σ p (log p − log q) over the top-k ids and the tail bucket', perToken: (lp, lq) => kl(lp, lq) },
  topk_rkl: { formula: 'KL(q‖p) = Σ q (log q − log p) over the top-k ids and the tail bucket (not renormalised)', perToken: (lp, lq) => kl(lq, lp) },
  topk_jsd: {
    formula: 'JSD(β) = β KL(p‖m) + (1−β) KL(q‖m), m = β p + (1−β) q, over the top-k ids and the tail bucket',
    perToken: (lp, lq, beta) => {
      const lm = logMix(lp, lq, beta);
      return add(mul(kl(lp, lm), beta), mul(kl(lq, lm), 1 - beta));
    },
  },
};

/** log(1 − Σ_j e^{x_j}) over the last axis, floored at log TAIL_FLOOR: [.., K] -> [.., 1]. */
export function logTail(x: Tensor): Tensor {
  const mass = reduceSum(exp(x), -1, true);
  return log(maximum(sub(1, mass), TAIL_FLOOR));
}

/** [.., K] log-probs at the top-k ids -> [.., K+1] with the tail bucket appended last. */
export const withTail = (x: Tensor) => concat([x, logTail(x)], -1);

/** The check every config path runs: a known name and, for JSD, 0 < β < 1. */
export function checkTopkDivergence(name: string, topK: number, beta: number | undefined): void {
  if (!(name in TOPK_DIVERGENCES)) throw new Error(`unknown divergence "${name}"; known: ${Object.keys(TOPK_DIVERGENCES).join(', ')}`);
  if (!Number.isInteger(topK) || topK < 1) throw new Error(`${name}: topK must be an integer ≥ 1, got ${topK}`);
  if (name === 'topk_jsd' && !(beta! > 0 && beta! < 1))
    throw new Error(`topk_jsd: β must lie strictly between 0 and 1, got ${beta}; for β = 0 use topk_fkl (the limit JSD/β), for β = 1 topk_rkl`);
}

/** Per-token divergence [B, T] from teacher a [B, T, K] and student b [B, T, K] log-probs at the teacher's ids. */
export function topkDivergence(name: TopkDivergenceName, a: Tensor, b: Tensor, beta = 0.5): Tensor {
  return TOPK_DIVERGENCES[name].perToken(withTail(a), withTail(b), beta);
}

/** Σ_j e^{a_j}: the teacher mass its top-k covers, [B, T]. */
export const topkMass = (a: Tensor) => reduceSum(exp(a), -1, false);

/** |S_student ∩ S_teacher| / K per position, [B, T], from two [B, T, K] id tensors. */
export function topkOverlap(studentIds: Tensor, teacherIds: Tensor, dtype: DType): Tensor {
  const k = teacherIds.shape[2] as number;
  const hit = reduceMax(cast(equal(unsqueeze(studentIds, -1), unsqueeze(teacherIds, -2)), dtype), -1, false); // [B, T, K]
  return mul(reduceSum(hit, -1, false), 1 / k);
}

// ---------------------------------------------------------------------------------------------
// Full-vocabulary divergences (local teachers; docs/algorithms.md §5 "Full-vocabulary divergences").
//
// The same three divergences with no tail bucket: p = π_T and q = π_θ over the whole vocabulary V,
//
//   full_fkl   KL(p ‖ q) = Σ_v p_v (log p_v − log q_v)
//   full_rkl   KL(q ‖ p) = Σ_v q_v (log q_v − log p_v)
//   full_jsd   JSD(β) = β·KL(p ‖ m) + (1 − β)·KL(q ‖ m),  m = β p + (1 − β) q
//
// Both distributions come from hidden states and head matrices, z = h·Wᵀ/τ, and are never formed
// over the whole vocabulary at once: pass 1 runs a logsumexp of each side over vocabulary chunks
// (the running-max fold of student/model/logprobs.ts), pass 2 forms, chunk by chunk, log p_c = z^T_c
// − lse_T and log q_c = z^S_c − lse_S and adds the chunk's Σ_v of the per-outcome terms. Each
// divergence is a sum over outcomes of terms that depend only on (log p_v, log q_v), so the chunked
// sum is the divergence exactly; the graph holds [B, T, chunk] per side per chunk.

export type FullDivergenceName = 'full_fkl' | 'full_rkl' | 'full_jsd';

/** One side of a full-vocabulary divergence: z = (hidden · headᵀ) · invTemp. */
export interface VocabSide {
  hidden: Tensor; // [B, T, D]
  head: Tensor; // [V, D]
  invTemp: Tensor; // [] (1/τ)
  /** logsumexp_v z_v [B, T] when the caller already has it (the student's, from its log-probs). */
  lse?: Tensor;
}

export const FULL_DIVERGENCES: Readonly<Record<FullDivergenceName, { formula: string; perOutcome: (lp: Tensor, lq: Tensor, beta: number) => Tensor }>> = {
  full_fkl: { formula: 'KL(p‖q) = Σ_v p (log p − log q) over the whole vocabulary', perOutcome: (lp, lq) => mul(exp(lp), sub(lp, lq)) },
  full_rkl: { formula: 'KL(q‖p) = Σ_v q (log q − log p) over the whole vocabulary', perOutcome: (lp, lq) => mul(exp(lq), sub(lq, lp)) },
  full_jsd: {
    formula: 'JSD(β) = β KL(p‖m) + (1−β) KL(q‖m), m = β p + (1−β) q, over the whole vocabulary',
    perOutcome: (lp, lq, beta) => {
      const lm = logMix(lp, lq, beta);
      return add(mul(mul(exp(lp), sub(lp, lm)), beta), mul(mul(exp(lq), sub(lq, lm)), 1 - beta));
    },
  },
};

export const isFullDivergence = (name: string): name is FullDivergenceName => name in FULL_DIVERGENCES;

/** The check every config path runs for a full-vocabulary divergence: a known name and, for JSD, 0 < β < 1. */
export function checkFullDivergence(name: string, beta: number | undefined): void {
  if (!isFullDivergence(name)) throw new Error(`unknown divergence "${name}"; known: ${[...Object.keys(TOPK_DIVERGENCES), ...Object.keys(FULL_DIVERGENCES)].join(', ')}`);
  if (name === 'full_jsd' && !(beta! > 0 && beta! < 1))
    throw new Error(`full_jsd: β must lie strictly between 0 and 1, got ${beta}; for β = 0 use full_fkl (the limit JSD/β), for β = 1 full_rkl`);
}

const chunkLogits = (s: VocabSide, c0: number, c1: number, v: number) => mul(linear(s.hidden, c0 === 0 && c1 === v ? s.head : slice(s.head, [c0], [c1], [0])), s.invTemp); // [B, T, Vc]

/** logsumexp over the vocabulary of one side, chunk by chunk: [B, T]. */
export function chunkedLse(s: VocabSide, chunk: number): Tensor {
  const v = s.head.shape[0] as number;
  let runMax: Tensor | null = null;
  let runSum: Tensor | null = null;
  for (let c0 = 0; c0 < v; c0 += chunk) {
    const z = chunkLogits(s, c0, Math.min(v, c0 + chunk), v);
    const m = reduceMax(z, -1, true);
    const e = reduceSum(exp(sub(z, m)), -1, true);
    if (!runMax || !runSum) [runMax, runSum] = [m, e];
    else {
      const nm = maximum(runMax, m);
      runSum = add(mul(runSum, exp(sub(runMax, nm))), mul(e, exp(sub(m, nm))));
      runMax = nm;
    }
  }
  return squeeze(add(runMax!, log(runSum!)), -1);
}

/**
 * Per-position full-vocabulary divergence [B, T] between the teacher side p and the student side q
 * (both [B, T, ·] hidden states over heads of the same V rows), in vocabulary chunks of `chunk` rows.
 */
export function fullDivergence(name: FullDivergenceName, teacher: VocabSide, student: VocabSide, o: { chunk?: number; beta?: number } = {}): Tensor {
  const v = student.head.shape[0];
  const vt = teacher.head.shape[0];
  if (typeof v !== 'number' || v !== vt) throw new Error(`${name}: the teacher's head has ${vt} rows and the student's ${v}; a full-vocabulary divergence needs the same vocabulary rows on both sides`);
  const chunk = Math.max(1, Math.min(o.chunk ?? 16384, v));
  const lseT = unsqueeze(teacher.lse ?? chunkedLse(teacher, chunk), -1); // [B, T, 1]
  const lseS = unsqueeze(student.lse ?? chunkedLse(student, chunk), -1);
  const term = FULL_DIVERGENCES[name].perOutcome;
  let sum: Tensor | null = null;
  for (let c0 = 0; c0 < v; c0 += chunk) {
    const c1 = Math.min(v, c0 + chunk);
    const lp = sub(chunkLogits(teacher, c0, c1, v), lseT);
    const lq = sub(chunkLogits(student, c0, c1, v), lseS);
    const part = reduceSum(term(lp, lq, o.beta ?? 0.5), -1, false); // [B, T]
    sum = sum ? add(sum, part) : part;
  }
  return sum!;
}
