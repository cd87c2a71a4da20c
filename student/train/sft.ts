// Supervised fine-tuning loss: masked next-token cross-entropy on completion tokens only (TRL's
// prompt/completion format with completion_only_loss), token-mean over the WHOLE batch.
//
//   L = Σ_{b,t} −log π_θ(y_{b,t} | y_{b,<t}) · w_{b,t},   w = m / Σ m   (aggregate.ts, token_mean)
//
// The log-probs are position-aligned (position t holds token t's log-prob), as everywhere in opd.
// Off-mask positions are replaced by 0 before weighting, so prompt and padding never enter the loss.

import { type DType, type Graph, type Tensor, div, greater, mul, neg, sumAll, where } from '../../engine/index.ts';
import type { MetricSpec } from '../../engine/train/graph.ts';

export interface SftInputs {
  mask: Tensor; // loss_mask [B, T]: 1 on completion tokens
  weights: Tensor; // loss_weights [B, T]: token-mean weights over the whole batch
  batchTokens: Tensor; // batch_tokens []: completion tokens in the whole batch (≥ 1)
}

export function sftInputs(g: Graph, dtype: DType): SftInputs {
  return {
    mask: g.input('loss_mask', ['B', 'T'], dtype),
    weights: g.input('loss_weights', ['B', 'T'], dtype),
    batchTokens: g.input('batch_tokens', [], dtype),
  };
}

/** Cross-entropy from aligned log-probs `logp` [B, T]; reports the mean NLL (= loss with token_mean weights). */
export function sftLoss(logp: Tensor, x: SftInputs): { loss: Tensor; metrics: Record<string, MetricSpec> } {
  const on = greater(x.mask, 0); // [B, T] bool
  const nll = where(on, neg(logp), 0); // [B, T]
  return {
    loss: sumAll(mul(nll, where(on, x.weights, 0))),
    metrics: { nll_mean: { value: div(sumAll(nll), x.batchTokens), combine: 'sum' } },
  };
}
