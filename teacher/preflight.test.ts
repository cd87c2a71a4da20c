// R9: different tokenizers are refused before any work with a readable diff; padded vocabularies
// are accepted when the shared part matches.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ByteTokenizer } from '../data/tokenizer/byte.ts';
import type { Tokenizer } from '../data/tokenizer/types.ts';
import { PreflightError, preflight } from './preflight.ts';

/** The byte tokenizer with one token's meaning changed: id 65 is no longer "A". */
function altered(base: Tokenizer): Tokenizer {
  const vocab = new Map(base.vocab());
  for (const [k, v] of vocab) if (v === 65) vocab.delete(k);
  vocab.set('<|changed|>', 65);
  return Object.assign(Object.create(Object.getPrototypeOf(base)), base, {
    vocab: () => vocab,
    idToToken: (id: number) => (id === 65 ? '<|changed|>' : base.idToToken(id)),
    fingerprint: () => 'altered',
  });
}

test('same tokenizer, padded teacher rows: accepted, scoring limited to the shared rows', () => {
  const tok = new ByteTokenizer();
  const r = preflight({ tokenizer: tok, vocabRows: tok.vocabSize }, { tokenizer: tok, vocabRows: tok.vocabSize + 64 });
  assert.equal(r.sharedVocab, tok.vocabSize);
  assert.match(r.notes[0]!, /padding/);
});

test('a different tokenizer is refused, naming the first differing id', () => {
  const tok = new ByteTokenizer();
  assert.throws(
    () => preflight({ tokenizer: tok, vocabRows: tok.vocabSize }, { tokenizer: altered(tok), vocabRows: tok.vocabSize }),
    (e: unknown) => e instanceof PreflightError && /id 65/.test(e.message),
  );
});

test('a model with fewer output rows than its tokenizer has tokens is refused', () => {
  const tok = new ByteTokenizer();
  assert.throws(() => preflight({ tokenizer: tok, vocabRows: 200 }, { tokenizer: tok, vocabRows: tok.vocabSize }), /student's model has 200 output rows/);
});
