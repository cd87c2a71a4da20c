// Unit tests for ByteTokenizer: round trips, never-throwing decode, special tokens, chat template.

import { test } from "node:test";
import assert from "node:assert/strict";
import {
  BYTE_BOS_ID,
  BYTE_EOS_ID,
  BYTE_PAD_ID,
  BYTE_SPECIAL_TOKENS,
  BYTE_TO_UNICODE,
  BYTE_VOCAB_SIZE,
  ByteTokenizer,
} from "./byte.ts";

const tok = new ByteTokenizer();
const TRICKY = [
  "",
  "plain ascii",
  "ünïcödé — “quotes” €",
  "日本語のテキスト",
  "emoji 😀👍🏽 family 👨‍👩‍👧 flag 🇫🇷",
  "\uFEFFleading BOM kept",
  "nul \u0000 and control \u0007 \r\n\t",
  " spaces around . , ! ",
];

test("constants: 256 bytes then specials, vocab size a multiple of 8", () => {
  assert.equal(BYTE_VOCAB_SIZE, 264);
  assert.equal(BYTE_VOCAB_SIZE % 8, 0);
  assert.deepEqual([tok.padTokenId, tok.bosTokenId, tok.eosTokenIds], [BYTE_PAD_ID, BYTE_BOS_ID, [BYTE_EOS_ID]]);
  assert.equal(tok.specialTokens.get("<|eos|>"), 258);
  assert.equal(tok.vocab().size, BYTE_VOCAB_SIZE);
  assert.equal(new Set(BYTE_TO_UNICODE).size, 256);
});

test("encode is UTF-8 bytes, with a leading BOS unless addSpecialTokens is false", () => {
  assert.deepEqual(tok.encode("hé"), [BYTE_BOS_ID, 0x68, 0xc3, 0xa9]);
  assert.deepEqual(tok.encode("hé", { addSpecialTokens: false }), [0x68, 0xc3, 0xa9]);
  assert.deepEqual(tok.encode("😀", { addSpecialTokens: false }), [0xf0, 0x9f, 0x98, 0x80]);
});

test("round trips tricky strings", () => {
  for (const text of TRICKY) {
    assert.equal(tok.decode(tok.encode(text, { addSpecialTokens: false })), text);
    assert.equal(tok.decode(tok.encode(text), { skipSpecialTokens: true }), text);
  }
});

test("round trips random strings over the whole BMP and astral planes", () => {
  let seed = 12345;
  const rand = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % n);
  for (let i = 0; i < 200; i++) {
    let text = "";
    for (let j = rand(40); j > 0; j--) {
      const cp = rand(4) === 0 ? 0x10000 + rand(0xfffff) : rand(0xd800); // no lone surrogates
      text += String.fromCodePoint(cp);
    }
    assert.equal(tok.decode(tok.encode(text, { addSpecialTokens: false })), text);
  }
});

test("lone surrogates encode as U+FFFD, like TextEncoder", () => {
  assert.equal(tok.decode(tok.encode("a\uD800b", { addSpecialTokens: false })), "a\uFFFDb");
});

test("decode never throws on invalid UTF-8 and uses replacement characters", () => {
  assert.equal(tok.decode([0xff]), "\uFFFD");
  assert.equal(tok.decode([0x61, 0xc3]), "a\uFFFD"); // truncated 2-byte sequence
  assert.equal(tok.decode([0xf0, 0x9f, 0x98]), "\uFFFD"); // truncated emoji: one maximal subpart
  assert.equal(tok.decode([0x80, 0x80, 0x61]), "\uFFFD\uFFFDa"); // stray continuation bytes
  assert.equal(tok.decode([0xed, 0xa0, 0x80]), "\uFFFD\uFFFD\uFFFD"); // encoded surrogate
  assert.equal(tok.decode([]), "");
});

test("decode skips ids with no token and keeps the surrounding bytes joined", () => {
  assert.equal(tok.decode([0xc3, 9999, 0xa9, -1, 1.5]), "é");
});

test("special tokens: in text they encode to their ids; decode shows or skips them", () => {
  const ids = tok.encode("a<|eos|>b<|user|>", { addSpecialTokens: false });
  assert.deepEqual(ids, [0x61, BYTE_EOS_ID, 0x62, 259]);
  assert.equal(tok.decode(ids), "a<|eos|>b<|user|>");
  assert.equal(tok.decode(ids, { skipSpecialTokens: true }), "ab");
  // A special between the two bytes of "é" splits them unless skipped.
  assert.equal(tok.decode([0xc3, BYTE_EOS_ID, 0xa9]), "\uFFFD<|eos|>\uFFFD");
  assert.equal(tok.decode([0xc3, BYTE_EOS_ID, 0xa9], { skipSpecialTokens: true }), "é");
  for (const [i, s] of BYTE_SPECIAL_TOKENS.entries()) assert.equal(tok.idToToken(256 + i), s);
});

test("idToToken uses the GPT-2 byte-level spelling", () => {
  assert.equal(tok.idToToken(0x61), "a");
  assert.equal(tok.idToToken(0x20), "Ġ");
  assert.equal(tok.idToToken(0x0a), "Ċ");
  assert.equal(tok.idToToken(BYTE_VOCAB_SIZE), undefined);
});

test("chat template: role markers, EOS after assistant turns, generation prompt", () => {
  const text = tok.applyChatTemplate(
    [
      { role: "system", content: "Be brief." },
      { role: "user", content: "2+2?" },
      { role: "assistant", content: "4" },
      { role: "user", content: "3+3?" },
    ],
    { addGenerationPrompt: true },
  );
  assert.equal(text, "<|system|>Be brief.<|user|>2+2?<|assistant|>4<|eos|><|user|>3+3?<|assistant|>");
  const ids = tok.encode(text);
  assert.equal(ids[0], BYTE_BOS_ID);
  assert.equal(ids.at(-1), tok.specialTokens.get("<|assistant|>"));
  assert.equal(tok.applyChatTemplate([{ role: "user", content: "x" }]), "<|user|>x");
  assert.throws(() => tok.applyChatTemplate([{ role: "tool", content: "x" }]), /unknown role tool/);
});

test("fingerprint is stable and equal for equal tokenizers", () => {
  assert.match(tok.fingerprint(), /^[0-9a-f]{64}$/);
  assert.equal(new ByteTokenizer().fingerprint(), tok.fingerprint());
});
