// The clipped policy loss of the train step (docs/algorithms.md §4), with the optional reference-KL and
// distillation terms, written on position-aligned log-probs [B, T] (see student/model/score.ts).
//
//   ρ = exp(log π_θ − log π_old)
//   ppo:                 ℓ = −min(ρ·A, clip(ρ, 1−ε_low, 1+ε_high)·A)
//   importance_sampling: ℓ = −ρ·A
//   + β · KL_est(log π_ref − log π_θ)          reference KL (k3 by default)
//   + c · KL_est(log π_T − log π_θ)             distillation, blend mode `loss` (k2 by default)
//   + c · D(π_T ‖ π_θ) over the teacher's top-k  distillation through the teacher's distribution
//                                               (divergences.ts: topk_fkl / topk_rkl / topk_jsd)
//   + c · D(π_T ‖ π_θ) over the whole vocabulary  the same with a local teacher's hidden states and head
//                                               as inputs, in vocab chunks (full_fkl / full_rkl / full_jsd)
//   L = Σ_{b,t} ℓ · w,   w from the host-side aggregation (aggregate.ts)
//
// Every per-token input is read only where loss_mask = 1: elsewhere it is replaced by a neutral
// value before any exp, so padding and prompt positions may hold anything (even NaN) without
// reaching the loss, its gradient or a metric. Teacher and reference log-probs are data inputs and
// never differentiated. Metrics are means over the whole batch's completion tokens (through the
// `batch_tokens` input) or maxima/minima, so they combine exactly over micro-batches.

import { type DType, type Graph, type Tensor, abs, add, and, cast, clip, div, exp, greater, less, minimum, mul, neg, or, pad, reduceMax, slice, sub, sumAll, unsqueeze, where } from '../../engine/index.ts';
import type { MetricSpec } from '../../engine/train/graph.ts';
import { type FullDivergenceName, type TopkDivergenceName, type VocabSide, checkFullDivergence, checkTopkDivergence, fullDivergence, topkDivergence, topkMass, topkOverlap } from './divergences.ts';

export type PolicyLossType = 'ppo' | 'importance_sampling';
export type KlEstimatorName = 'k1' | 'k2' | 'k3';

export interface PolicyLossOptions {
  /** Surrogate (default ppo). */
  type?: PolicyLossType;
  /** ε_low: ρ is clipped below at 1 − ε_low (default 0.2). */
  clipLow?: number;
  /** ε_high: ρ is clipped above at 1 + ε_high (default 0.2; DAPO's clip-higher uses ~0.28). */
  clipHigh?: number;
  /** Reference KL penalty β·KL(π_θ‖π_ref) per completion token; needs the ref_logprobs input. */
  refKl?: { beta: number; estimator?: KlEstimatorName };
  /**
   * Distillation loss c·KL per completion token (blend mode `loss`): on the sampled token (needs
   * teacher_logprobs), or with `divergence` over the teacher's top-k ids plus a tail bucket (needs
   * teacher_top_ids / teacher_top_logprobs [B, T, topK] and the student's log-probs at those ids).
   */
  distill?: { coef: number; estimator?: KlEstimatorName; divergence?: TopkDistill; full?: FullDistill };
}

/**
 * A full-vocabulary divergence (divergences.ts): the teacher's final hidden states teacher_hidden
 * [B, T, Dt] (position-aligned: row t is the state that predicts token t, zero at t = 0), its head
 * teacher_head [V, Dt] and teacher_inv_temperature [] are inputs; the student's side comes from the
 * model (StudentVocab) in the fused step; the layered step computes D per head chunk (layered-full.ts). Not LoRA.
 */
export interface FullDistill {
  name: FullDivergenceName;
  /** β of full_jsd, strictly inside (0, 1). */
  beta?: number;
  /** Vocabulary rows per chunk of both passes (default: the model's log-prob chunk, 16384). */
  chunk?: number;
}

/** What the model adds for a full-vocabulary divergence: its states before each next token, its head, 1/τ and lse. */
export interface StudentVocab {
  hidden: Tensor; // [B, T−1, D]: the state before token t+1 (unaligned: row t predicts token t + 1)
  head: Tensor; // [V, D]
  invTemp: Tensor; // []
  lse?: Tensor; // [B, T−1]
}

/** A divergence through the teacher's top-k distribution (divergences.ts). */
export interface TopkDistill {
  name: TopkDivergenceName;
  /** k: teacher alternatives per position (every position must carry exactly k). */
  topK: number;
  /** β of topk_jsd, strictly inside (0, 1). */
  beta?: number;
}

