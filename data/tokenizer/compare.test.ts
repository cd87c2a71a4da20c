// Tests for compareTokenizers: identical, unrelated and padded vocabularies, plus message formats.

import { test } from "node:test";
import assert from "node:assert/strict";
import { ByteTokenizer } from "./byte.ts";
import { compareTokenizers } from "./compare.ts";
import { vocabFingerprint } from "./fingerprint.ts";
import { loadQwen3 } from "./test_fixtures.ts";
import type { Tokenizer } from "./types.ts";

/** `inner` with a larger vocabSize and optional extra tokens past its own ids (a padded embedding). */
function padded(inner: Tokenizer, vocabSize: number, extra: Map<string, number> = new Map()): Tokenizer {
  const vocab = new Map([...inner.vocab(), ...extra]);
  const special = new Map([...inner.specialTokens, ...extra]);
  const byId = new Map([...extra].map(([t, id]) => [id, t]));
  return Object.assign(Object.create(inner) as Tokenizer, {
    vocabSize,
    specialTokens: special,
    vocab: () => new Map(vocab),
    idToToken: (id: number) => byId.get(id) ?? inner.idToToken(id),
    fingerprint: () => vocabFingerprint(vocab, special),
  });
}

/** A minimal fake over an explicit token list (index = id). */
function fake(tokens: string[], special: Record<string, number> = {}): Tokenizer {
  const vocab = new Map(tokens.map((t, i) => [t, i]));
  const specialTokens = new Map(Object.entries(special));
  return {
    vocabSize: tokens.length,
    eosTokenIds: [],
    bosTokenId: null,
    padTokenId: null,
    specialTokens,
    encode: () => [],
    decode: () => "",
    idToToken: (id) => tokens[id],
    vocab: () => new Map(vocab),
    fingerprint: () => vocabFingerprint(vocab, specialTokens),
    applyChatTemplate: () => "",
  };
}

test("byte tokenizer vs itself: same", () => {
  const r = compareTokenizers(new ByteTokenizer(), new ByteTokenizer());
  assert.deepEqual(r, { same: true, sharedSize: 264, diffs: [] });
});

test("differing ids and special tokens are reported readably, first N only", () => {
  const student = fake(["a", "b", "c", "<|eos|>"], { "<|eos|>": 3 });
  const teacher = fake(["a", "x", "<|eos|>", "d", "e"], { "<|eos|>": 2 });
  const r = compareTokenizers(student, teacher);
  assert.equal(r.same, false);
  assert.equal(r.sharedSize, 4);
  assert.deepEqual(r.diffs, [
    "special token <|eos|>: student id 3 vs teacher id 2",
    "id 1: student 'b' vs teacher 'x'",
    "id 2: student 'c' vs teacher '<|eos|>'",
    "id 3: student '<|eos|>' vs teacher 'd'",
  ]);
  const short = compareTokenizers(student, teacher, { maxDiffs: 2, names: ["A", "B"] });
  assert.deepEqual(short.diffs, ["special token <|eos|>: A id 3 vs B id 2", "id 1: A 'b' vs B 'x'", "... and 2 more differences"]);
});

test("a token special on one side only, and whitespace tokens, are explained", () => {
  const r = compareTokenizers(fake(["a", "\n"], { a: 0 }), fake(["a", " "]));
  assert.deepEqual(r.diffs, ["special token a (id 0): special for student but an ordinary token for teacher", "id 1: student '\\n' vs teacher ' '"]);
});

test("Qwen3 vs itself: same", async () => {
  const q = await loadQwen3();
  assert.deepEqual(compareTokenizers(q, q), { same: true, sharedSize: 151669, diffs: [] });
});

test("Qwen3 vs the byte tokenizer: not same, with readable diffs", async () => {
  const r = compareTokenizers(new ByteTokenizer(), await loadQwen3(), { maxDiffs: 10 });
  assert.equal(r.same, false);
  assert.equal(r.sharedSize, 264);
  assert.equal(r.diffs.length, 11);
  // The byte specials sit at 256..263, ids Qwen3 spends on ordinary tokens; Qwen3's own specials
  // (151643+) lie past the shared range and are not reported.
  assert.equal(r.diffs[0], "special token <|pad|>: student id 256 vs teacher none");
  assert.equal(r.diffs[8], "id 0: student 'Ā' vs teacher '!'");
  assert.match(r.diffs[10], /^\.\.\. and \d+ more differences$/);
});

test("Qwen3 padded to a larger vocabulary: same on the shared range", async () => {
  const q = await loadQwen3();
  const plainPad = padded(q, 151936); // Qwen3's config.json vocab_size
  assert.deepEqual(compareTokenizers(plainPad, q), { same: true, sharedSize: 151669, diffs: [] });
  const extra = new Map([...Array(8).keys()].map((i): [string, number] => [`<|extra_${i}|>`, 151669 + i]));
  const withExtra = padded(q, 151936, extra);
  assert.notEqual(withExtra.fingerprint(), q.fingerprint());
  assert.deepEqual(compareTokenizers(q, withExtra), { same: true, sharedSize: 151669, diffs: [] });
});
