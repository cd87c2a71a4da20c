// `opd generate --model DIR --prompt TEXT`: sample completions with the KV-cache generator.
// Repeat --prompt for a batch; --chat wraps each prompt in the tokenizer's chat template (as one
// user turn, + generation prompt, encoded without adding specials as transformers does).
// Conversational --input records (TRL prompt lists, a "messages" column) are always rendered with the
// template (data/chat.ts); --chat-template-kwargs JSON reaches it (e.g. {"enable_thinking": false}).
// Sampling stops at every EOS id, and at the template's end of turn when a template is used.
// Prints one completion per prompt; --json prints tokens, log-probs and the finish reason too.
// --input FILE takes the prompts from a prompt file (JSONL/Parquet/Arrow, a "prompt" field per
// record, as data.path reads them; a malformed record fails naming its line) and prints exactly one
// JSON line per record, in file order: {id, prompt, completion, finish_reason, truncated} (+ tokens
// and logprobs with --json), decoded --batch-size prompts at a time.
// --max-new-tokens defaults to 64, cut to what the model's context leaves after the longest prompt
// (a note on stderr says so); a prompt that leaves no room at all is an error naming it.

import { Rng } from '../../../engine/rng.ts';
import { loadPrompts } from '../../../data/sources/index.ts';
import { loadTokenizer } from '../../../data/tokenizer/hf.ts';
import { Generator, stopTokenIds } from '../../../student/generate/generate.ts';
import { chatStopIds, encodePrompt, usesTemplate } from '../../../data/chat.ts';
import type { TaskRecord } from '../../../data/tasks/types.ts';
import { weightFeeds } from '../../../student/model/runner.ts';
import { loadModelDir } from '../../../student/model/weights.ts';
import { createProgress } from '../../progress.ts';
import { chatFrom, flag, num, runtimeFrom, runtimeOptions, str } from '../args.ts';
import { type Command, UsageError, type Values } from '../command.ts';

const DEFAULT_MAX_NEW_TOKENS = 64;

/**
 * --max-new-tokens as given, else 64 cut to `context` (max_position_embeddings) minus the longest
 * prompt, with a note saying so; throws when the longest prompt fills the context.
 */
export function maxNewTokensFor(values: Values, context: number, promptLengths: readonly number[]): { maxNewTokens: number; note?: string } {
  if (values['max-new-tokens'] !== undefined) return { maxNewTokens: num(values, 'max-new-tokens', DEFAULT_MAX_NEW_TOKENS, { int: true, min: 1 }) };
  const longest = Math.max(...promptLengths);
  const room = context - longest;
  if (room < 1) {
    const i = promptLengths.indexOf(longest);
    throw new Error(`prompt ${i} has ${longest} tokens, and the model's context (max_position_embeddings) is ${context}: no room to generate; prompts are never cut, so shorten it`);
  }
  if (room >= DEFAULT_MAX_NEW_TOKENS) return { maxNewTokens: DEFAULT_MAX_NEW_TOKENS };
  return { maxNewTokens: room, note: `generate: --max-new-tokens ${room} (default ${DEFAULT_MAX_NEW_TOKENS}, cut to the model's context ${context} − the longest prompt's ${longest} tokens)` };
}

export const generate: Command = {
  name: 'generate',
  summary: 'sample completions from a model (KV cache, temperature / top-k / top-p, seeded)',
  usage: 'generate --model DIR (--prompt TEXT [--prompt TEXT ...] | --input FILE.jsonl [--batch-size 64]) [--max-new-tokens 64] [--temperature 0] [--top-k K] [--top-p P] [--seed 0] [--chat] [--chat-template-kwargs JSON] [--json]',
  options: {
    model: { type: 'string' }, prompt: { type: 'string', multiple: true }, input: { type: 'string' }, 'batch-size': { type: 'string' }, 'max-new-tokens': { type: 'string' }, temperature: { type: 'string' },
    'top-k': { type: 'string' }, 'top-p': { type: 'string' }, seed: { type: 'string' }, chat: { type: 'boolean' }, 'chat-template-kwargs': { type: 'string' }, json: { type: 'boolean' }, ...runtimeOptions,
  },
  async run({ values }) {
    const dir = str(values, 'model');
    const input = str(values, 'input', null);
    if (input !== null && values.prompt !== undefined) throw new UsageError('give --prompt or --input FILE, not both');
    const records = input === null ? null : (await loadPrompts(input, { requireAnswer: false, maxRejectFraction: 0, name: '--input' })).records;
    const prompts = records?.map((r) => r.prompt) ?? (values.prompt as string[] | undefined) ?? [];
    if (prompts.length === 0) throw new UsageError('--prompt is required (repeat it for a batch), or --input FILE.jsonl');
    const batchSize = num(values, 'batch-size', 64, { int: true, min: 1 });
    const [model, tok] = await Promise.all([loadModelDir(dir), loadTokenizer(dir)]);
    const chat = chatFrom({ 'chat-template': flag(values, 'chat') ? 'always' : 'auto', 'chat-template-kwargs': values['chat-template-kwargs'] });
    const asRecords: Pick<TaskRecord, 'prompt' | 'messages'>[] = records ?? prompts.map((prompt) => ({ prompt }));
    const ids = asRecords.map((r) => encodePrompt(tok, r, chat));
    const templated = asRecords.some((r) => usesTemplate(r, chat));
    const feeds = weightFeeds(model.config, model.weights);
    const gen = await Generator.create(model.config, () => feeds, runtimeFrom(values));
    try {
      const topK = values['top-k'] === undefined ? undefined : num(values, 'top-k', 0, { int: true, min: 1 });
      const topP = values['top-p'] === undefined ? undefined : num(values, 'top-p', 1, { min: 1e-9, max: 1 });
      const limit = maxNewTokensFor(values, model.config.maxPositionEmbeddings, ids.map((p) => p.length));
      if (limit.note) console.error(limit.note);
      const options = {
        maxNewTokens: limit.maxNewTokens,
        temperature: num(values, 'temperature', 0, { min: 0 }),
        topK,
        topP,
        stopTokenIds: chatStopIds(tok, stopTokenIds(tok, model.config), templated, chat.chatTemplateKwargs),
        rng: new Rng(num(values, 'seed', 0, { int: true, min: 0 })),
        padId: tok.padTokenId ?? tok.eosTokenIds[0] ?? 0,
      };
      // --input: batches, and a bar on stderr while stdout goes to a file or pipe
      const size = records ? batchSize : ids.length;
      const progress = createProgress({ total: ids.length, start: 0, label: 'generate', unit: 'prompts', tty: records && !process.stdout.isTTY ? undefined : false });
      try {
        for (let at = 0; at < ids.length; at += size) {
          const out = await gen.generate(ids.slice(at, at + size), options);
          out.forEach((c, j) => {
            const i = at + j;
            const text = tok.decode(c.tokens, { skipSpecialTokens: true });
            const json = flag(values, 'json');
            if (records || json)
              console.log(JSON.stringify({ ...(records ? { id: records[i]!.id } : {}), prompt: prompts[i], completion: text, ...(json ? { tokens: c.tokens, logprobs: c.logprobs } : {}), finish_reason: c.finishReason, truncated: c.truncated }));
            else console.log(prompts.length > 1 ? `[${i}] ${text}` : text);
          });
          progress.update(Math.min(at + size, ids.length), '');
        }
      } finally {
        progress.stop();
      }
    } finally {
      await gen.release();
    }
  },
};
