// KL estimators and where each is right (docs/algorithms.md §5), after Schulman's "Approximating KL
// divergence" note and Tang & Munos, "On a few pitfalls in KL divergence gradient estimation for RL"
// (arXiv 2506.09477).
//
// With tokens y ~ π_θ (the student) and d = log π_θ(y) − log π_T(y):
//   k1(d) = d                   unbiased estimate of KL(π_θ‖π_T); high variance, can be negative
//   k2(d) = ½ d²                biased value, low variance
//   k3(d) = e^{−d} + d − 1      unbiased value, ≥ 0
// What matters for training is the *gradient* each gives in each role:
//   k1 as a reward (through the policy gradient, blend modes)  → ∇ KL(π_θ‖π_T), the reverse KL. Right.
//   k2 as a loss (differentiated through log π_θ)              → E[d ∇log π_θ] = ∇ KL(π_θ‖π_T). Right.
//   k3 as a loss                                                → E[(1 − e^{−d}) ∇log π_θ] = ∇ KL(π_T‖π_θ),
//                                                                 the forward KL: allowed, labelled so.
//   k1 as a loss                                                → E[∇log π_θ] = 0: refused.
//   k2, k3 as rewards                                           → not the reverse-KL gradient: warned.
// Left out: estimators over the full vocabulary (top-k) and the ref-KL of §4, which the train step owns.

export type KlEstimator = 'k1' | 'k2' | 'k3';
export type EstimatorUse = 'reward' | 'loss';

export const KL_ESTIMATORS: Readonly<Record<KlEstimator, (d: number) => number>> = {
  k1: (d) => d,
  k2: (d) => 0.5 * d * d,
  k3: (d) => Math.expm1(-d) + d, // e^{−d} − 1 + d without cancellation near d = 0
};

export interface EstimatorVerdict {
  estimator: KlEstimator;
  use: EstimatorUse;
  /** What the gradient of this combination is, for logs and the run report. */
  label: string;
  /** Set when the combination is allowed but not the reverse-KL gradient opd is built around. */
  warning?: string;
}

export class EstimatorUseError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'EstimatorUseError';
  }
}

type Entry = { label: string; warning?: string } | { refuse: string };

/** Every (estimator, use) pair and its verdict; checkEstimatorUse only looks it up. */
export const ESTIMATOR_USES: Readonly<Record<KlEstimator, Readonly<Record<EstimatorUse, Entry>>>> = {
  k1: {
    reward: { label: 'reverse KL (k1 as a per-token reward through the policy gradient)' },
    loss: {
      refuse:
        'k1 as a loss has zero expected gradient: with tokens sampled from the student, ' +
        'E[∇(log π_θ − log π_T)] = E[∇log π_θ] = 0, so the teacher would teach nothing. ' +
        'Use k1 as a reward instead (blend.mode additive, replace or masked), or k2 as a loss (blend.mode loss).',
    },
  },
  k2: {
    reward: {
      label: 'k2 as a reward (biased)',
      warning: 'k2 = ½d² as a reward penalises |d| in both directions; its policy gradient is not the reverse-KL gradient. Use k1 as the reward.',
    },
    loss: { label: 'reverse KL (k2 as a loss: its gradient equals the k1-as-reward gradient)' },
  },
  k3: {
    reward: {
      label: 'k3 as a reward (biased)',
      warning: 'k3 as a reward estimates the KL value without bias, but its policy gradient is biased. Use k1 as the reward.',
    },
    loss: {
      label: 'forward-KL-like (k3 as a loss)',
      warning: 'k3 as a loss follows the gradient of the forward KL(π_T‖π_θ) (mode-covering), not the reverse KL of on-policy distillation.',
    },
  },
};

/** The verdict for using `estimator` as a reward or a loss; throws EstimatorUseError when refused. */
export function checkEstimatorUse(estimator: KlEstimator, use: EstimatorUse): EstimatorVerdict {
  const uses = Object.hasOwn(ESTIMATOR_USES, estimator) ? ESTIMATOR_USES[estimator] : undefined;
  if (!uses || !Object.hasOwn(uses, use)) {
    throw new RangeError(`unknown estimator/use '${estimator}'/'${use}'; estimators: k1, k2, k3; uses: reward, loss`);
  }
  const entry = uses[use];
  if ('refuse' in entry) throw new EstimatorUseError(entry.refuse);
  return { estimator, use, ...entry };
}
