// Non-finite input detection for the algorithm layer (docs/algorithms.md §6; docs/reliability.md R7).
//
// Contract: no function in pipeline/algo turns NaN or ±Inf into a number. The step loop calls
// `findNonFinite`/`findNonFiniteRows` on teacher log-probs and rewards *before* the algorithm runs and
// skips the step when one reports (counter + warning, stop after K in a row: that policy lives in the
// loop, not here). The algo functions call `assertFinite*` on their own inputs as a backstop, so a
// caller that forgot the check gets a NonFiniteError naming the array and index, never a silently
// "repaired" advantage. Positions whose mask is 0 (prompt, padding) are not data and are not inspected:
// a backend may leave garbage there.

/** Where the first non-finite value sits. `row` is set for 2-D inputs ([B][T] or [groups][G]). */
export interface NonFinite {
  name: string;
  row?: number;
  index: number;
  value: number;
  message: string;
}

export class NonFiniteError extends Error {
  constructor(readonly report: NonFinite) {
    super(report.message);
    this.name = 'NonFiniteError';
  }
}

function report(name: string, row: number | undefined, index: number, value: number): NonFinite {
  const at = row === undefined ? `[${index}]` : `[${row}][${index}]`;
  return { name, row, index, value, message: `${name}${at} = ${value} is not finite` };
}

/** First index i with mask_T[i] ≠ 0 (all i when no mask) whose value is NaN or ±Inf; undefined if none. */
export function findNonFinite(name: string, values: ArrayLike<number>, mask_T?: ArrayLike<number>): NonFinite | undefined {
  for (let i = 0; i < values.length; i++) {
    if (mask_T && mask_T[i] === 0) continue;
    if (!Number.isFinite(values[i])) return report(name, undefined, i, values[i]);
  }
  return undefined;
}

/** The same over rows (row-major order), each row optionally masked by the matching mask row. */
export function findNonFiniteRows(
  name: string,
  rows: readonly ArrayLike<number>[],
  masks?: readonly ArrayLike<number>[],
): NonFinite | undefined {
  for (let r = 0; r < rows.length; r++) {
    const bad = findNonFinite(name, rows[r], masks?.[r]);
    if (bad) return report(name, r, bad.index, bad.value);
  }
  return undefined;
}

export function assertFinite(name: string, values: ArrayLike<number>, mask_T?: ArrayLike<number>): void {
  const bad = findNonFinite(name, values, mask_T);
  if (bad) throw new NonFiniteError(bad);
}

export function assertFiniteRows(name: string, rows: readonly ArrayLike<number>[], masks?: readonly ArrayLike<number>[]): void {
  const bad = findNonFiniteRows(name, rows, masks);
  if (bad) throw new NonFiniteError(bad);
}

/** One scalar parameter (λ, γ, ε, a weight...): finite, and within [min, max] when given. */
export function checkScalar(name: string, value: number, min = -Infinity, max = Infinity): void {
  if (!Number.isFinite(value)) throw new NonFiniteError(report(name, undefined, 0, value));
  if (value < min || value > max) throw new RangeError(`${name} = ${value} is outside [${min}, ${max}]`);
}
