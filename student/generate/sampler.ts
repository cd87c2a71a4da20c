// Host-side token sampling from one row of logits [V] (a Float32Array, e.g. a row of the decode
// graph's logits [B, V]): temperature, top-k, top-p (nucleus), greedy at τ = 0.
//
// Order, as in Hugging Face's logits warpers: temper (logits/τ), keep the top k, then keep the
// smallest prefix (by descending probability, ties to the lower id) whose renormalised mass is
// ≥ p -- never fewer than one token -- and sample from what is left, renormalised, by inverse CDF
// of the one uniform draw over the kept tokens in descending order (in id order when no filter is
// on, which needs no sort).
//
// Log-prob contract (docs/algorithms.md §6): the recorded log-prob of the chosen token is
//     log softmax(logits / τ)[token]   over the FULL vocabulary, computed in float64,
// i.e. the quantity the trainer and the score graph compute with inv_temperature = 1/τ. It is NOT
// the log-prob under the truncated, renormalised top-k/top-p distribution the token was drawn from:
// π_old must be the same function of the weights as π_θ for the importance ratio to mean anything.
// At τ = 0 (greedy) the recorded value is log softmax(logits)[token] (τ = 1 scoring).
//
// Randomness: exactly ONE `rng.uniform()` per sampled token, at every τ (the greedy draw is
// discarded), so the stream position depends only on how many tokens were sampled: reproducible
// from a seed and resumable from `rng.state()`.

import type { Rng } from '../../engine/rng.ts';

export interface SamplingParams {
  /** τ ≥ 0; 0 means greedy (argmax, ties to the lowest id). */
  temperature: number;
  /** Keep only the k most likely tokens (integer ≥ 1); undefined or 0 = off. */
  topK?: number;
  /** Nucleus mass in (0, 1]; undefined or 1 = off. */
  topP?: number;
}

export interface SampledToken {
  token: number;
  /** log softmax(logits/τ)[token] over the full vocabulary (τ = 1 when greedy), nats. */
  logprob: number;
}

/** Checks the parameters once per generate() call, with messages naming the field. */
export function checkSamplingParams(s: SamplingParams): void {
  if (!(Number.isFinite(s.temperature) && s.temperature >= 0)) throw new RangeError(`sampler: temperature must be a finite number >= 0, got ${s.temperature}`);
  if (s.topK !== undefined && !(Number.isInteger(s.topK) && s.topK >= 0)) throw new RangeError(`sampler: topK must be an integer >= 0 (0 = off), got ${s.topK}`);
  if (s.topP !== undefined && !(s.topP > 0 && s.topP <= 1)) throw new RangeError(`sampler: topP must be in (0, 1], got ${s.topP}`);
}

/** Draw one token from `logits` [V] and return it with its recorded log-prob (see the header). */
export function sampleToken(logits: Float32Array, s: SamplingParams, rng: Rng): SampledToken {
  const u = rng.uniform(); // always drawn: one draw per sampled token
  if (s.temperature === 0) {
    const token = argmax(logits);
    return { token, logprob: logSoftmaxAt(logits, 1, token) };
  }
  const t = tempered(logits, s.temperature);
  const kept = keptTokens(t.w, t.sum, s.topK, s.topP); // descending probability; null = every id
  const token = pick(kept, t.w, u);
  return { token, logprob: (logits[token]! - t.max) / s.temperature - t.logSum }; // log softmax(logits/τ)[token]
}

/** log softmax(logits / τ)[token] over the whole row, in float64. */
export function logSoftmaxAt(logits: Float32Array, tau: number, token: number): number {
  const m = rowMax(logits);
  let sum = 0;
  for (let v = 0; v < logits.length; v++) sum += Math.exp((logits[v]! - m) / tau);
  return (logits[token]! - m) / tau - Math.log(sum);
}

/** Index of the largest value; the first one on ties. */
export function argmax(x: Float32Array): number {
  rowMax(x); // validates the row
  let best = 0;
  for (let v = 1; v < x.length; v++) if (x[v]! > x[best]!) best = v;
  return best;
}

function rowMax(x: Float32Array): number {
  let m = -Infinity;
  for (let v = 0; v < x.length; v++) {
    const z = x[v]!;
    if (Number.isNaN(z)) throw new RangeError(`sampler: logit ${v} is NaN`);
    if (z > m) m = z;
  }
  if (m === -Infinity || m === Infinity) throw new RangeError(`sampler: logits row has no finite maximum (${m})`);
  return m;
}

