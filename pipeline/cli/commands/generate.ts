// `opd generate --model DIR --prompt TEXT`: sample completions with the KV-cache generator.
// Repeat --prompt for a batch; --chat wraps each prompt in the tokenizer's chat template.
// Prints one completion per prompt; --json prints tokens, log-probs and the finish reason too.

import { Rng } from '../../../engine/rng.ts';
import { loadTokenizer } from '../../../data/tokenizer/hf.ts';
import { Generator, stopTokenIds } from '../../../student/generate/generate.ts';
import { weightFeeds } from '../../../student/model/runner.ts';
import { loadModelDir } from '../../../student/model/weights.ts';
import { flag, num, runtimeFrom, runtimeOptions, str } from '../args.ts';
import { type Command, UsageError } from '../command.ts';

export const generate: Command = {
  name: 'generate',
  summary: 'sample completions from a model (KV cache, temperature / top-k / top-p, seeded)',
  usage: 'generate --model DIR --prompt TEXT [--prompt TEXT ...] [--max-new-tokens 64] [--temperature 0] [--top-k K] [--top-p P] [--seed 0] [--chat] [--json]',
  options: {
    model: { type: 'string' }, prompt: { type: 'string', multiple: true }, 'max-new-tokens': { type: 'string' }, temperature: { type: 'string' },
    'top-k': { type: 'string' }, 'top-p': { type: 'string' }, seed: { type: 'string' }, chat: { type: 'boolean' }, json: { type: 'boolean' }, ...runtimeOptions,
  },
  async run({ values }) {
    const dir = str(values, 'model');
    const prompts = (values.prompt as string[] | undefined) ?? [];
    if (prompts.length === 0) throw new UsageError('--prompt is required (repeat it for a batch)');
    const [model, tok] = await Promise.all([loadModelDir(dir), loadTokenizer(dir)]);
    const texts = flag(values, 'chat') ? prompts.map((p) => tok.applyChatTemplate([{ role: 'user', content: p }], { addGenerationPrompt: true })) : prompts;
    const ids = texts.map((t) => tok.encode(t));
    const feeds = weightFeeds(model.config, model.weights);
    const gen = await Generator.create(model.config, () => feeds, runtimeFrom(values));
    try {
      const topK = values['top-k'] === undefined ? undefined : num(values, 'top-k', 0, { int: true, min: 1 });
      const topP = values['top-p'] === undefined ? undefined : num(values, 'top-p', 1, { min: 1e-9, max: 1 });
      const out = await gen.generate(ids, {
        maxNewTokens: num(values, 'max-new-tokens', 64, { int: true, min: 1 }),
        temperature: num(values, 'temperature', 0, { min: 0 }),
        topK,
        topP,
        stopTokenIds: stopTokenIds(tok, model.config),
        rng: new Rng(num(values, 'seed', 0, { int: true, min: 0 })),
        padId: tok.padTokenId ?? tok.eosTokenIds[0] ?? 0,
      });
      out.forEach((c, i) => {
        const text = tok.decode(c.tokens, { skipSpecialTokens: true });
        if (flag(values, 'json')) console.log(JSON.stringify({ prompt: prompts[i], completion: text, tokens: c.tokens, logprobs: c.logprobs, finish_reason: c.finishReason, truncated: c.truncated }));
        else console.log(prompts.length > 1 ? `[${i}] ${text}` : text);
      });
    } finally {
      await gen.release();
    }
  },
};
