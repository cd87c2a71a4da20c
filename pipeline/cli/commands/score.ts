// `opd score --model DIR --input F.jsonl`: per-token log-probs of each record, as JSON lines.
// `--teacher <dir|.onnx|url>` scores through a teacher backend instead (a local model in a worker,
// any ONNX causal LM, or a vLLM/SGLang-compatible server; a URL needs --tokenizer DIR, and
// --served-model defaults to the one model the server's /v1/models lists, as vLLM clients do).
// A record is {"prompt", "completion"} (the completion's tokens are scored) or {"text"} (every
// token after the first), in JSONL, Parquet or Arrow. Conversational records — TRL conversational
// prompt/completion lists, or a "messages" column whose final assistant turn is scored — are
// rendered with the tokenizer's chat template (--chat-template auto|none|always,
// --chat-template-kwargs JSON): the prompt with the generation prompt, and the assistant turn as
// the template writes it through its end of turn, which is scored too (data/chat.ts). A malformed
// record is an error naming its line, or with --rejects FILE is written there and skipped.
// Output lines: {"line" (JSONL) or "row" (Parquet/Arrow), "ids", "logprobs"[, "top_ids",
// "top_logprobs"]}, where ids are the scored tokens.

import { createWriteStream } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { encodeAssistantReply, encodePrompt, type PromptRenderOptions, usesTemplate } from '../../../data/chat.ts';
import { DEFAULT_FIELDS, FORMATS, formatOf, type Reject } from '../../../data/sources/index.ts';
import { previewText, toTaskRecord } from '../../../data/sources/record.ts';
import { loadTokenizer } from '../../../data/tokenizer/hf.ts';
import type { Tokenizer } from '../../../data/tokenizer/types.ts';
import { loadModelDir } from '../../../student/model/weights.ts';
import { weightFeeds } from '../../../student/model/runner.ts';
import { type ScoreRequest, type ScoreResult, Scorer } from '../../../student/model/scorer.ts';
import { openTeacher } from '../../../teacher/open.ts';
import { chatFrom, chatOptions, inputFile, num, runtimeFrom, runtimeOptions, str } from '../args.ts';
import { type Command, UsageError, type Values } from '../command.ts';

/** Token ids and the first scored position of one record; errors name the file and line. */
export function recordToRequest(tok: Tokenizer, rec: Record<string, unknown>, where: string, chat: PromptRenderOptions = {}): ScoreRequest {
  if (typeof rec.text === 'string') {
    const ids = tok.encode(rec.text);
    if (ids.length < 2) throw new Error(`${where}: "text" has ${ids.length} token(s); at least 2 are needed to score one`);
    return { ids, start: 1 };
  }
  const conversational = (typeof rec.prompt === 'object' && rec.prompt !== null) || (rec.prompt === undefined && rec.messages !== undefined && rec.messages !== null);
  const plainPair = typeof rec.prompt === 'string' && typeof rec.completion === 'string';
  if (!conversational && !(plainPair && usesTemplate({}, chat))) {
    if (!plainPair) throw new Error(`${where}: expected {"prompt": string, "completion": string}, {"text": string}, a conversational prompt/completion or a "messages" list, got keys ${JSON.stringify(Object.keys(rec))}`);
    // plain strings: exactly as before
    const prompt = tok.encode(rec.prompt as string);
    const completion = tok.encode(rec.completion as string, { addSpecialTokens: false });
    if (prompt.length === 0) throw new Error(`${where}: "prompt" encodes to no tokens`);
    return { ids: [...prompt, ...completion], start: prompt.length };
  }
  const r = toTaskRecord(rec, DEFAULT_FIELDS, false, where, { completion: true });
  if ('reason' in r) throw new Error(`${where}: ${r.reason}`);
  const prompt = encodePrompt(tok, r.record, chat);
  const completion = usesTemplate(r.record, chat) ? encodeAssistantReply(tok, r.record, r.completion!, chat) : tok.encode(r.completion!, { addSpecialTokens: false });
  if (prompt.length === 0) throw new Error(`${where}: "prompt" encodes to no tokens`);
  return { ids: [...prompt, ...completion], start: prompt.length };
}

/** Every record of `file` as a request; malformed ones go to `rejects` when given (else they throw). */
async function readRequests(tok: Tokenizer, file: string, chat: PromptRenderOptions, rejects: Reject[] | null) {
  const reader = FORMATS[formatOf(file)];
  const out: { at: number; req: ScoreRequest }[] = [];
  for await (const row of reader.read(file)) {
    const where = `${file}:${reader.unit === 'line' ? '' : 'row '}${row.index}`;
    try {
      if ('problem' in row) throw new Error(`${where}: ${row.problem.reason}`);
      out.push({ at: row.index, req: recordToRequest(tok, row.value, where, chat) });
    } catch (e) {
      if (!rejects) throw e;
      const text = 'problem' in row ? row.problem.text : previewText(row.value);
      rejects.push({ source: file, [reader.unit]: row.index, reason: (e as Error).message.slice(where.length + 2), text });
    }
  }
  return { unit: reader.unit, out };
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
  summary: 'per-token log-probs of records (JSONL/Parquet/Arrow, plain or conversational) under a model',
  usage: 'score (--model DIR | --teacher DIR|F.onnx|URL [--tokenizer DIR] [--served-model NAME]) --input F.jsonl|.parquet|.arrow [--output OUT.jsonl] [--rejects FILE] [--chat-template auto|none|always] [--chat-template-kwargs JSON] [--top-k K] [--temperature T] [--device cpu] [--threads N]',
  options: { model: { type: 'string' }, teacher: { type: 'string' }, tokenizer: { type: 'string' }, 'served-model': { type: 'string' }, input: { type: 'string' }, output: { type: 'string' }, rejects: { type: 'string' }, 'top-k': { type: 'string' }, temperature: { type: 'string' }, ...runtimeOptions, ...chatOptions },
  async run({ values }) {
    if (!!values.model === !!values.teacher) throw new UsageError('give exactly one of --model DIR or --teacher DIR|F.onnx|URL');
    const input = inputFile(values, 'input');
    const topK = num(values, 'top-k', 0, { int: true, min: 0 });
    const temperature = num(values, 'temperature', 1, { min: 1e-6 });
    const chat = chatFrom(values);
    const rejectsFile = str(values, 'rejects', null);
    const rejects: Reject[] | null = rejectsFile ? [] : null;
    const { tok, score, close } = await backend(values, topK, temperature);
    let read, reqs, results;
    try {
      read = await readRequests(tok, input, chat, rejects);
      reqs = read.out.map((x) => x.req);
      results = await score(reqs);
    } finally {
      await close();
    }
    if (rejectsFile) {
      await writeFile(rejectsFile, rejects!.map((r) => JSON.stringify(r) + '\n').join(''));
      if (rejects!.length) console.error(`${input}: ${rejects!.length} record(s) rejected and not scored (see ${rejectsFile})`);
    }
    const outFile = str(values, 'output', null);
    const sink = outFile ? createWriteStream(outFile) : process.stdout;
    results.forEach((res, i) => {
      const ids = reqs[i]!.ids.slice(reqs[i]!.start);
      const line: Record<string, unknown> = { [read.unit]: read.out[i]!.at, ids, logprobs: res.logprobs };
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