/** What the model adds for a top-k divergence: log π_θ at the teacher's ids and its own top-k ids. */
export interface StudentTopk {
  logprobs: Tensor; // [B, T, K] at teacher_top_ids, position-aligned
  topIds?: Tensor; // [B, T, K] int64, the student's own top-k (for the overlap metric)
}

/** The graph inputs of the loss beyond the model's; names are the feed names. */
export interface PolicyInputs {
  mask: Tensor; // loss_mask [B, T]: 1 on completion tokens, aligned like the log-probs
  weights: Tensor; // loss_weights [B, T]: aggregation weights over the whole batch
  advantages: Tensor; // advantages [B, T]
  oldLogprobs: Tensor; // old_logprobs [B, T]: the sampler's log π_old, nats
  refLogprobs?: Tensor; // ref_logprobs [B, T]
  teacherLogprobs?: Tensor; // teacher_logprobs [B, T]
  teacherTopIds?: Tensor; // teacher_top_ids [B, T, K] int64 (top-k divergence)
  teacherTopLogprobs?: Tensor; // teacher_top_logprobs [B, T, K]
  teacherHidden?: Tensor; // teacher_hidden [B, T, Dt] (full-vocabulary divergence)
  teacherHead?: Tensor; // teacher_head [V, Dt]
  teacherInvTemp?: Tensor; // teacher_inv_temperature []
  batchTokens: Tensor; // batch_tokens []: completion tokens in the whole batch (≥ 1), for metric means
}

export class LossConfigError extends Error {
  override name = 'LossConfigError';
}

interface Surrogate {
  /** Per-token loss from ρ and A.   [B, T] */
  loss: (rho: Tensor, adv: Tensor, eps: { low: number; high: number }) => Tensor;
  /** Where the clip is active (the gradient is cut), or null for an unclipped surrogate. */
  clipped: ((rho: Tensor, adv: Tensor, eps: { low: number; high: number }) => Tensor) | null;
}

export const POLICY_LOSSES: Readonly<Record<PolicyLossType, Surrogate>> = {
  ppo: {
    loss: (rho, adv, e) => neg(minimum(mul(rho, adv), mul(clip(rho, 1 - e.low, 1 + e.high), adv))),
    clipped: (rho, adv, e) => or(and(greater(rho, 1 + e.high), greater(adv, 0)), and(less(rho, 1 - e.low), less(adv, 0))),
  },
  importance_sampling: { loss: (rho, adv) => neg(mul(rho, adv)), clipped: null },
};

interface KlEstimator {
  /** What the gradient of this estimator does when used as a loss on the student's samples. */
  label: string;
  /** Per-token loss from u = log π_other − log π_θ, or null when refused as a loss. */
  loss: ((u: Tensor) => Tensor) | null;
}

/** KL estimators used as losses (docs/algorithms.md §5), keyed by name. */
export const KL_ESTIMATORS: Readonly<Record<KlEstimatorName, KlEstimator>> = {
  k1: {
    label: 'k1 = log π_θ − log π_other: zero expected gradient as a loss (E[∇ log π_θ] = 0 on the student\'s samples)',
    loss: null,
  },
  k2: { label: 'k2 = ½ (log π_θ − log π_other)²: the per-token reverse-KL gradient', loss: (u) => mul(mul(u, u), 0.5) },
  k3: { label: 'k3 = e^u − u − 1, u = log π_other − log π_θ: a forward-KL-like gradient', loss: (u) => sub(sub(exp(u), u), 1) },
};

/** The estimator `name` for the `term` loss, refusing k1 with what to use instead. */
export function klLoss(name: KlEstimatorName, term: string): (u: Tensor) => Tensor {
  const est = KL_ESTIMATORS[name];
  if (!est) throw new LossConfigError(`${term}: unknown KL estimator "${name}"; known: ${Object.keys(KL_ESTIMATORS).join(', ')}`);
  if (!est.loss)
    throw new LossConfigError(
      `${term}: the k1 estimator cannot be used as a loss: ${est.label}. Use k1 as a reward instead (the teacher term of the advantage, docs/algorithms.md §2), or k2 (reverse-KL gradient) or k3 (forward-KL-like) as a loss.`,
    );
  return est.loss;
}

