// Byte-offset alignment (teacher/align.ts): hand-written cases — multi-byte UTF-8, merges on either
// side, leading spaces, byte-fallback pieces, a completion ending mid-character, invalid bytes — and a
// property test: random strings through two different tokenizers (the byte tokenizer and the real
// Qwen3 BPE, and Qwen3 against random re-chunkings of the same bytes) give spans that partition the
// bytes exactly, each token of each side in exactly one span.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ByteTokenizer } from '../data/tokenizer/byte.ts';
import { loadQwen3 } from '../data/tokenizer/test_fixtures.ts';
import type { Tokenizer } from '../data/tokenizer/types.ts';
import { Rng } from '../engine/rng.ts';
import { AlignError, alignTokens, byteTokensOf, concatBytes, pieceScheme, type Span, studentTextBytes, teacherTokens, teacherTokensOfBytes, tokenBytesOf } from './align.ts';

const enc = (s: string) => new TextEncoder().encode(s);
const toks = (...parts: string[]) => parts.map(enc);
const pairs = (spans: Span[]) => spans.map((s) => [s.a, s.b]);

test('merges on either side: cut only where both streams have a boundary', () => {
  assert.deepEqual(pairs(alignTokens(toks('ab', 'c'), toks('a', 'bc'))), [[[0, 2], [0, 2]]]);
  assert.deepEqual(pairs(alignTokens(toks('ab', 'cd'), toks('a', 'b', 'cd'))), [
    [[0, 1], [0, 2]],
    [[1, 2], [2, 3]],
  ]);
  assert.deepEqual(pairs(alignTokens(toks('a', 'b', 'c', 'd'), toks('abcd'))), [[[0, 4], [0, 1]]]);
  const s = alignTokens(toks('x', 'yz', 'w'), toks('xy', 'z', 'w'));
  assert.deepEqual(s.map((x) => x.bytes), [[0, 3], [3, 4]]);
});

test('multi-byte UTF-8: the byte tokenizer splits "é€" into 5 tokens, Qwen3 into whole characters', async () => {
  const q = await loadQwen3();
  const qb = tokenBytesOf(q);
  const bt = new ByteTokenizer();
  const bb = tokenBytesOf(bt);
  const text = 'é€ café';
  const bIds = bt.encode(text, { addSpecialTokens: false });
  const qIds = q.encode(text, { addSpecialTokens: false });
  assert.equal(bIds.length, enc(text).length);
  const spans = alignTokens(bIds.map((i) => bb(i)!), qIds.map((i) => qb(i)!));
  // every span's two sides spell the same bytes, and no cut falls inside a character here
  const all = enc(text);
  for (const sp of spans) {
    const slice = all.subarray(...sp.bytes);
    assert.deepEqual(concatBytes(bIds.slice(...sp.a).map((i) => bb(i)!)), slice);
    assert.deepEqual(concatBytes(qIds.slice(...sp.b).map((i) => qb(i)!)), slice);
    assert.doesNotThrow(() => new TextDecoder('utf-8', { fatal: true }).decode(slice));
  }
  assert.equal(spans[0]!.bytes[1] >= 2, true); // "é" (2 bytes) is never split from its byte tokens' span
});

test('leading spaces: Qwen3 "Ġthe" spells " the"; a byte stream aligns to it as one span', async () => {
  const q = await loadQwen3();
  const qb = tokenBytesOf(q);
  assert.equal(pieceScheme(q), 'byte-level');
  const id = q.vocab().get('Ġthe')!;
  assert.deepEqual(qb(id), enc(' the'));
  const ids = q.encode('Hello the world', { addSpecialTokens: false });
  assert.deepEqual(ids.map((i) => q.idToToken(i)), ['Hello', 'Ġthe', 'Ġworld']);
  const spans = alignTokens(toks('Hel', 'lo', ' ', 'the wor', 'ld'), ids.map((i) => qb(i)!));
  assert.deepEqual(pairs(spans), [
    [[0, 2], [0, 1]],
    [[2, 5], [1, 3]],
  ]);
  assert.equal(qb(q.specialTokens.get('<|im_end|>')!), null); // template / end tokens spell nothing
});

/** A tiny SentencePiece-style tokenizer with byte fallback (only what tokenBytesOf and teacherTokens read). */
function sentencePiece(): Tokenizer {
  const pieces = ['<unk>', '<s>', '</s>', '▁Hello', '▁wor', 'ld', '<0xE2>', '<0x82>', '<0xAC>', '▁', '<0x0A>'];
  const vocab = new Map(pieces.map((p, i) => [p, i]));
  return {
    vocab: () => new Map(vocab),
    idToToken: (id: number) => pieces[id],
    specialTokens: new Map([['<unk>', 0], ['<s>', 1], ['</s>', 2]]),
    // "Hello world€" with SentencePiece's dummy prefix, € by byte fallback
    encode: () => [3, 4, 5, 6, 7, 8],
  } as unknown as Tokenizer;
}

