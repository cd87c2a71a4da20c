// Chat prompts in the sampling paths (issue 12): the rollout stage and held-out evaluation hand the
// generator the prompt ids data/chat.ts renders — tokenizer.encode(prompt) exactly, as before, for
// plain-string records; the real Qwen3 template (+ generation prompt, kwargs) for conversational
// ones — stop at every EOS id and the template's end of turn, and give rewards the assistant text
// without template tokens. A fake generator records what it was asked and answers fixed tokens.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { TaskRecord } from '../../data/tasks/types.ts';
import { mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadTokenizer } from '../../data/tokenizer/hf.ts';
import { loadQwen3, qwen3Dir } from '../../data/tokenizer/test_fixtures.ts';
import { Generator, type Completion, type GenerateOptions } from '../../student/generate/generate.ts';
import { evaluateRecords } from '../eval.ts';
import { rolloutStage } from './rollout-step.ts';
import { tokenizeSft } from './sft.ts';

const IM_END = 151645;
const ENDOFTEXT = 151643;
const plain: TaskRecord = { id: 'p', prompt: 'What is 2 plus 2?', answer: '4' };
const convo: TaskRecord = {
  id: 'c',
  prompt: 'What is 64 plus 85?',
  answer: '149',
  messages: [
    { role: 'system', content: 'You are a helpful assistant.' },
    { role: 'user', content: 'What is 64 plus 85?' },
  ],
};

/** A generator that records its calls and answers `reply` + <|im_end|> for every prompt. */
function fakeGenerator(replyIds: number[]) {
  const calls: { prompts: number[][]; o: Omit<GenerateOptions, 'rng'> }[] = [];
  const gen = Object.assign(Object.create(Generator.prototype) as Generator, {
    config: { eosTokenIds: [ENDOFTEXT] },
    generate: async (prompts: number[][], o: GenerateOptions): Promise<Completion[]> => {
      calls.push({ prompts: prompts.map((p) => [...p]), o });
      return prompts.map(() => ({ tokens: [...replyIds, IM_END], logprobs: [...replyIds, IM_END].map(() => -0.5), truncated: false, finishReason: 'stop' }) as Completion);
    },
    release: async () => {},
  });
  return { gen, calls };
}

test('rollout stage: plain prompts encode as before; conversations through the Qwen3 template; rewards see no template tokens', async () => {
  const q = await loadQwen3();
  const reply = q.encode('149', { addSpecialTokens: false });
  const { gen, calls } = fakeGenerator(reply);
  const seen: string[] = [];
  const deps = {
    generator: gen, tokenizer: q, teacher: null, stopTokenIds: [ENDOFTEXT, IM_END], padId: ENDOFTEXT,
    reward: async (_p: string, completion: string) => (seen.push(completion), 1),
    chat: { chatTemplateKwargs: { enable_thinking: false } },
  };
  const ro = await rolloutStage(1, [plain, convo], deps, { groupSize: 2, maxNewTokens: 8, temperature: 1 }, 7);
  const expected =
    '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nWhat is 64 plus 85?<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n';
  assert.deepEqual(calls[0]!.prompts, [q.encode(plain.prompt), q.encode(plain.prompt), q.encode(expected, { addSpecialTokens: false }), q.encode(expected, { addSpecialTokens: false })]);
  assert.deepEqual(ro.groups[1]![0]!.promptIds, q.encode(expected, { addSpecialTokens: false }));
  assert.equal(q.decode(ro.groups[1]![0]!.promptIds), expected);
  assert.deepEqual(seen, ['149', '149', '149', '149'], 'rewards see the assistant text without <|im_end|>');
});

/** Qwen3's tokenizer as a base model ships it: eos_token <|endoftext|>, so only the template knows <|im_end|> ends a turn. */
async function qwen3Base() {
  const src = qwen3Dir()!;
  const dir = mkdtempSync(join(tmpdir(), 'opd-qwen3-base-'));
  symlinkSync(join(src, 'tokenizer.json'), join(dir, 'tokenizer.json'));
  const config = JSON.parse(readFileSync(join(src, 'tokenizer_config.json'), 'utf8'));
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify({ ...config, eos_token: '<|endoftext|>' }));
  return loadTokenizer(dir);
}

test('held-out evaluation: the same rendering, and sampling stops at every EOS id and the end of turn', async () => {
  const q = await qwen3Base();
  assert.deepEqual(q.eosTokenIds, [ENDOFTEXT], 'the tokenizer alone does not stop at <|im_end|>');
  const { gen, calls } = fakeGenerator(q.encode('149', { addSpecialTokens: false }));
  const rewards: string[] = [];
  const scoring = { reward: async (_p: string, c: string) => (rewards.push(c), c === '149' ? 1 : 0), correct: (_r: TaskRecord, _c: string, w: number) => w >= 1 };
  const r = await evaluateRecords(gen, q, [plain, convo], scoring, { seed: 0, maxNewTokens: 8 });
  assert.deepEqual(calls[0]!.prompts, [q.encode(plain.prompt), q.encode(q.applyChatTemplate(convo.messages!, { addGenerationPrompt: true }), { addSpecialTokens: false })]);
  assert.deepEqual(calls[0]!.o.stopTokenIds, [ENDOFTEXT, IM_END]);
  assert.deepEqual(rewards, ['149', '149']);
  assert.equal(r.correct, 2);
  // plain records only: the stop ids are exactly the EOS ids, as before
  const plainOnly = fakeGenerator([]);
  await evaluateRecords(plainOnly.gen, q, [plain], scoring, { seed: 0 });
  assert.deepEqual(plainOnly.calls[0]!.o.stopTokenIds, [ENDOFTEXT]);
});

test('SFT tokenization: plain records as before (completion + EOS); conversations train on the template-written assistant turn', async () => {
  const q = await loadQwen3();
  const [plainEx, convoEx] = tokenizeSft(q, [{ prompt: plain.prompt, completion: '4', where: 'p' }, { prompt: convo.prompt, messages: convo.messages, completion: '149', where: 'c' }], 4096, { chatTemplateKwargs: { enable_thinking: false } });
  assert.deepEqual(plainEx, { promptIds: q.encode(plain.prompt), completionIds: [...q.encode('4', { addSpecialTokens: false }), q.eosTokenIds[0]] });
  const prompt = q.applyChatTemplate(convo.messages!, { addGenerationPrompt: true, kwargs: { enable_thinking: false } });
  assert.ok(prompt.endsWith('<|im_start|>assistant\n<think>\n\n</think>\n\n'));
  assert.deepEqual(convoEx!.promptIds, q.encode(prompt, { addSpecialTokens: false }));
  assert.deepEqual(convoEx!.completionIds, [...q.encode('149', { addSpecialTokens: false }), IM_END]);
  // thinking left on: the template writes an empty think block into the assistant turn, and SFT trains on it
  const [thinking] = tokenizeSft(q, [{ prompt: convo.prompt, messages: convo.messages, completion: '149', where: 'c' }], 4096);
  assert.equal(q.decode(thinking!.completionIds), '<think>\n\n</think>\n\n149<|im_end|>');
});
