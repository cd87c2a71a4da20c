// Tests for loadTokenizer on small directories written here: the ByteTokenizer's saved form (through
// both the fast ByteTokenizer path and the generic @huggingface/tokenizers path), config fallbacks and
// error messages. The real-model tests are in qwen3.test.ts.

import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ByteTokenizer, byteTokenizerConfig, byteTokenizerJson, saveByteTokenizer } from "./byte.ts";
import { loadTokenizer } from "./hf.ts";
import type { Tokenizer } from "./types.ts";

const byte = new ByteTokenizer();
const TEXTS = ["", "Hello, world!", "é€😀 日本語 👨‍👩‍👧", "\uFEFFbom", "a\uD800b", "x<|eos|>y<|user|>z", " . , \n\t"];

async function tempDir(): Promise<string> {
  return mkdtemp(join(tmpdir(), "opd-tok-"));
}

/** A dir holding the byte tokenizer's files; `config` edits tokenizer_config.json. */
async function byteDir(config: (c: Record<string, unknown>) => void = () => {}): Promise<string> {
  const dir = await tempDir();
  const c = byteTokenizerConfig();
  config(c);
  await writeFile(join(dir, "tokenizer.json"), JSON.stringify(byteTokenizerJson()));
  await writeFile(join(dir, "tokenizer_config.json"), JSON.stringify(c));
  return dir;
}

function randomIds(seed: number, n: number): number[] {
  const ids: number[] = [];
  for (let i = 0; i < n; i++) {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    ids.push(seed % 10 === 0 ? 256 + (seed % 9) : seed % 256); // mostly bytes, some specials, one unknown id
  }
  return ids;
}

function assertSameBehaviour(a: Tokenizer, b: Tokenizer): void {
  assert.equal(a.fingerprint(), b.fingerprint());
  assert.deepEqual([a.vocabSize, a.eosTokenIds, a.bosTokenId, a.padTokenId], [b.vocabSize, b.eosTokenIds, b.bosTokenId, b.padTokenId]);
  assert.deepEqual(a.specialTokens, b.specialTokens);
  for (const text of TEXTS) {
    for (const addSpecialTokens of [true, false]) {
      assert.deepEqual(a.encode(text, { addSpecialTokens }), b.encode(text, { addSpecialTokens }), text);
    }
  }
  for (let seed = 1; seed <= 50; seed++) {
    const ids = randomIds(seed, 1 + (seed % 40));
    for (const skipSpecialTokens of [false, true]) {
      assert.equal(a.decode(ids, { skipSpecialTokens }), b.decode(ids, { skipSpecialTokens }), JSON.stringify(ids));
    }
  }
  const chat = [
    { role: "user", content: "hi" },
    { role: "assistant", content: "hello" },
  ];
  assert.equal(a.applyChatTemplate(chat, { addGenerationPrompt: true }), b.applyChatTemplate(chat, { addGenerationPrompt: true }));
}

test("saveByteTokenizer → loadTokenizer gives a ByteTokenizer with identical behaviour", async () => {
  const dir = await tempDir();
  await saveByteTokenizer(dir);
  const loaded = await loadTokenizer(dir);
  assert.ok(loaded instanceof ByteTokenizer);
  assertSameBehaviour(loaded, byte);
  const config = JSON.parse(await readFile(join(dir, "tokenizer_config.json"), "utf8"));
  assert.equal(config.eos_token, "<|eos|>");
  await rm(dir, { recursive: true });
});

test("the saved tokenizer.json behaves identically under @huggingface/tokenizers", async () => {
  const dir = await byteDir((c) => delete c.opd_tokenizer); // no marker: the generic HF path
  const generic = await loadTokenizer(dir);
  assert.ok(!(generic instanceof ByteTokenizer));
  assertSameBehaviour(generic, byte);
  assert.equal(generic.decode([0xf0, 0x9f, 0x98]), "\uFFFD");
  await rm(dir, { recursive: true });
});

test("a marked dir whose vocabulary was edited falls back to the generic path", async () => {
  const dir = await tempDir();
  const json = byteTokenizerJson() as { added_tokens: { content: string }[] };
  json.added_tokens[3].content = "<|human|>";
  await writeFile(join(dir, "tokenizer.json"), JSON.stringify(json));
  await writeFile(join(dir, "tokenizer_config.json"), JSON.stringify(byteTokenizerConfig()));
  const loaded = await loadTokenizer(dir);
  assert.ok(!(loaded instanceof ByteTokenizer));
  assert.equal(loaded.specialTokens.get("<|human|>"), 259);
  assert.notEqual(loaded.fingerprint(), byte.fingerprint());
  await rm(dir, { recursive: true });
});