test('byte-fallback pieces spell their byte; "▁" is a space; the dummy prefix is not a text byte', () => {
  const sp = sentencePiece();
  assert.equal(pieceScheme(sp), 'sentencepiece');
  const b = tokenBytesOf(sp);
  assert.deepEqual(b(6), Uint8Array.of(0xe2));
  assert.deepEqual(b(3), enc(' Hello'));
  assert.equal(b(2), null);
  const t = teacherTokens(sp, b, 'Hello world€');
  assert.deepEqual(concatBytes(t.bytes), enc('Hello world€'));
  assert.deepEqual(t.bytes[0], enc('Hello'));
  // the byte tokenizer's "€" (3 byte tokens) against 3 byte-fallback pieces: one span per byte
  const bt = new ByteTokenizer();
  const bb = tokenBytesOf(bt);
  const spans = alignTokens(bt.encode('Hello world€', { addSpecialTokens: false }).map((i) => bb(i)!), t.bytes);
  assert.deepEqual(spans.slice(-3).map((s) => s.bytes), [[11, 12], [12, 13], [13, 14]]);
  assert.deepEqual(spans.slice(-3).map((s) => [s.a[1] - s.a[0], s.b[1] - s.b[0]]), [[1, 1], [1, 1], [1, 1]]);
});

test('a completion ending mid-character: the cut-off character is dropped and its tokens are the tail', () => {
  const bytes = [...enc('a€')].slice(0, 3); // 0x61 0xE2 0x82: "€" cut after 2 of its 3 bytes
  const st = studentTextBytes(bytes.map((b) => Uint8Array.of(b)));
  assert.equal(st.text, 'a');
  assert.equal(st.tail, 1);
  assert.deepEqual(st.tokenBytes.map((b) => b.length), [1, 0, 0]);
  // a special token (null) in the middle spells nothing and is kept out of the text
  const withSpecial = studentTextBytes([enc('x'), null, enc('y')]);
  assert.equal(withSpecial.text, 'xy');
  assert.equal(withSpecial.tail, 3);
});

test('an invalid byte in the middle becomes U+FFFD, credited to the token that held it', () => {
  const st = studentTextBytes([enc('a'), Uint8Array.of(0xff), Uint8Array.of(0xe2, 0x82), Uint8Array.of(0xac, 0x62)]);
  assert.equal(st.text, 'a\uFFFD€b');
  assert.deepEqual(st.tokenBytes[1], Uint8Array.of(0xef, 0xbf, 0xbd));
  assert.deepEqual(st.tokenBytes[2], Uint8Array.of(0xe2, 0x82)); // a valid character split across tokens stays split
  assert.equal(st.tail, 4);
});

test('streams that spell different bytes are refused', () => {
  assert.throws(() => alignTokens(toks('ab'), toks('ac')), (e: unknown) => e instanceof AlignError && /first difference at byte 1/.test(e.message));
});

test('zero-byte tokens join the span of the next byte, or the last span at the end', () => {
  const E = new Uint8Array(0);
  const spans = alignTokens([E, enc('ab'), E, enc('c'), E], toks('a', 'b', 'c'));
  assert.deepEqual(pairs(spans), [
    [[0, 2], [0, 2]],
    [[2, 5], [2, 3]],
  ]);
  assert.deepEqual(pairs(alignTokens([E], [])), [[[0, 1], [0, 0]]]);
});

/** Random text mixing ASCII words, spaces, newlines, accents, CJK, emoji (with ZWJ) and digits. */
function randomText(rng: Rng): string {
  const pool = ['the', ' ', '  ', '\n', 'é', 'ü', '你好', '世界', '😀', '👨‍👩‍👧', '€', '42', ' 7', 'ing', 'Hello', ',', '\t', 'ß', '∑', ' a'];
  const n = 1 + (rng.nextU32() % 24);
  let s = '';
  for (let i = 0; i < n; i++) s += pool[rng.nextU32() % pool.length];
  return s;
}

function checkPartition(a: Uint8Array[], b: Uint8Array[], spans: Span[], all: Uint8Array, what: string): void {
  let byte = 0;
  let ta = 0;
  let tb = 0;
  for (const sp of spans) {
    assert.equal(sp.bytes[0], byte, `${what}: spans are contiguous`);
    assert.equal(sp.a[0], ta, `${what}: each student token used once, in order`);
    assert.equal(sp.b[0], tb, `${what}: each teacher token used once, in order`);
    assert.ok(sp.bytes[1] > sp.bytes[0] || all.length === 0, `${what}: no empty span`);
    const slice = all.subarray(...sp.bytes);
    assert.deepEqual(concatBytes(a.slice(...sp.a)), slice, what);
    assert.deepEqual(concatBytes(b.slice(...sp.b)), slice, what);
    [byte, ta, tb] = [sp.bytes[1], sp.a[1], sp.b[1]];
  }
  assert.deepEqual([byte, ta, tb], [all.length, a.length, b.length], `${what}: the spans cover everything`);
}