/** w = exp((z − max)/τ) in float64 (the tempered distribution up to its normaliser), Σ w and log Σ w. */
function tempered(logits: Float32Array, tau: number): { w: Float64Array; max: number; sum: number; logSum: number } {
  const m = rowMax(logits);
  const w = new Float64Array(logits.length);
  let sum = 0;
  for (let v = 0; v < logits.length; v++) sum += w[v] = Math.exp((logits[v]! - m) / tau);
  return { w, max: m, sum, logSum: Math.log(sum) };
}

/**
 * The tokens left after top-k then top-p, by descending weight (ties: lower id first); null when
 * neither is on (every id, in id order: plain sampling needs no sort). `sum` = Σ w over all ids.
 */
export function keptTokens(w: Float64Array, sum: number, topK = 0, topP = 1): Int32Array | null {
  if (topK > 0) {
    const top = largest(w, Math.min(topK, w.length));
    return topP < 1 ? top.subarray(0, nucleusLength(top, w, topP)) : top;
  }
  if (topP >= 1) return null;
  // Top-p alone: grow a candidate prefix until it holds p of the mass, so a peaked distribution
  // over a 150k vocabulary never sorts the whole row.
  for (let m = Math.min(w.length, 256); ; m = Math.min(w.length, m * 4)) {
    const top = largest(w, m);
    const n = nucleusLength(top, w, topP, sum);
    if (n < m || m === w.length) return top.subarray(0, n);
  }
}

/** Smallest n ≥ 1 whose first n tokens of `top` hold mass ≥ p·total (total defaults to Σ over top); top.length if none. */
function nucleusLength(top: Int32Array, w: Float64Array, p: number, total?: number): number {
  let all = total ?? 0;
  if (total === undefined) for (const v of top) all += w[v]!;
  let mass = 0;
  for (let n = 0; n < top.length; ) {
    mass += w[top[n++]!]!;
    if (mass >= p * all) return n;
  }
  return top.length;
}

/** Inverse CDF over the kept tokens (all ids when null), renormalised: the first whose cumulative mass exceeds u·total. */
function pick(kept: Int32Array | null, w: Float64Array, u: number): number {
  const n = kept ? kept.length : w.length;
  const id = kept ? (i: number) => kept[i]! : (i: number) => i;
  let total = 0;
  for (let i = 0; i < n; i++) total += w[id(i)]!;
  const target = u * total;
  let acc = 0;
  let last = id(0);
  for (let i = 0; i < n; i++) {
    const v = id(i);
    acc += w[v]!;
    if (acc > target) return v;
    if (w[v]! > 0) last = v;
  }
  return last; // rounding left the target at the very top: the last token with weight
}

/**
 * Ids of the k largest weights, sorted by (weight desc, id asc). For small k a selection finds the
 * k-th largest value first, so only about k ids get sorted (a 150k vocabulary is not sorted per token).
 */
export function largest(w: Float64Array, k: number): Int32Array {
  const byWeight = (a: number, b: number) => w[b]! - w[a]! || a - b;
  if (k * 4 >= w.length) return Int32Array.from(w.keys()).sort(byWeight).subarray(0, k);
  const cut = kthLargest(Float64Array.from(w), k);
  const ids: number[] = [];
  for (let v = 0; v < w.length; v++) if (w[v]! > cut) ids.push(v);
  for (let v = 0; v < w.length && ids.length < k; v++) if (w[v] === cut) ids.push(v); // ties: lowest ids
  return Int32Array.from(ids).sort(byWeight);
}

/** The k-th largest value of `a` (1-based), by quickselect; `a` is reordered. */
function kthLargest(a: Float64Array, k: number): number {
  let [lo, hi] = [0, a.length - 1];
  const target = k - 1; // index in descending order
  while (lo < hi) {
    const pivot = a[(lo + hi) >>> 1]!;
    let [i, j] = [lo, hi];
    while (i <= j) {
      while (a[i]! > pivot) i++;
      while (a[j]! < pivot) j--;
      if (i <= j) {
        [a[i], a[j]] = [a[j]!, a[i]!];
        i++;
        j--;
      }
    }
    if (target <= j) hi = j;
    else if (target >= i) lo = i;
    else return a[target]!;
  }
  return a[target]!;
}
