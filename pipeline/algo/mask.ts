// Completion masks m_T (docs/algorithms.md notation: m_{i,t} = 1 on completion tokens, 0 on prompt and padding).
//
// A row's arrays (log-probs, gaps, advantages) are aligned position by position with its mask and have
// the same length T. Masks hold exactly 0 or 1: a fractional mask would silently rescale a token's
// weight, so it is refused. A row whose mask is all 0 is an *empty completion* (R8): it gets zero
// advantage everywhere and is counted by metrics, never dropped.

export function checkMask(name: string, mask_T: ArrayLike<number>): void {
  for (let t = 0; t < mask_T.length; t++) {
    const m = mask_T[t];
    if (m !== 0 && m !== 1) throw new RangeError(`${name}[${t}] = ${m}: a mask holds only 0 or 1`);
  }
}

export function checkSameLength(name: string, values: ArrayLike<number>, maskName: string, mask_T: ArrayLike<number>): void {
  if (values.length !== mask_T.length) {
    throw new RangeError(`${name} has length ${values.length} but ${maskName} has length ${mask_T.length}; rows must be aligned`);
  }
}

/** Number of completion tokens in one row: Σ_t m_t. */
export function completionLength(mask_T: ArrayLike<number>): number {
  let n = 0;
  for (let t = 0; t < mask_T.length; t++) n += mask_T[t];
  return n;
}
