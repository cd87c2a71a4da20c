// `opd score --model DIR --input F.jsonl`: per-token log-probs of each record, as JSON lines.
// A record is {"prompt", "completion"} (the completion's tokens are scored) or {"text"} (every
// token after the first). Output lines: {"line", "ids", "logprobs"[, "top_ids", "top_logprobs"]},
// where ids are the scored tokens.

import { createWriteStream } from 'node:fs';
import { readAllJsonl } from '../../../data/jsonl.ts';
import { loadTokenizer } from '../../../data/tokenizer/hf.ts';
import type { Tokenizer } from '../../../data/tokenizer/types.ts';
import { loadModelDir } from '../../../student/model/weights.ts';
import { weightFeeds } from '../../../student/model/runner.ts';
import { type ScoreRequest, Scorer } from '../../../student/model/scorer.ts';
import { num, runtimeFrom, runtimeOptions, str } from '../args.ts';
import type { Command } from '../command.ts';

/** Token ids and the first scored position of one record; errors name the file and line. */
export function recordToRequest(tok: Tokenizer, rec: Record<string, unknown>, where: string): ScoreRequest {
  if (typeof rec.text === 'string') {
    const ids = tok.encode(rec.text);
    if (ids.length < 2) throw new Error(`${where}: "text" has ${ids.length} token(s); at least 2 are needed to score one`);
    return { ids, start: 1 };
  }
  if (typeof rec.prompt === 'string' && typeof rec.completion === 'string') {
    const prompt = tok.encode(rec.prompt);
    const completion = tok.encode(rec.completion, { addSpecialTokens: false });
    if (prompt.length === 0) throw new Error(`${where}: "prompt" encodes to no tokens`);
    return { ids: [...prompt, ...completion], start: prompt.length };
  }
  throw new Error(`${where}: expected {"prompt": string, "completion": string} or {"text": string}, got keys ${JSON.stringify(Object.keys(rec))}`);
}

export const score: Command = {
  name: 'score',
  summary: 'per-token log-probs of JSONL records under a model',
  usage: 'score --model DIR --input F.jsonl [--output OUT.jsonl] [--top-k K] [--temperature T] [--device cpu] [--threads N]',
  options: { model: { type: 'string' }, input: { type: 'string' }, output: { type: 'string' }, 'top-k': { type: 'string' }, temperature: { type: 'string' }, ...runtimeOptions },
  async run({ values }) {
    const dir = str(values, 'model');
    const input = str(values, 'input');
    const topK = num(values, 'top-k', 0, { int: true, min: 0 });
    const [model, tok] = await Promise.all([loadModelDir(dir), loadTokenizer(dir)]);
    const records = await readAllJsonl(input);
    const reqs = records.map((r) => recordToRequest(tok, r.value, `${input}:${r.line}`));
    const feeds = weightFeeds(model.config, model.weights);
    const scorer = await Scorer.create(model.config, () => feeds, { ...runtimeFrom(values), topK, temperature: num(values, 'temperature', 1, { min: 1e-6 }) });
    const results = await scorer.score(reqs);
    await scorer.release();
    const outFile = str(values, 'output', null);
    const sink = outFile ? createWriteStream(outFile) : process.stdout;
    results.forEach((res, i) => {
      const ids = reqs[i]!.ids.slice(reqs[i]!.start);
      const line: Record<string, unknown> = { line: records[i]!.line, ids, logprobs: res.logprobs };
      if (topK) Object.assign(line, { top_ids: res.topIds, top_logprobs: res.topLogprobs });
      sink.write(JSON.stringify(line) + '\n');
    });
    if (outFile) await new Promise<void>((resolve, reject) => (sink as ReturnType<typeof createWriteStream>).end((e?: Error | null) => (e ? reject(e) : resolve())));
  },
};
