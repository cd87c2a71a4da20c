// Per-token log-probabilities from hidden states without materialising [B, T, V] at once.
//
//   log p(y) = z_y − logsumexp_v z_v,   z = (h · Wᵀ) / τ
//
// z_y is a dot product with the gathered row W[y]; the logsumexp runs over vocabulary chunks of
// `chunk` rows with the usual running-max combination, so a 150k vocabulary costs
// [B, T, chunk] floats per step instead of [B, T, V]. Optional top-k (ids and log-probs) is taken
// per chunk and merged. Everything is differentiable: training graphs use the same function.

import {
  type Tensor,
  add,
  concat,
  exp,
  gather,
  log,
  linear,
  maximum,
  mul,
  reduceMax,
  reduceSum,
  slice,
  squeeze,
  sub,
  topK,
  gatherElements,
} from '../../engine/index.ts';

export interface LogprobOptions {
  /** Vocabulary rows per chunk (default 16384). */
  chunk?: number;
  /** Return the k most likely tokens per position too. */
  topK?: number;
  /** 1/τ as a rank-0 tensor; the logits are divided by the sampling temperature τ. */
  invTemp?: Tensor;
  /** Only rows [0, vocabLimit) of W take part (padded vocabularies, after preflight). */
  vocabLimit?: number;
}

export interface Logprobs {
  logprobs: Tensor; // [B, T]
  lse: Tensor; // [B, T]: logsumexp_v z_v, the log-partition each log-prob subtracts
  topIds?: Tensor; // [B, T, k] int64
  topLogprobs?: Tensor; // [B, T, k]
}

/** h [B, T, D], w [V, D], targets [B, T] int64. */
export function tokenLogprobsChunked(h: Tensor, wAll: Tensor, targets: Tensor, opts: LogprobOptions = {}): Logprobs {
  const rows = wAll.shape[0] as number;
  const w = opts.vocabLimit && opts.vocabLimit < rows ? slice(wAll, [0], [opts.vocabLimit], [0]) : wAll; // [V, D]
  const v = w.shape[0] as number;
  const chunk = Math.min(opts.chunk ?? 16384, v);
  const scale = (z: Tensor) => (opts.invTemp ? mul(z, opts.invTemp) : z);
  const zy = scale(reduceSum(mul(h, gather(w, targets)), -1, false)); // [B, T]

  let runMax: Tensor | null = null; // [B, T, 1]
  let runSum: Tensor | null = null; // [B, T, 1]  Σ exp(z − runMax)
  const tops: Array<{ vals: Tensor; ids: Tensor }> = [];
  for (let start = 0; start < v; start += chunk) {
    const end = Math.min(v, start + chunk);
    const wc = start === 0 && end === v ? w : slice(w, [start], [end], [0]); // [Vc, D]
    const z = scale(linear(h, wc)); // [B, T, Vc]
    const m = reduceMax(z, -1, true); // [B, T, 1]
    const s = reduceSum(exp(sub(z, m)), -1, true);
    if (!runMax || !runSum) {
      [runMax, runSum] = [m, s];
    } else {
      const nm = maximum(runMax, m);
      runSum = add(mul(runSum, exp(sub(runMax, nm))), mul(s, exp(sub(m, nm))));
      runMax = nm;
    }
    if (opts.topK) {
      const [vals, ids] = topK(z, Math.min(opts.topK, end - start), -1);
      tops.push({ vals, ids: start ? add(ids, int64Scalar(ids, start)) : ids });
    }
  }
  const lse = add(runMax!, log(runSum!)); // [B, T, 1]
  const out: Logprobs = { logprobs: sub(zy, squeeze(lse, -1)), lse: squeeze(lse, -1) };
  if (opts.topK) {
    const vals = concat(tops.map((t) => t.vals), -1);
    const ids = concat(tops.map((t) => t.ids), -1);
    const [best, where] = tops.length === 1 ? [vals, null] : topK(vals, opts.topK, -1);
    out.topIds = where ? gatherElements(ids, where, -1) : ids;
    out.topLogprobs = sub(best, lse);
  }
  return out;
}

function int64Scalar(t: Tensor, value: number): Tensor {
  return t.graph.constant(BigInt64Array.of(BigInt(value)), [], 'int64');
}
