// Loss aggregation as per-token weights, computed on the host over the WHOLE batch (docs/algorithms.md §4).
//
// The train graph's loss is Σ_{b,t} ℓ_{b,t} · w_{b,t}. Each aggregation mode is one entry that
// turns the completion mask m [B, T] into w [B, T]; because the weights already hold the whole
// batch's denominators, splitting the batch into micro-batches and summing their losses gives the
// full-batch loss exactly. Rows with no completion tokens get zero weight and never divide by zero.
//
//   token_mean               w = m / Σ m                                   (DAPO; default)
//   seq_mean_token_mean      w = m / (n_b · S), n_b = Σ_t m_b, S = #{b : n_b > 0}   (GRPO)
//   seq_mean_token_sum_norm  w = m / (B · L_max), L_max = max completion length (Dr. GRPO)
//
// Deliberate choice: seq_mean_token_mean averages over rollouts that have tokens (an empty rollout
// has no token mean; counting it as 0 would only rescale the loss). Dr. GRPO's L_max is the
// configured generation limit (TRL's max_completion_length), falling back to the batch's longest.

export type Aggregation = 'token_mean' | 'seq_mean_token_mean' | 'seq_mean_token_sum_norm';

export interface MaskBT {
  data: ArrayLike<number>; // [B·T] row-major, 1 on completion tokens
  b: number;
  t: number;
}

export interface AggregationOptions {
  /** Dr. GRPO's constant normaliser: the generation limit in tokens (default: the batch's longest completion). */
  maxCompletionLen?: number;
}

type WeightRule = (m: MaskBT, counts: number[], o: AggregationOptions) => (b: number) => number;

/** Each mode gives the weight of one completion token of row b (every token of a row weighs the same). */
export const AGGREGATIONS: Readonly<Record<Aggregation, WeightRule>> = {
  token_mean: (_m, counts) => {
    const n = counts.reduce((a, c) => a + c, 0);
    return () => 1 / n;
  },
  seq_mean_token_mean: (_m, counts) => {
    const rows = counts.filter((c) => c > 0).length;
    return (b) => 1 / (counts[b]! * rows);
  },
  seq_mean_token_sum_norm: (m, counts, o) => {
    const longest = Math.max(0, ...counts);
    const lmax = o.maxCompletionLen ?? longest;
    if (longest > lmax) throw new Error(`seq_mean_token_sum_norm: a completion has ${longest} tokens, more than maxCompletionLen ${lmax}`);
    return () => 1 / (m.b * lmax);
  },
};

/** Per-token loss weights w [B·T] for `mode` (zero wherever the mask is zero). */
export function lossWeights(mode: Aggregation, m: MaskBT, o: AggregationOptions = {}): Float64Array {
  const rule = AGGREGATIONS[mode];
  if (!rule) throw new Error(`unknown loss aggregation "${mode}"; known: ${Object.keys(AGGREGATIONS).join(', ')}`);
  const counts = completionCounts(m);
  const w = new Float64Array(m.b * m.t);
  if (counts.every((c) => c === 0)) return w;
  const perToken = rule(m, counts, o);
  for (let b = 0; b < m.b; b++) {
    if (counts[b] === 0) continue;
    const wb = perToken(b);
    for (let t = 0; t < m.t; t++) if (m.data[b * m.t + t]) w[b * m.t + t] = wb;
  }
  return w;
}

/** Completion tokens per row: n_b = Σ_t m[b, t]. */
export function completionCounts(m: MaskBT): number[] {
  return Array.from({ length: m.b }, (_, b) => {
    let n = 0;
    for (let t = 0; t < m.t; t++) n += m.data[b * m.t + t] ? 1 : 0;
    return n;
  });
}