/** Check options before any graph is built (clear errors at configuration time). */
export function checkPolicyLossOptions(o: PolicyLossOptions): void {
  const type = o.type ?? 'ppo';
  if (!POLICY_LOSSES[type]) throw new LossConfigError(`unknown policy loss "${type}"; known: ${Object.keys(POLICY_LOSSES).join(', ')}`);
  for (const [k, v] of [['clipLow', o.clipLow], ['clipHigh', o.clipHigh]] as const)
    if (v !== undefined && !(v >= 0)) throw new LossConfigError(`${k} must be ≥ 0, got ${v}`);
  if (o.refKl) klLoss(o.refKl.estimator ?? 'k3', 'refKl');
  if (o.distill?.divergence && o.distill.full) throw new LossConfigError('distill: a top-k divergence and a full-vocabulary one are exclusive; set one');
  if (o.distill?.full) {
    try {
      checkFullDivergence(o.distill.full.name, o.distill.full.beta);
    } catch (e) {
      throw new LossConfigError(`distill: ${(e as Error).message}`);
    }
  } else if (o.distill?.divergence) {
    const d = o.distill.divergence;
    try {
      checkTopkDivergence(d.name, d.topK, d.beta);
    } catch (e) {
      throw new LossConfigError(`distill: ${(e as Error).message}`);
    }
  } else if (o.distill) klLoss(o.distill.estimator ?? 'k2', 'distill');
}

/**
 * Declare the loss inputs on `g` (ref/teacher only when their term is enabled). For a full-vocabulary
 * divergence `vocab` is V (the teacher's states and head are inputs here: the fused step) or 'given'
 * (the per-token divergence comes from elsewhere: the layered step's head chunks, layered-full.ts).
 */
export function policyInputs(g: Graph, dtype: DType, o: PolicyLossOptions, vocab?: number | 'given'): PolicyInputs {
  const full = vocab === 'given' ? undefined : o.distill?.full;
  if (full && vocab === undefined) throw new LossConfigError(`distill ${full.name}: this train step declares no teacher_hidden / teacher_head inputs (the fused step declares them; the layered step passes 'given' and the per-token divergence)`);
  const bt = (name: string) => g.input(name, ['B', 'T'], dtype);
  return {
    mask: bt('loss_mask'),
    weights: bt('loss_weights'),
    advantages: bt('advantages'),
    oldLogprobs: bt('old_logprobs'),
    refLogprobs: o.refKl ? bt('ref_logprobs') : undefined,
    teacherLogprobs: o.distill && !o.distill.divergence && !o.distill.full ? bt('teacher_logprobs') : undefined,
    teacherHidden: full ? g.input('teacher_hidden', ['B', 'T', 'Dt'], dtype) : undefined,
    teacherHead: full ? g.input('teacher_head', [vocab!, 'Dt'], dtype) : undefined,
    teacherInvTemp: full ? g.input('teacher_inv_temperature', [], dtype) : undefined,
    teacherTopIds: o.distill?.divergence ? g.input('teacher_top_ids', ['B', 'T', o.distill.divergence.topK], 'int64') : undefined,
    teacherTopLogprobs: o.distill?.divergence ? g.input('teacher_top_logprobs', ['B', 'T', o.distill.divergence.topK], dtype) : undefined,
    batchTokens: g.input('batch_tokens', [], dtype),
  };
}

/**
 * The loss and metrics from the student's log-probs `logp` [B, T] (differentiable); a top-k
 * divergence also needs `topk`, the student's log-probs at the teacher's ids.
 */
