// The teacher term of on-policy distillation (docs/algorithms.md §2): the sampled-token reverse KL used as a
// dense per-token reward, as in Thinking Machines "On-Policy Distillation" (2025, Tinker cookbook),
// GKD (Agarwal et al. 2024) and MiniLLM (Gu et al. 2024); λ > 1 is reward extrapolation, G-OPD/ExOPD
// (arXiv 2602.12125).
//
//   d_t   = log π_old(y_t) − log π_T(y_t)          on completion tokens, 0 elsewhere
//   r_t   = −λ · d_t · m_t
//   A^T_t = Σ_{t' ≥ t, m_t' = 1} γ^{k(t') − k(t)} r_t'   where k(t) = number of completion tokens before t
//
// Contracts:
// - Everything here is data. π_old is the log-prob the sampler recorded for the token it drew (of the
//   tempered distribution when sampling at τ ≠ 1); π_T comes from the teacher's recorded scores. No
//   gradient ever flows through d (§6, first pitfall): these are plain numbers.
// - Rows are aligned position by position: studentLogprobs_T[t], teacherLogprobs_T[t] and mask_T[t] all
//   refer to token t of the same padded row (prompt + completion + padding).
// - The discount counts completion tokens, not row indices: k(t) is the token's rank inside the
//   completion, so a prompt offset or left padding changes nothing, and masked-out positions between
//   completion tokens (if any) are skipped rather than counted as steps. For a contiguous completion at
//   t0..t1 this is the usual γ^{t' − t}. Off-mask positions get A^T = 0 and contribute nothing.
// - Non-finite values at masked positions throw NonFiniteError (R7); off-mask values are never read.

import { checkScalar, assertFinite } from './finite.ts';
import { checkMask, checkSameLength } from './mask.ts';

/** d_T: the per-token teacher gap log π_old − log π_T on completion tokens, exactly 0 elsewhere. */
export function teacherGap(
  studentLogprobs_T: ArrayLike<number>,
  teacherLogprobs_T: ArrayLike<number>,
  mask_T: ArrayLike<number>,
): number[] {
  checkMask('mask_T', mask_T);
  checkSameLength('studentLogprobs_T', studentLogprobs_T, 'mask_T', mask_T);
  checkSameLength('teacherLogprobs_T', teacherLogprobs_T, 'mask_T', mask_T);
  assertFinite('studentLogprobs_T', studentLogprobs_T, mask_T);
  assertFinite('teacherLogprobs_T', teacherLogprobs_T, mask_T);
  return Array.from(mask_T, (m, t) => (m === 1 ? studentLogprobs_T[t] - teacherLogprobs_T[t] : 0));
}

/**
 * A^T_T: the discounted sum of r = −λ·d over the rest of the completion (γ = 0: A^T_t = −λ·d_t).
 * λ ≥ 0 (λ > 1 allowed: ExOPD); 0 ≤ γ ≤ 1.
 */
export function teacherAdvantages(d_T: ArrayLike<number>, mask_T: ArrayLike<number>, lambda: number, gamma = 0): number[] {
  checkMask('mask_T', mask_T);
  checkSameLength('d_T', d_T, 'mask_T', mask_T);
  checkScalar('lambda', lambda, 0);
  checkScalar('gamma', gamma, 0, 1);
  assertFinite('d_T', d_T, mask_T);
  const advantages_T = new Array<number>(d_T.length).fill(0);
  let tail = 0; // Σ over later completion tokens, already discounted to the next completion token
  for (let t = d_T.length - 1; t >= 0; t--) {
    if (mask_T[t] === 0) continue;
    tail = -lambda * d_T[t] + gamma * tail;
    advantages_T[t] = tail;
  }
  return advantages_T;
}

// ---- λ schedules ---------------------------------------------------------------------------------

export type LambdaScheduleKind = 'constant' | 'linear' | 'cosine';

export interface LambdaSchedule {
  kind: LambdaScheduleKind;
  /** Peak λ, reached at the end of warm-up (λ > 1 allowed: ExOPD). */
  lambda: number;
  /** λ at the last step for the decaying kinds (default 0); ignored by `constant`. */
  final?: number;
  /** Steps of linear warm-up from 0 to `lambda` (default 0: no warm-up). */
  warmupSteps?: number;
}

/** Decay factor f(p) ∈ [0, 1] at progress p ∈ [0, 1] through the post-warm-up steps; f(0) = 1. */
export const LAMBDA_DECAYS: Readonly<Record<LambdaScheduleKind, (progress: number) => number>> = {
  constant: () => 1,
  linear: (p) => 1 - p,
  cosine: (p) => 0.5 * (1 + Math.cos(Math.PI * p)),
};

/**
 * λ at `step` (0-based) of `totalSteps`, following the Hugging Face scheduler convention:
 * - warm-up (step < W): λ · step / W, so step 0 has λ = 0 and step W reaches the peak;
 * - after: final + (λ − final) · f(p), p = (step − W) / (totalSteps − W), clamped to [0, 1]
 *   so `final` is reached at step = totalSteps, one past the last 0-based step, as lr schedulers do;
 *   later steps stay at `final` (e.g. a resumed run given more steps).
 */
export function lambdaAt(schedule: LambdaSchedule, step: number, totalSteps: number): number {
  const { kind, lambda, final = 0, warmupSteps = 0 } = schedule;
  if (!Object.hasOwn(LAMBDA_DECAYS, kind)) {
    throw new RangeError(`unknown λ schedule '${kind}'; known: ${Object.keys(LAMBDA_DECAYS).join(', ')}`);
  }
  checkScalar('lambda', lambda, 0);
  checkScalar('final', final, 0);
  if (!Number.isInteger(totalSteps) || totalSteps < 1) throw new RangeError(`totalSteps = ${totalSteps} must be an integer ≥ 1`);
  if (!Number.isInteger(step) || step < 0) throw new RangeError(`step = ${step} must be an integer ≥ 0`);
  if (!Number.isInteger(warmupSteps) || warmupSteps < 0 || warmupSteps > totalSteps) {
    throw new RangeError(`warmupSteps = ${warmupSteps} must be an integer in [0, totalSteps = ${totalSteps}]`);
  }
  if (step < warmupSteps) return (lambda * step) / warmupSteps;
  const progress = Math.min(1, (step - warmupSteps) / Math.max(1, totalSteps - warmupSteps));
  return final + (lambda - final) * LAMBDA_DECAYS[kind](progress);
}
