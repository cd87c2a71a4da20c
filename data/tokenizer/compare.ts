// compareTokenizers: the teacher/student vocabulary preflight (docs/design.md "Models and tokenizers").
//
// Token-level teacher scores only mean something if an id is the same string for both models. Two
// tokenizers are "same" when, over the shared id range [0, min(vocabSize)), every id has the same token
// string and every special token has the same id. Ids past the shared range are ignored: that is a
// padded or extended vocabulary, whose extra ids the smaller side never produces. eos/bos/pad roles and
// chat templates are not compared (a base and an instruct model legitimately differ there).

import type { Tokenizer } from "./types.ts";

export interface CompareOptions {
  /** How many differences to list before summarising the rest in one line. Default 20. */
  maxDiffs?: number;
  /** Labels for a and b in the messages. Default ["student", "teacher"]. */
  names?: [string, string];
}

export interface TokenizerComparison {
  same: boolean;
  /** min(a.vocabSize, b.vocabSize): the ids that were compared. */
  sharedSize: number;
  /** Readable differences, special tokens first, at most maxDiffs plus one "... more" line. */
  diffs: string[];
}

export function compareTokenizers(a: Tokenizer, b: Tokenizer, opts: CompareOptions = {}): TokenizerComparison {
  const sharedSize = Math.min(a.vocabSize, b.vocabSize);
  // Equal fingerprints mean equal maps and specials, so the shared range agrees too.
  if (a.fingerprint() === b.fingerprint()) return { same: true, sharedSize, diffs: [] };
  const found = [...specialDiffs(a, b, sharedSize, opts), ...idDiffs(a, b, sharedSize, opts)];
  return { same: found.length === 0, sharedSize, diffs: truncate(found, opts.maxDiffs ?? 20) };
}

/** Every id below sharedSize whose token string differs (or exists on one side only). */
function idDiffs(a: Tokenizer, b: Tokenizer, sharedSize: number, opts: CompareOptions): string[] {
  const [nameA, nameB] = opts.names ?? ["student", "teacher"];
  const tokensA = tokensById(a, sharedSize);
  const tokensB = tokensById(b, sharedSize);
  const diffs: string[] = [];
  for (let id = 0; id < sharedSize; id++) {
    if (tokensA[id] !== tokensB[id]) diffs.push(`id ${id}: ${nameA} ${quote(tokensA[id])} vs ${nameB} ${quote(tokensB[id])}`);
  }
  return diffs;
}

/** Special tokens whose id differs, or that one side lacks while the other has them in the shared range. */
function specialDiffs(a: Tokenizer, b: Tokenizer, sharedSize: number, opts: CompareOptions): string[] {
  const [nameA, nameB] = opts.names ?? ["student", "teacher"];
  const names = [...new Set([...a.specialTokens.keys(), ...b.specialTokens.keys()])];
  const diffs: string[] = [];
  for (const name of names) {
    const idA = a.specialTokens.get(name);
    const idB = b.specialTokens.get(name);
    if (idA === idB) continue;
    if (idA !== undefined && idB !== undefined) {
      diffs.push(`special token ${name}: ${nameA} id ${idA} vs ${nameB} id ${idB}`);
      continue;
    }
    // One side lacks it: only a problem when its id is one both models can emit.
    const [has, id, lacks, other] = idA !== undefined ? [nameA, idA, nameB, b] : [nameB, idB!, nameA, a];
    if (id >= sharedSize) continue;
    const sameIdThere = other.idToToken(id) === name;
    diffs.push(
      sameIdThere
        ? `special token ${name} (id ${id}): special for ${has} but an ordinary token for ${lacks}`
        : `special token ${name}: ${has} id ${id} vs ${lacks} none`,
    );
  }
  return diffs;
}

function tokensById(t: Tokenizer, size: number): (string | undefined)[] {
  const tokens = new Array<string | undefined>(size);
  for (const [token, id] of t.vocab()) if (id < size) tokens[id] = token;
  return tokens;
}

// JSON escaping keeps whitespace and control characters visible inside the quotes.
function quote(token: string | undefined): string {
  return token === undefined ? "<none>" : `'${JSON.stringify(token).slice(1, -1)}'`;
}

function truncate(diffs: string[], max: number): string[] {
  if (diffs.length <= max) return diffs;
  return [...diffs.slice(0, max), `... and ${diffs.length - max} more differences`];
}