test("fingerprint ignores file formatting and key order", async () => {
  const dir = await tempDir();
  const json = byteTokenizerJson() as { model: { vocab: Record<string, number> } };
  json.model.vocab = Object.fromEntries(Object.entries(json.model.vocab).reverse());
  await writeFile(join(dir, "tokenizer.json"), JSON.stringify(json)); // compact, reversed vocab
  await writeFile(join(dir, "tokenizer_config.json"), JSON.stringify(byteTokenizerConfig(), null, 4));
  assert.equal((await loadTokenizer(dir)).fingerprint(), byte.fingerprint());
  await rm(dir, { recursive: true });
});

test("generation_config.json eos_token_id (list) joins the config's eos; bos/pad fall back to it", async () => {
  const dir = await byteDir((c) => {
    delete c.opd_tokenizer;
    c.bos_token = null;
    c.pad_token = null;
  });
  await writeFile(join(dir, "generation_config.json"), JSON.stringify({ eos_token_id: [259, 258], bos_token_id: 257, pad_token_id: 256 }));
  const t = await loadTokenizer(dir);
  assert.deepEqual(t.eosTokenIds, [258, 259]);
  assert.equal(t.bosTokenId, 257);
  assert.equal(t.padTokenId, 256);
  await writeFile(join(dir, "generation_config.json"), JSON.stringify({ eos_token_id: 260 }));
  assert.deepEqual((await loadTokenizer(dir)).eosTokenIds, [258, 260]);
  await rm(dir, { recursive: true });
});

test("chat template from chat_template.jinja; a missing template is an error naming the dir", async () => {
  const dir = await byteDir((c) => {
    delete c.opd_tokenizer;
    delete c.chat_template;
  });
  const t = await loadTokenizer(dir);
  assert.throws(() => t.applyChatTemplate([{ role: "user", content: "x" }]), (err: Error) => {
    assert.ok(err.message.includes(dir), err.message);
    assert.match(err.message, /no chat template/);
    return true;
  });
  await writeFile(join(dir, "chat_template.jinja"), "{% for m in messages %}[{{ m.role }}]{{ m.content }}{% endfor %}");
  assert.equal((await loadTokenizer(dir)).applyChatTemplate([{ role: "user", content: "x" }]), "[user]x");
  await rm(dir, { recursive: true });
});

test("errors name the directory and file and say what is missing", async () => {
  const dir = await tempDir();
  await assert.rejects(loadTokenizer(dir), (err: Error) => err.message.includes(dir) && /tokenizer\.json not found/.test(err.message));
  await writeFile(join(dir, "tokenizer.json"), "{not json");
  await assert.rejects(loadTokenizer(dir), /tokenizer\.json: invalid JSON/);
  await writeFile(join(dir, "tokenizer.json"), JSON.stringify({ version: "1.0" }));
  await assert.rejects(loadTokenizer(dir), /tokenizer\.json: no "model" object/);
  await writeFile(join(dir, "tokenizer.json"), JSON.stringify(byteTokenizerJson()));
  await writeFile(join(dir, "tokenizer_config.json"), JSON.stringify({ eos_token: "<|nope|>" }));
  await assert.rejects(loadTokenizer(dir), /tokenizer_config\.json: eos_token "<\|nope\|>" is not in tokenizer\.json's vocabulary/);
  await writeFile(join(dir, "tokenizer_config.json"), "{}");
  await writeFile(join(dir, "generation_config.json"), JSON.stringify({ eos_token_id: "x" }));
  await assert.rejects(loadTokenizer(dir), /generation_config\.json: "eos_token_id" must be/);
  await rm(dir, { recursive: true });
});

test("a tokenizer.json alone (no tokenizer_config.json) loads with no roles", async () => {
  const dir = await tempDir();
  await writeFile(join(dir, "tokenizer.json"), JSON.stringify(byteTokenizerJson()));
  const t = await loadTokenizer(dir);
  assert.deepEqual([t.eosTokenIds, t.bosTokenId, t.padTokenId], [[], null, null]);
  assert.equal(t.fingerprint(), byte.fingerprint());
  await rm(dir, { recursive: true });
});