export function policyLoss(logp: Tensor, x: PolicyInputs, o: PolicyLossOptions, topk?: StudentTopk, vocab?: StudentVocab | { perToken: Tensor }): { loss: Tensor; metrics: Record<string, MetricSpec> } {
  checkPolicyLossOptions(o);
  const surrogate = POLICY_LOSSES[o.type ?? 'ppo'];
  const eps = { low: o.clipLow ?? 0.2, high: o.clipHigh ?? 0.2 };
  const on = greater(x.mask, 0); // [B, T] bool
  const masked = (t: Tensor, neutral = 0) => where(on, t, neutral); // off-mask values never reach an exp
  const mean = (t: Tensor) => div(sumAll(masked(t)), x.batchTokens); // over the whole batch's tokens

  const logRatio = masked(sub(logp, x.oldLogprobs)); // [B, T]
  const rho = exp(logRatio); // [B, T], 1 off-mask
  const adv = masked(x.advantages); // [B, T]
  let perToken = surrogate.loss(rho, adv, eps); // [B, T]
  const metrics: Record<string, MetricSpec> = {
    clip_fraction: { value: surrogate.clipped ? mean(cast(surrogate.clipped(rho, adv, eps), logp.dtype)) : mul(x.batchTokens, 0), combine: 'sum' },
    ratio_min: { value: neg(reduceMax(masked(neg(rho), -Infinity), [0, 1])), combine: 'min' }, // +∞ when no token is masked in
    ratio_max: { value: reduceMax(masked(rho), [0, 1]), combine: 'max' },
    logprob_gap_max: { value: reduceMax(abs(logRatio), [0, 1]), combine: 'max' },
    entropy_estimate: { value: mean(neg(logp)), combine: 'sum' },
  };
  if (o.refKl) {
    if (!x.refLogprobs) throw new LossConfigError('refKl is enabled but no ref_logprobs input was declared');
    const k = klLoss(o.refKl.estimator ?? 'k3', 'refKl')(masked(sub(x.refLogprobs, logp))); // [B, T]
    perToken = add(perToken, mul(k, o.refKl.beta));
    metrics.kl_ref = { value: mean(k), combine: 'sum' };
  }
  if (o.distill?.full) {
    const d = o.distill.full;
    if (!vocab) throw new LossConfigError(`distill ${d.name}: the student's hidden states and head are missing (this train step cannot compute full-vocabulary divergences)`);
    let k: Tensor; // [B, T], 0 at t = 0
    if ('perToken' in vocab) k = vocab.perToken; // computed per head chunk by the layered step (layered-full.ts)
    else {
      if (!x.teacherHidden || !x.teacherHead || !x.teacherInvTemp) throw new LossConfigError(`distill ${d.name}: no teacher_hidden / teacher_head / teacher_inv_temperature inputs were declared`);
      const t = x.teacherHidden.shape[1]!;
      // the teacher's states, unaligned like the student's (row t predicts token t + 1); off-mask rows are zeroed first,
      // so padding (even NaN) becomes a uniform teacher there: finite, then masked out
      const th = slice(where(unsqueeze(on, -1), x.teacherHidden, 0), [1], [t], [1]); // [B, T−1, Dt]
      const teacher: VocabSide = { hidden: th, head: x.teacherHead, invTemp: x.teacherInvTemp };
      k = pad(fullDivergence(d.name, teacher, vocab, { chunk: d.chunk, beta: d.beta }), [0, 1, 0, 0]);
    }
    perToken = add(perToken, mul(masked(k), o.distill.coef));
    metrics[`distill_${d.name}`] = { value: mean(k), combine: 'sum' };
  } else if (o.distill?.divergence) {
    const d = o.distill.divergence;
    if (!x.teacherTopLogprobs || !x.teacherTopIds) throw new LossConfigError(`distill ${d.name}: no teacher_top_ids / teacher_top_logprobs inputs were declared`);
    if (!topk) throw new LossConfigError(`distill ${d.name}: the student's log-probs at the teacher's top-k ids are missing (this train step cannot compute them)`);
    const on3 = unsqueeze(on, -1); // [B, T, 1]
    // off-mask positions get a uniform teacher (mass k/(k+1)): finite everywhere, then masked out
    const a = where(on3, x.teacherTopLogprobs, -Math.log(d.topK + 1)); // [B, T, K]
    const b = where(on3, topk.logprobs, -Math.log(d.topK + 1)); // [B, T, K]
    const k = topkDivergence(d.name, a, b, d.beta); // [B, T]
    perToken = add(perToken, mul(k, o.distill.coef));
    metrics[`distill_${d.name}`] = { value: mean(k), combine: 'sum' };
    metrics.topk_teacher_mass = { value: mean(topkMass(a)), combine: 'sum' };
    if (topk.topIds) metrics.topk_overlap = { value: mean(topkOverlap(topk.topIds, x.teacherTopIds, logp.dtype)), combine: 'sum' };
  } else if (o.distill) {
    if (!x.teacherLogprobs) throw new LossConfigError('distill is enabled but no teacher_logprobs input was declared');
    const est = o.distill.estimator ?? 'k2';
    const k = klLoss(est, 'distill')(masked(sub(x.teacherLogprobs, logp))); // [B, T]
    perToken = add(perToken, mul(k, o.distill.coef));
    metrics[`distill_${est}`] = { value: mean(k), combine: 'sum' };
  }
  const loss = sumAll(mul(masked(perToken), masked(x.weights)));
  return { loss, metrics };
}
