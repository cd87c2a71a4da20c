// Group-relative advantage A^grp (docs/algorithms.md §1), GRPO family: DeepSeekMath GRPO (2024), Dr. GRPO (2025,
// mean-centred only: our default), TRL `scale_rewards` = group | batch | none, verl `grpo` estimator.
//
//   mean       A_i = R_i − mean_j R_j                        (default; Dr. GRPO, Tinker cookbook)
//   std_group  A_i = (R_i − mean_j R_j) / (std_j R_j + ε)    (original GRPO; TRL "group"; verl grpo)
//   std_batch  A_i = (R_i − mean_j R_j) / (std_batch R + ε)  (group mean, batch std; TRL "batch")
//   baseline   A_i = R_i − b, b a given constant             (mean-free: group size 1 allowed)
//   zero       A_i = 0                                       (mean-free: rewards only logged, pure OPD)
//
// Deliberate choices:
// - std is the POPULATION std (divide by G; numpy ddof = 0). TRL and verl use torch.std, which is the
//   unbiased one (divide by G − 1), so their std-scaled advantages are ours × sqrt((G − 1)/G) before ε
//   (e.g. G = 2: 0.707×). We pick the population std because it is the std of the rewards actually in
//   the group, is defined for every G ≥ 1 and does not change meaning with G. For `std_batch` the std
//   runs over every reward in the batch (all groups), again population.
// - A group whose rewards are all exactly equal gets A = 0 exactly (checked by equality, not by
//   computing R − mean, which can leave ~1e-17 that ε would blow up to ~1e-11).
// - Mean-centred modes with a group of one are an error: R − R = 0 always, so the rollout would carry
//   no signal while looking trained. (verl silently uses mean 0 / std 1 there, i.e. A = R; pick
//   `baseline` with b = 0 to get exactly that on purpose.)
// - Non-finite rewards throw NonFiniteError (R7); TRL's `nansum` over reward functions would turn a
//   NaN into 0 instead.
// Left out: leave-one-out baselines (RLOO) and token-level rewards; they would be new registry entries.

import { assertFiniteRows, checkScalar } from './finite.ts';
import { allEqual, mean, populationStd } from './stats.ts';

export type GroupMode = 'mean' | 'std_group' | 'std_batch' | 'baseline' | 'zero';

export interface GroupOptions {
  /** ε added to the std in `std_group`/`std_batch` (default 1e-6, as verl; TRL uses 1e-4). */
  eps: number;
  /** b in `baseline` mode (default 0: plain REINFORCE, A = R). */
  baseline: number;
}

interface GroupModeEntry {
  /** True when the mode subtracts the group mean, which needs ≥ 2 rollouts per group. */
  centred: boolean;
  advantages(rewards_G: readonly ArrayLike<number>[], opts: GroupOptions): number[][];
}

/** R_i − mean, divided by `scale`; exactly 0 for an all-equal group. */
function centre(group: ArrayLike<number>, scale: number): number[] {
  if (allEqual(group)) return Array.from(group, () => 0);
  const mu = mean(group);
  return Array.from(group, (r) => (r - mu) / scale);
}

function flatten(rows: readonly ArrayLike<number>[]): number[] {
  return rows.flatMap((row) => Array.from(row));
}

/** The group advantage modes, one entry each; a new mode is a new entry. */
export const GROUP_MODES: Readonly<Record<GroupMode, GroupModeEntry>> = {
  mean: { centred: true, advantages: (rewards_G) => rewards_G.map((g) => centre(g, 1)) },
  std_group: {
    centred: true,
    advantages: (rewards_G, { eps }) => rewards_G.map((g) => centre(g, populationStd(g) + eps)),
  },
  std_batch: {
    centred: true,
    advantages: (rewards_G, { eps }) => {
      const scale = populationStd(flatten(rewards_G)) + eps;
      return rewards_G.map((g) => centre(g, scale));
    },
  },
  baseline: { centred: false, advantages: (rewards_G, { baseline }) => rewards_G.map((g) => Array.from(g, (r) => r - baseline)) },
  zero: { centred: false, advantages: (rewards_G) => rewards_G.map((g) => Array.from(g, () => 0)) },
};

/**
 * A^grp for every rollout, shaped like the input: rewards_G[k][i] is R of rollout i of prompt group k.
 * Throws on an empty group, on a group of one in a mean-centred mode, and on non-finite rewards.
 */
export function groupAdvantages(
  rewards_G: readonly ArrayLike<number>[],
  mode: GroupMode,
  eps = 1e-6,
  baseline = 0,
): number[][] {
  if (!Object.hasOwn(GROUP_MODES, mode)) throw new RangeError(`unknown group advantage mode '${mode}'; known: ${Object.keys(GROUP_MODES).join(', ')}`);
  const entry = GROUP_MODES[mode];
  checkScalar('eps', eps, 0);
  checkScalar('baseline', baseline);
  assertFiniteRows('rewards_G', rewards_G);
  rewards_G.forEach((g, k) => {
    if (g.length === 0) throw new RangeError(`rewards_G[${k}] is an empty group; every prompt needs ≥ 1 rollout`);
    if (entry.centred && g.length === 1) {
      throw new RangeError(
        `rewards_G[${k}] has 1 rollout: mode '${mode}' subtracts the group mean, so a group of one always ` +
          `gets A = 0 and no signal. Sample G ≥ 2 per prompt, or use a mean-free mode ('baseline': A = R − b, or 'zero').`,
      );
    }
  });
  return entry.advantages(rewards_G, { eps, baseline });
}

/**
 * Several reward functions as one reward, before any normalising: R_i = Σ_f w_f · R_{f,i}.
 * perFunction_FB[f][i] is function f's reward for rollout i; weights_F[f] is w_f.
 */
export function combineRewards(perFunction_FB: readonly ArrayLike<number>[], weights_F: ArrayLike<number>): number[] {
  if (perFunction_FB.length === 0) throw new RangeError('combineRewards needs at least one reward function');
  if (weights_F.length !== perFunction_FB.length) {
    throw new RangeError(`${perFunction_FB.length} reward functions but ${weights_F.length} weights`);
  }
  for (let f = 0; f < weights_F.length; f++) checkScalar(`weights_F[${f}]`, weights_F[f]);
  const B = perFunction_FB[0].length;
  perFunction_FB.forEach((row, f) => {
    if (row.length !== B) throw new RangeError(`reward function ${f} scored ${row.length} rollouts, function 0 scored ${B}`);
  });
  assertFiniteRows('perFunction_FB', perFunction_FB);
  const rewards_B = new Array<number>(B).fill(0);
  perFunction_FB.forEach((row, f) => {
    for (let i = 0; i < B; i++) rewards_B[i] += weights_F[f] * row[i];
  });
  return rewards_B;
}
