// Small statistics shared by advantages.ts and metrics.ts. Standard deviations are *population*
// standard deviations (divide by n, numpy's default ddof = 0); see advantages.ts for why.

export function mean(xs: ArrayLike<number>): number {
  if (xs.length === 0) throw new RangeError('mean of an empty list');
  let s = 0;
  for (let i = 0; i < xs.length; i++) s += xs[i];
  return s / xs.length;
}

/** sqrt(Σ (x − μ)² / n), with μ = mean(xs) unless given. */
export function populationStd(xs: ArrayLike<number>, mu = mean(xs)): number {
  let s = 0;
  for (let i = 0; i < xs.length; i++) s += (xs[i] - mu) ** 2;
  return Math.sqrt(s / xs.length);
}

/** True when every entry equals the first (exact comparison; NaN never equals). */
export function allEqual(xs: ArrayLike<number>): boolean {
  for (let i = 1; i < xs.length; i++) if (xs[i] !== xs[0]) return false;
  return true;
}
