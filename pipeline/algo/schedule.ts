// The learning-rate schedule of the policy optimizer: linear warm-up, then constant, linear or
// cosine decay toward 0 (the decays are the λ schedule's, pipeline/algo/teacher.ts, so both
// schedules read the same way).
//
// `step` is 1-based (the step being trained). Warm-up: lr · step / W, so step W reaches the peak
// (W = 0: no warm-up). After warm-up, progress p = (step − 1 − W) / (T − W) runs from 0 at the
// first post-warm-up step toward 1 and the factor is f(p): the last step keeps a small positive lr
// rather than wasting an update at exactly 0 (the Hugging Face scheduler convention).

import { LAMBDA_DECAYS } from './teacher.ts';

export type LrScheduleKind = keyof typeof LAMBDA_DECAYS;

export interface LrSchedule {
  lr: number;
  warmupSteps: number;
  kind: LrScheduleKind;
}

export function lrAt(s: LrSchedule, step: number, totalSteps: number): number {
  if (!Object.hasOwn(LAMBDA_DECAYS, s.kind)) throw new RangeError(`unknown lr schedule '${s.kind}'; known: ${Object.keys(LAMBDA_DECAYS).join(', ')}`);
  if (!Number.isInteger(totalSteps) || totalSteps < 1) throw new RangeError(`totalSteps = ${totalSteps} must be an integer ≥ 1`);
  if (!Number.isInteger(step) || step < 1 || step > totalSteps) throw new RangeError(`step = ${step} must be an integer in [1, ${totalSteps}]`);
  if (step <= s.warmupSteps) return (s.lr * step) / s.warmupSteps;
  const progress = (step - 1 - s.warmupSteps) / Math.max(1, totalSteps - s.warmupSteps);
  return s.lr * LAMBDA_DECAYS[s.kind](progress);
}