test('property: random strings through the byte tokenizer and Qwen3 (and random re-chunkings) partition the bytes', async () => {
  const q = await loadQwen3();
  const qb = tokenBytesOf(q);
  const bt = new ByteTokenizer();
  const bb = tokenBytesOf(bt);
  const rng = new Rng(12);
  let multiTokenSpans = 0;
  for (let trial = 0; trial < 300; trial++) {
    const text = randomText(rng);
    const all = enc(text);
    const qTok = teacherTokens(q, qb, text);
    const bTok = bt.encode(text, { addSpecialTokens: false }).map((i) => bb(i)!);
    const s1 = alignTokens(bTok, qTok.bytes);
    checkPartition(bTok, qTok.bytes, s1, all, `byte vs qwen3 on ${JSON.stringify(text)}`);
    multiTokenSpans += s1.filter((s) => s.a[1] - s.a[0] > 1).length;
    // a random chunking of the same bytes (a BPE with arbitrary merges) against Qwen3
    const chunks: Uint8Array[] = [];
    for (let i = 0; i < all.length; ) {
      const n = 1 + (rng.nextU32() % 5);
      chunks.push(all.slice(i, i + n));
      i += n;
    }
    checkPartition(chunks, qTok.bytes, alignTokens(chunks, qTok.bytes), all, `chunks vs qwen3 on ${JSON.stringify(text)}`);
    // cuts are exactly the common boundaries: the number of spans equals |boundaries(a) ∩ boundaries(b)|
    const endsOf = (p: Uint8Array[]) => new Set(p.map(((o) => (x: Uint8Array) => (o += x.length))(0)));
    const common = [...endsOf(chunks)].filter((e) => endsOf(qTok.bytes).has(e));
    assert.equal(alignTokens(chunks, qTok.bytes).length, common.length);
  }
  assert.ok(multiTokenSpans > 100, `the random texts exercise real merges (${multiTokenSpans} multi-token spans)`);
});

test('property: random raw bytes (invalid UTF-8, cut-off characters) through Qwen3 spell exactly the student bytes and partition them', async () => {
  const q = await loadQwen3();
  const qb = tokenBytesOf(q);
  const qByte = byteTokensOf(q);
  const rng = new Rng(5);
  let invalid = 0;
  for (let trial = 0; trial < 200; trial++) {
    const parts = [...enc(randomText(rng))];
    // sprinkle random bytes (0x80-0xFF are mostly invalid where they land) and cut the end anywhere
    for (let k = rng.nextU32() % 4; k > 0; k--) parts.splice(rng.nextU32() % (parts.length + 1), 0, 0x80 + (rng.nextU32() % 128));
    const raw = Uint8Array.from(parts.slice(0, Math.max(1, parts.length - (rng.nextU32() % 3))));
    const t = teacherTokensOfBytes(q, qb, qByte, raw);
    assert.ok(t, 'Qwen3 has a token for every byte');
    assert.deepEqual(concatBytes(t.bytes), raw);
    t.ids.forEach((id, i) => assert.deepEqual(qb(id), t.bytes[i]));
    const studentTokens = [...raw].map((b) => Uint8Array.of(b));
    checkPartition(studentTokens, t.bytes, alignTokens(studentTokens, t.bytes), raw, `raw ${[...raw]}`);
    if (studentTextBytes(studentTokens).text.includes('\uFFFD') || studentTextBytes(studentTokens).tail < raw.length) invalid++;
  }
  assert.ok(invalid > 50, `${invalid} of 200 byte strings were not valid UTF-8`);
});

test('a teacher without a token for some byte: teacherTokensOfBytes returns null (the U+FFFD / tail fallback applies)', () => {
  const pieces = ['<unk>', '▁a', '<0xE2>'];
  const sp = { vocab: () => new Map(pieces.map((p, i) => [p, i])), idToToken: (i: number) => pieces[i], specialTokens: new Map([['<unk>', 0]]), encode: () => [1] } as unknown as Tokenizer;
  assert.equal(byteTokensOf(sp)(0xe2), 2);
  assert.equal(byteTokensOf(sp)(0xff), null);
  assert.equal(teacherTokensOfBytes(sp, tokenBytesOf(sp), byteTokensOf(sp), Uint8Array.of(0x61, 0xff)), null);
});

test("a character the teacher's normalizer changes (Qwen3's NFC: U+2000 → U+2002) is spelled by byte tokens", async () => {
  const q = await loadQwen3();
  const qb = tokenBytesOf(q);
  assert.throws(() => teacherTokens(q, qb, 'a\u2000b'), /do not spell the text back/);
  const raw = enc('a\u2000b');
  const t = teacherTokensOfBytes(q, qb, byteTokensOf(q), raw)!;
  assert.deepEqual(concatBytes(t.bytes), raw);
  assert.deepEqual(t.bytes.map((b) => b.length), [1, 1, 1, 1, 1]); // "a", the three bytes of U+2000, "b"
});
