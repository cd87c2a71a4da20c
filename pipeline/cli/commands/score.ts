// `opd score --model DIR --input F.jsonl`: per-token log-probs of each record, as JSON lines.
// `--teacher <dir|.onnx|url>` scores through a teacher backend instead (a local model in a worker,
// any ONNX causal LM, or a vLLM/SGLang-compatible server; a URL needs --tokenizer DIR, and
// --served-model defaults to the one model the server's /v1/models lists, as vLLM clients do).
// A record is {"prompt", "completion"} (the completion's tokens are scored) or {"text"} (every
// token after the first). Output lines: {"line", "ids", "logprobs"[, "top_ids", "top_logprobs"]},
// where ids are the scored tokens.

import { createWriteStream } from 'node:fs';
import { readAllJsonl } from '../../../data/jsonl.ts';
import { loadTokenizer } from '../../../data/tokenizer/hf.ts';
import type { Tokenizer } from '../../../data/tokenizer/types.ts';
import { loadModelDir } from '../../../student/model/weights.ts';
import { weightFeeds } from '../../../student/model/runner.ts';
import { type ScoreRequest, type ScoreResult, Scorer } from '../../../student/model/scorer.ts';
import { openTeacher } from '../../../teacher/open.ts';
import { inputFile, num, runtimeFrom, runtimeOptions, str } from '../args.ts';
import { type Command, UsageError, type Values } from '../command.ts';

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

/**
 * The model to request from the server at `url`: the only one its /v1/models lists. Several (or
 * none, or no answer) is an error saying so and asking for --served-model.
 */
export async function onlyServedModel(url: string, timeoutMs = 10_000): Promise<string> {
  const u = new URL(url);
  const where = `${u.origin}${u.pathname.replace(/\/+$/, '').replace(/\/v1$/, '')}/v1/models`;
  let ids: unknown;
  try {
    const res = await fetch(where, { signal: AbortSignal.timeout(timeoutMs) });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    const body = (await res.json()) as { data?: { id?: unknown }[] };
    ids = Array.isArray(body?.data) ? body.data.map((m) => m?.id).filter((id) => typeof id === 'string') : undefined;
  } catch (e) {
    throw new Error(`--teacher ${url}: cannot list the served models at ${where} (${(e as Error).message}); pass --served-model NAME`, { cause: e });
  }
  if (!Array.isArray(ids)) throw new Error(`--teacher ${url}: ${where} has no data[].id list of models; pass --served-model NAME`);
  if (ids.length === 1) return ids[0] as string;
  if (ids.length === 0) throw new Error(`--teacher ${url}: ${where} lists no models`);
  throw new UsageError(`--teacher ${url} serves ${ids.length} models (${ids.join(', ')}); choose one with --served-model NAME`);
}

export const score: Command = {
  name: 'score',
  summary: 'per-token log-probs of JSONL records under a model',
  usage: 'score (--model DIR | --teacher DIR|F.onnx|URL [--tokenizer DIR] [--served-model NAME]) --input F.jsonl [--output OUT.jsonl] [--top-k K] [--temperature T] [--device cpu] [--threads N]',
  options: { model: { type: 'string' }, teacher: { type: 'string' }, tokenizer: { type: 'string' }, 'served-model': { type: 'string' }, input: { type: 'string' }, output: { type: 'string' }, 'top-k': { type: 'string' }, temperature: { type: 'string' }, ...runtimeOptions },
  async run({ values }) {
    if (!!values.model === !!values.teacher) throw new UsageError('give exactly one of --model DIR or --teacher DIR|F.onnx|URL');
    const input = inputFile(values, 'input');
    const topK = num(values, 'top-k', 0, { int: true, min: 0 });
    const temperature = num(values, 'temperature', 1, { min: 1e-6 });
    const { tok, score, close } = await backend(values, topK, temperature);
    let records, reqs, results;
    try {
      records = await readAllJsonl(input);
      reqs = records.map((r) => recordToRequest(tok, r.value, `${input}:${r.line}`));
      results = await score(reqs);
    } finally {
      await close();
    }
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

type Backend = { tok: Tokenizer; score: (reqs: ScoreRequest[]) => Promise<ScoreResult[]>; close: () => Promise<void> };

/** The student's own scoring graph (--model) or a Teacher backend (--teacher). */
async function backend(values: Values, topK: number, temperature: number): Promise<Backend> {
  const model = str(values, 'model', null);
  const teacher = str(values, 'teacher', null);
  const rt = runtimeFrom(values);
  if (model) {
    const [m, tok] = await Promise.all([loadModelDir(model), loadTokenizer(model)]);
    const feeds = weightFeeds(m.config, m.weights);
    const scorer = await Scorer.create(m.config, () => feeds, { ...rt, topK, temperature });
    return { tok, score: (reqs) => scorer.score(reqs), close: () => scorer.release() };
  }
  if (/^https?:\/\//.test(teacher!)) {
    const tokDir = str(values, 'tokenizer', null);
    if (!tokDir) throw new UsageError('an HTTP teacher needs --tokenizer DIR to turn text into token ids');
    const served = str(values, 'served-model', null) ?? (await onlyServedModel(teacher!));
    const { teacher: t, tokenizer: tok } = await openTeacher({ kind: 'http', url: teacher!, servedModel: served, flavor: 'auto', temperature, tokenizer: tokDir }, { checkServer: false });
    return { tok, score: (reqs) => t.score(reqs, { topK }), close: () => t.close() };
  }
  const { teacher: t, tokenizer: tok } = await openTeacher({ kind: 'local', path: teacher!, topK, temperature, tokenizer: str(values, 'tokenizer', null) ?? undefined }, rt);
  return { tok, score: (reqs) => t.score(reqs, { topK }), close: () => t.close() };
}
