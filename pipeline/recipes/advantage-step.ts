// From sampled groups to train-ready rollouts: the "advantages" stage of one GRPO-OPD step.
//
//   rewards ─► A^grp (groupAdvantages)            teacher log-probs ─► d = log π_old − log π_T
//                         └──────── blend ◄──────── A^T = Σ γ^k (−λ d)   (teacherAdvantages)
//
// Everything here is a composition of the pure functions in pipeline/algo; it adds only the
// bookkeeping between them (flattening groups, per-completion masks). Arrays are per completion
// token (mask all ones), so prompt and padding never enter d, the discount sum or any mean.
// Rollouts come in and go out as the one rollout record (data/schemas.ts `RolloutRow`), now with
// their advantages filled in.

import { groupAdvantages, type GroupMode } from '../algo/advantages.ts';
import { type BlendSpec, blend } from '../algo/blend.ts';
import { findNonFiniteRows } from '../algo/finite.ts';
import { type StepMetrics, stepMetrics } from '../algo/metrics.ts';
import { teacherAdvantages, teacherGap } from '../algo/teacher.ts';
import type { RolloutRow } from '../../data/schemas.ts';

/**
 * The fields of the rollout record this stage reads (a `RolloutRow` is one); teacher log-probs
 * are empty or absent without a teacher.
 */
type Scored = Pick<RolloutRow, 'promptIds' | 'completionIds' | 'samplerLogprobs' | 'truncated' | 'reward' | 'correct'> & Partial<Pick<RolloutRow, 'teacherLogprobs'>>;

export interface AdvantageSettings {
  groupMode: GroupMode;
  eps: number;
  baseline: number;
  blend: BlendSpec;
  /** λ at this step (after its schedule). */
  lambda: number;
  gamma: number;
  /** Whether `correct` means anything (the data has an answer check): report batch accuracy. Default true. */
  accuracy?: boolean;
}

export interface AdvantageStep<R extends Scored = RolloutRow> {
  /** The input rollouts, in order, each with its blended advantage per completion token. */
  rollouts: (R & { advantages: number[] })[];
  /** Absent when the step must be skipped (non-finite input has no meaningful statistics). */
  metrics?: StepMetrics;
  /** Coefficient of the k2 distillation loss (blend mode `loss`), else 0. */
  distillCoef: number;
  /** Set when a reward or teacher log-prob is NaN/Inf: the caller must skip the step (R7). */
  nonFinite?: string;
}

/** `groups[p]` holds the G rollouts of prompt p. */
export function advantageStep<R extends Scored>(groups: readonly (readonly R[])[], s: AdvantageSettings): AdvantageStep<R> {
  const flat = groups.flat();
  const masks = flat.map((r) => new Array<number>(r.completionIds.length).fill(1));
  const usesTeacher = s.blend.mode !== 'grpo';
  const bad =
    findNonFiniteRows('rewards', [flat.map((r) => r.reward)]) ??
    (usesTeacher ? findNonFiniteRows('teacher log-probs', flat.map((r) => r.teacherLogprobs ?? []), masks) : undefined);
  const rewards_G = groups.map((g) => g.map((r) => r.reward));
  const grp = bad ? rewards_G.map((g) => g.map(() => 0)) : groupAdvantages(rewards_G, s.groupMode, s.eps, s.baseline).flat();
  const d = flat.map((r, i) => (usesTeacher && !bad ? teacherGap(r.samplerLogprobs, requireTeacher(r, i), masks[i]!) : masks[i]!.map(() => 0)));
  const aT = d.map((d_T, i) => teacherAdvantages(d_T, masks[i]!, s.lambda, s.gamma));
  const blended = bad
    ? { advantages_BT: masks.map((m) => m.map(() => 0)), distillCoef: 0 }
    : blend(s.blend, flat.map((r, i) => ({ reward: r.reward, advantageGrp: (grp as number[])[i]!, teacherAdvantages_T: aT[i]!, mask_T: masks[i]! })));
  const rollouts = flat.map((r, i) => ({ ...r, advantages: blended.advantages_BT[i]! }));
  if (bad) return { rollouts, distillCoef: 0, nonFinite: bad.message };
  const metrics = stepMetrics({
    rewards_G,
    correct_B: s.accuracy === false ? undefined : flat.map((r) => r.correct),
    teacherGap_BT: d,
    advantages_BT: blended.advantages_BT,
    mask_BT: masks,
  });
  // without a teacher there is no gap to report: leave teacher_kl out rather than log a 0
  if (!usesTeacher) delete (metrics as Partial<StepMetrics>).teacher_kl;
  return { rollouts, metrics, distillCoef: blended.distillCoef };
}

function requireTeacher(r: Scored, i: number): readonly number[] {
  // the record holds no teacher log-probs as an empty list (fine for an empty completion)
  if (!r.teacherLogprobs || (r.teacherLogprobs.length === 0 && r.completionIds.length > 0)) throw new Error(`rollout ${i} has no teacher log-probs, but the blend mode needs them`);
  if (r.teacherLogprobs.length !== r.completionIds.length)
    throw new Error(`rollout ${i}: ${r.teacherLogprobs.length} teacher log-probs for ${r.completionIds.length} completion tokens`);
  return r.teacherLogprobs;
}
