// Preflight before any rollout: teacher and student must agree on what every token id means, or
// token-level scores are meaningless (docs/reliability.md R9). Tokenizers are compared on their shared
// id range; model output sizes (embedding rows, possibly padded, e.g. 151936 vs 152064) may differ
// only beyond the tokenizer's vocabulary, and scoring is then restricted to the shared range.

import { compareTokenizers } from '../data/tokenizer/compare.ts';
import type { Tokenizer } from '../data/tokenizer/types.ts';

export class PreflightError extends Error {
  constructor(
    detail: string,
    readonly diffs: string[] = [],
  ) {
    super(`teacher/student preflight failed: ${detail}${diffs.length ? '\n  ' + diffs.join('\n  ') : ''}`);
    this.name = 'PreflightError';
  }
}

export interface PreflightResult {
  /** Output rows both models share and that the tokenizer can produce: score over [0, sharedVocab). */
  sharedVocab: number;
  /** Human-readable notes (e.g. padded rows that will be ignored). */
  notes: string[];
}

export function preflight(student: { tokenizer: Tokenizer; vocabRows: number }, teacher: { tokenizer: Tokenizer; vocabRows: number }): PreflightResult {
  const cmp = compareTokenizers(student.tokenizer, teacher.tokenizer);
  if (!cmp.same) throw new PreflightError('the tokenizers differ (first differences below); use a teacher and student of one tokenizer family', cmp.diffs);
  const notes: string[] = [];
  for (const [who, m] of [['student', student], ['teacher', teacher]] as const) {
    if (m.vocabRows < m.tokenizer.vocabSize)
      throw new PreflightError(`the ${who}'s model has ${m.vocabRows} output rows but its tokenizer has ${m.tokenizer.vocabSize} tokens; the model cannot score every token`);
  }
  const sharedVocab = Math.min(student.vocabRows, teacher.vocabRows);
  if (student.vocabRows !== teacher.vocabRows)
    notes.push(`output rows differ (student ${student.vocabRows}, teacher ${teacher.vocabRows}); both tokenizers agree on ids < ${cmp.sharedSize}, rows ≥ ${sharedVocab} are padding and are not scored`);
  return { sharedVocab, notes };
}
