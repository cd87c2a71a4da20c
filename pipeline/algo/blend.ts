// Blend modes (docs/algorithms.md §3): how the group advantage A^grp (§1) and the teacher term A^T (§2) become
// the per-token advantage the policy loss (§4) sees. One registry entry per mode:
//
//   additive  A_t = w_r·A^grp + A^T_t                        Tinker, ms-swift OPD-RL, slime (default)
//   replace   A_t = A^T_t  (rewards only logged)             Tinker OPD, NeMo-RL MOPD
//   grpo      A_t = A^grp  (no teacher; the baseline)        GRPO
//   loss      A_t = A^grp, plus c·mean_t ½(log π_θ − log π_T)² added by the train step (k2 as a loss)
//                                                           KDRL (arXiv 2506.02208), verl task+distill
//   masked    A_t = w_r·A^grp + [R < threshold]·A^T_t       KDRL reward-guided KD
//
// Contracts: the output is 0 at every off-mask position (prompt, padding), whatever the inputs hold
// there, so nothing leaks into the loss; an empty completion (mask all 0) gets an all-zero row. The
// `loss` mode cannot add its term here (it is differentiated through log π_θ inside the train graph),
// so it returns it as data: `distillCoef` = c, and 0 for every other mode. "Below the threshold" is
// strict (R < threshold). Non-finite inputs throw (R7).

import { assertFinite, checkScalar } from './finite.ts';
import { checkMask, checkSameLength } from './mask.ts';

/** The terms of one rollout the blend reads (computed from the rollout record, not a rollout itself). */
export interface BlendTerms {
  /** R_i, the task reward (after combineRewards). */
  reward: number;
  /** A^grp_i from groupAdvantages. */
  advantageGrp: number;
  /** A^T_{i,t} from teacherAdvantages, aligned with mask_T. */
  teacherAdvantages_T: ArrayLike<number>;
  /** m_{i,t}: 1 on completion tokens. */
  mask_T: ArrayLike<number>;
}

/** The config `blend` section, one variant per mode, each with only the values that mode uses. */
export type BlendSpec =
  | { mode: 'additive'; /** w_r */ rewardWeight: number }
  | { mode: 'replace' }
  | { mode: 'grpo' }
  | { mode: 'loss'; /** c, coefficient of the k2 distillation loss */ distillCoef: number }
  | { mode: 'masked'; /** w_r */ rewardWeight: number; /** teacher term only where R < this */ rewardThreshold: number };

export type BlendMode = BlendSpec['mode'];

export interface Blended {
  /** A_{i,t} per rollout, per token; 0 off-mask. */
  advantages_BT: number[][];
  /** c for the train step's k2 distillation loss (`loss` mode); 0 means no such term. */
  distillCoef: number;
}

type SpecOf<M extends BlendMode> = Extract<BlendSpec, { mode: M }>;

/** A row that is f(t) on completion tokens and 0 elsewhere. */
function onCompletion(mask_T: ArrayLike<number>, f: (t: number) => number): number[] {
  return Array.from(mask_T, (m, t) => (m === 1 ? f(t) : 0));
}

function teacherOnly(rollouts: readonly BlendTerms[]): number[][] {
  return rollouts.map((r) => onCompletion(r.mask_T, (t) => r.teacherAdvantages_T[t]));
}

function groupOnly(rollouts: readonly BlendTerms[], weight: number): number[][] {
  return rollouts.map((r) => onCompletion(r.mask_T, () => weight * r.advantageGrp));
}

/** w_r·A^grp + A^T on the rollouts `useTeacher` selects, w_r·A^grp on the rest. */
function mixed(rollouts: readonly BlendTerms[], weight: number, useTeacher: (r: BlendTerms) => boolean): number[][] {
  return rollouts.map((r) => {
    const teacher = useTeacher(r) ? 1 : 0;
    return onCompletion(r.mask_T, (t) => weight * r.advantageGrp + teacher * r.teacherAdvantages_T[t]);
  });
}

/** The blend modes, one entry each; a new mode is a new BlendSpec variant plus one entry here. */
export const BLEND_MODES: { readonly [M in BlendMode]: (rollouts: readonly BlendTerms[], spec: SpecOf<M>) => Blended } = {
  additive: (rollouts, { rewardWeight }) => ({ advantages_BT: mixed(rollouts, rewardWeight, () => true), distillCoef: 0 }),
  replace: (rollouts) => ({ advantages_BT: teacherOnly(rollouts), distillCoef: 0 }),
  grpo: (rollouts) => ({ advantages_BT: groupOnly(rollouts, 1), distillCoef: 0 }),
  loss: (rollouts, { distillCoef }) => ({ advantages_BT: groupOnly(rollouts, 1), distillCoef }),
  masked: (rollouts, { rewardWeight, rewardThreshold }) => ({
    advantages_BT: mixed(rollouts, rewardWeight, (r) => r.reward < rewardThreshold),
    distillCoef: 0,
  }),
};

function checkSpec(spec: BlendSpec): void {
  if (!Object.hasOwn(BLEND_MODES, spec.mode)) {
    throw new RangeError(`unknown blend mode '${spec.mode}'; known: ${Object.keys(BLEND_MODES).join(', ')}`);
  }
  if ('rewardWeight' in spec) checkScalar('blend.rewardWeight', spec.rewardWeight);
  if ('rewardThreshold' in spec) checkScalar('blend.rewardThreshold', spec.rewardThreshold);
  if ('distillCoef' in spec) checkScalar('blend.distillCoef', spec.distillCoef, 0);
}

function checkRollout(r: BlendTerms, i: number): void {
  checkMask(`rollouts[${i}].mask_T`, r.mask_T);
  checkSameLength(`rollouts[${i}].teacherAdvantages_T`, r.teacherAdvantages_T, `rollouts[${i}].mask_T`, r.mask_T);
  checkScalar(`rollouts[${i}].reward`, r.reward);
  checkScalar(`rollouts[${i}].advantageGrp`, r.advantageGrp);
  assertFinite(`rollouts[${i}].teacherAdvantages_T`, r.teacherAdvantages_T, r.mask_T);
}

/** The per-token advantages (and the train step's distillation coefficient) for one batch. */
export function blend(spec: BlendSpec, rollouts: readonly BlendTerms[]): Blended {
  checkSpec(spec);
  rollouts.forEach(checkRollout);
  const mode = BLEND_MODES[spec.mode] as (rollouts: readonly BlendTerms[], spec: BlendSpec) => Blended;
  return mode(rollouts, spec);
}
