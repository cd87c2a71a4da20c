// Per-step metrics of docs/algorithms.md §7 that can be computed from host arrays (the train step reports clip
// fraction, ρ min/max, entropy and grad norm from its graph; the loop times its stages). Names follow
// metrics.jsonl keys. Token-level means are token-weighted over the whole batch (Σ x·m / Σ m), the
// same weighting as the default `token_mean` loss aggregation (DAPO).
//
// Empty completions (mask all 0) are counted, and their rows contribute no tokens (R8); their rollouts
// still count in the reward statistics and as length 0 in completion_len_mean. A token mean over a batch
// with no completion tokens at all is reported as 0 (then empty_completions = B), never NaN.

import { assertFiniteRows } from './finite.ts';
import { checkMask, checkSameLength, completionLength } from './mask.ts';
import { allEqual, mean, populationStd } from './stats.ts';

export interface StepMetricsInput {
  /** R per prompt group, per rollout; rollouts in this order are the rows b = 0..B−1 below. */
  rewards_G: readonly ArrayLike<number>[];
  /** Whether each rollout solved the task (for accuracy); omit when the task has no notion of it. */
  correct_B?: readonly boolean[];
  /** d = log π_old − log π_T per rollout, per token (teacherGap). */
  teacherGap_BT: readonly ArrayLike<number>[];
  /** Blended A per rollout, per token (blend). */
  advantages_BT: readonly ArrayLike<number>[];
  /** m per rollout, per token. */
  mask_BT: readonly ArrayLike<number>[];
}

export interface StepMetrics {
  reward_mean: number;
  /** Population std over all rollouts of the step. */
  reward_std: number;
  /** Fraction of rollouts marked correct; present only when correct_B was given. */
  accuracy?: number;
  /** Mean d over completion tokens: the k1 estimate of the per-token reverse KL(π_old‖π_T). */
  teacher_kl: number;
  advantage_mean: number;
  /** Population std of A over completion tokens. */
  advantage_std: number;
  /** Fraction of prompt groups whose rewards are all equal (no group signal; includes groups of one). */
  zero_variance_frac: number;
  /** Mean completion tokens per rollout (Σ m / B), empty completions included as 0. */
  completion_len_mean: number;
  /** Rollouts with no completion token. */
  empty_completions: number;
}

/** Token-weighted mean and population std of rows over their masks; {0, 0} when no token is masked in. */
function maskedMeanStd(rows_BT: readonly ArrayLike<number>[], mask_BT: readonly ArrayLike<number>[]): { mean: number; std: number } {
  let n = 0, sum = 0;
  rows_BT.forEach((row, b) => {
    for (let t = 0; t < row.length; t++) if (mask_BT[b][t] === 1) { n++; sum += row[t]; }
  });
  if (n === 0) return { mean: 0, std: 0 };
  const mu = sum / n;
  let sq = 0;
  rows_BT.forEach((row, b) => {
    for (let t = 0; t < row.length; t++) if (mask_BT[b][t] === 1) sq += (row[t] - mu) ** 2;
  });
  return { mean: mu, std: Math.sqrt(sq / n) };
}

function checkInput(input: StepMetricsInput, B: number): void {
  input.rewards_G.forEach((g, k) => {
    if (g.length === 0) throw new RangeError(`rewards_G[${k}] is an empty group`);
  });
  const rowsNamed = { teacherGap_BT: input.teacherGap_BT, advantages_BT: input.advantages_BT, mask_BT: input.mask_BT };
  for (const [name, rows] of Object.entries(rowsNamed)) {
    if (rows.length !== B) throw new RangeError(`${name} has ${rows.length} rows but rewards_G holds ${B} rollouts`);
  }
  if (input.correct_B && input.correct_B.length !== B) {
    throw new RangeError(`correct_B has ${input.correct_B.length} entries but rewards_G holds ${B} rollouts`);
  }
  input.mask_BT.forEach((m, b) => {
    checkMask(`mask_BT[${b}]`, m);
    checkSameLength(`teacherGap_BT[${b}]`, input.teacherGap_BT[b], `mask_BT[${b}]`, m);
    checkSameLength(`advantages_BT[${b}]`, input.advantages_BT[b], `mask_BT[${b}]`, m);
  });
  assertFiniteRows('rewards_G', input.rewards_G);
  assertFiniteRows('teacherGap_BT', input.teacherGap_BT, input.mask_BT);
  assertFiniteRows('advantages_BT', input.advantages_BT, input.mask_BT);
}

export function stepMetrics(input: StepMetricsInput): StepMetrics {
  const rewards_B = input.rewards_G.flatMap((g) => Array.from(g));
  const B = rewards_B.length;
  if (B === 0) throw new RangeError('stepMetrics needs at least one rollout');
  checkInput(input, B);
  const lengths_B = input.mask_BT.map(completionLength);
  const kl = maskedMeanStd(input.teacherGap_BT, input.mask_BT);
  const adv = maskedMeanStd(input.advantages_BT, input.mask_BT);
  const metrics: StepMetrics = {
    reward_mean: mean(rewards_B),
    reward_std: populationStd(rewards_B),
    teacher_kl: kl.mean,
    advantage_mean: adv.mean,
    advantage_std: adv.std,
    zero_variance_frac: input.rewards_G.filter((g) => allEqual(g)).length / input.rewards_G.length,
    completion_len_mean: mean(lengths_B),
    empty_completions: lengths_B.filter((n) => n === 0).length,
  };
  if (input.correct_B) metrics.accuracy = input.correct_B.filter(Boolean).length / B;
  return metrics;
}
