// Held-out evaluation: decode every prompt of a held-out set (greedy by default), then score each
// completion two ways — a reward and a correctness rule. `evaluate` is a built-in task's split
// scored with the task's reward and exact answers; `evaluateRecords` is any records (a prompt
// file's test split) with any reward, e.g. the run's own, and any rule, e.g. reward ≥ a threshold.
//
// Contracts:
// - Prompts are encoded as SFT encodes them (data/chat.ts encodePrompt: a plain prompt with the
//   tokenizer's own specials, e.g. BOS; a conversational record through the model's chat template,
//   as `chat` says), completions decoded with special tokens skipped (the reward contract,
//   data/rewards/types.ts), so rewards never see template tokens.
// - A row stops at the tokenizer's or the model's EOS (and the template's end of turn when prompts
//   are rendered with it); a row that hits maxNewTokens without one is
//   scored on what it produced (its text usually fails the check).
// - Correct ⇔ extractAnswer(completion) is a plain decimal number ("-12", "3.5") numerically equal
//   to record.answer. Stricter than numeric_match, which takes the first number anywhere in the
//   answer part ("12 apples" is rewarded, not correct): accuracy counts exact answers only. A
//   non-numeric answer (no built-in task has one) must match the answer part exactly. Data with
//   no exact answer (a prompt file scored by a user reward) uses rewardAtLeast(threshold) instead.
// - One Generator for the whole evaluation (its sessions are compiled once); a Generator passed in
//   is reused and left open, so a training loop can evaluate with its own.
// - temperature > 0 samples with an Rng seeded from `seed`; the default 0 is greedy and needs none.
// Leaves out: pass@k / several samples per prompt.

import { Rng } from '../engine/rng.ts';
import { chatStopIds, encodePrompt, type PromptRenderOptions, usesTemplate } from '../data/chat.ts';
import { combine, type RewardFn } from '../data/rewards/index.ts';
import { extractAnswer } from '../data/tasks/answer.ts';
import type { Split, Task, TaskRecord } from '../data/tasks/types.ts';
import type { Tokenizer } from '../data/tokenizer/types.ts';
import { Generator, type GeneratorOptions, PromptError, stopTokenIds } from '../student/generate/generate.ts';
import type { ModelConfig } from '../student/model/config.ts';
import { type WeightSource, weightFeeds } from '../student/model/runner.ts';
import type { Weights } from '../student/model/weights.ts';

/** What to evaluate: loaded weights, a live weight source (e.g. a trainer's), or an open Generator. */
export type EvalModel = Generator | { config: ModelConfig; weights: Weights | WeightSource };

/** When a completion counts as correct, given the reward it got. */
export type CorrectFn = (record: TaskRecord, completion: string, reward: number) => boolean;

/** What a held-out set is scored with. */
export interface Scoring {
  reward: RewardFn;
  correct: CorrectFn;
}

/** Built-in tasks: the completion's answer part is exactly the record's answer (isCorrect). */
export const exactAnswer: CorrectFn = (record, completion) => isCorrect(completion, record.answer);

/** Data without an exact-answer check (a prompt file and a user reward): correct ⇔ reward ≥ threshold. */
export const rewardAtLeast = (threshold: number): CorrectFn => (_record, _completion, reward) => reward >= threshold;

/** How to decode and report a held-out set. */
export interface DecodeOptions {
  /** Seed of sampling when temperature > 0 (and, in `evaluate`, of task.generate). */
  seed: number;
  /** Prompts per generate call; default 64. */
  batchSize?: number;
  /** Most completion tokens per prompt (EOS included); default 16. */
  maxNewTokens?: number;
  /** Sampling temperature; default 0 (greedy). */
  temperature?: number;
  /** How many samples (the first ones, in record order) to return; default 5. */
  keepSamples?: number;
  /** Runtime of the Generator built here (ignored when a Generator is passed). */
  runtime?: GeneratorOptions;
  /** How prompts are rendered (data.chatTemplate / chatTemplateKwargs); default 'auto'. */
  chat?: PromptRenderOptions;
  /** Called after each batch with the problems done so far, the total and how many were correct (a progress bar). */
  onBatch?: (done: number, total: number, correct: number) => void;
}

export interface EvalOptions extends DecodeOptions {
  /** Split to draw from; default 'test' (held out from every train seed by construction). */
  split?: Split;
  /** Number of problems (distinct prompts). */
  n: number;
  /** Explicit records instead of task.generate(split, n, seed); n and split are then ignored. */
  records?: readonly TaskRecord[];
}

/** One evaluated problem. */
export interface EvalSample {
  id: string;
  prompt: string;
  /** Decoded with special tokens skipped. */
  completion: string;
  answer: string;
  correct: boolean;
  reward: number;
  /** Hit maxNewTokens without EOS. */
  truncated: boolean;
}

export interface EvalResult {
  /** Fraction of problems the correctness rule accepts (exact answers for tasks), in [0, 1]. */
  accuracy: number;
  /** Mean reward over the problems. */
  meanReward: number;
  n: number;
  correct: number;
  /** Fraction of completions that hit maxNewTokens without EOS. */
  truncatedRate: number;
  /** Accuracy per record tag (e.g. add / sub), for tasks that tag records. */
  byTag: Record<string, { n: number; accuracy: number }>;
  /** The first `keepSamples` problems, in record order. */
  samples: EvalSample[];
  /** Wall time of generation plus scoring, seconds (session creation excluded). */
  seconds: number;
}

const PLAIN_NUMBER = /^-?\d+(?:\.\d+)?$/;

/** Exact correctness: the completion's answer part is a plain number equal to `answer` (or, for a non-numeric answer, the same text). */
export function isCorrect(completion: string, answer: string): boolean {
  const got = extractAnswer(completion);
  const want = answer.trim();
  if (!PLAIN_NUMBER.test(want)) return got === want;
  return PLAIN_NUMBER.test(got) && Number(got) === Number(want);
}

/** Decode `task`'s held-out prompts with `model` and score them with the task's reward and exact answers. */
export async function evaluate(model: EvalModel, tok: Tokenizer, task: Task, o: EvalOptions): Promise<EvalResult> {
  const records = o.records ?? task.generate(o.split ?? 'test', o.n, o.seed);
  return evaluateRecords(model, tok, records, { reward: await combine(task.reward, { tokenizer: tok }), correct: exactAnswer }, o);
}

/** Decode `records` with `model` and score each completion with `scoring`; see the file header. */
export async function evaluateRecords(model: EvalModel, tok: Tokenizer, records: readonly TaskRecord[], scoring: Scoring, o: DecodeOptions): Promise<EvalResult> {
  const { batchSize = 64, maxNewTokens = 16, temperature = 0, keepSamples = 5 } = o;
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new RangeError(`evaluate: batchSize must be an integer >= 1, got ${batchSize}`);
  if (records.length === 0) throw new Error('evaluate: no records to evaluate');
  const own = !(model instanceof Generator);
  const gen = own ? await Generator.create(model.config, asSource(model.config, model.weights), o.runtime) : model;
  const stops = chatStopIds(tok, stopTokenIds(tok, gen.config), records.some((r) => usesTemplate(r, o.chat)), o.chat?.chatTemplateKwargs);
  if (stops.length === 0) throw new Error('evaluate: neither the tokenizer nor the model config names an EOS token to stop on');
  const padId = tok.padTokenId ?? stops[0]!;
  const rng = new Rng(o.seed);
  const t0 = performance.now();
  const samples: EvalSample[] = [];
  try {
    for (let start = 0; start < records.length; start += batchSize) {
      const batch = records.slice(start, start + batchSize);
      let out: Awaited<ReturnType<Generator['generate']>>;
      try {
        out = await gen.generate(batch.map((r) => encodePrompt(tok, r, o.chat)), { maxNewTokens, temperature, stopTokenIds: stops, rng, padId });
      } catch (e) {
        throw named(e, e instanceof PromptError && batch[e.row] ? `record ${JSON.stringify(batch[e.row]!.id)}` : batchName(batch));
      }
      for (const [i, r] of batch.entries()) {
        const completion = tok.decode(out[i]!.tokens, { skipSpecialTokens: true });
        let reward: number;
        try {
          reward = await scoring.reward(r.prompt, completion, r);
        } catch (e) {
          throw named(e, `record ${JSON.stringify(r.id)}`);
        }
        samples.push({ id: r.id, prompt: r.prompt, completion, answer: r.answer, correct: scoring.correct(r, completion, reward), reward, truncated: out[i]!.truncated });
      }
      o.onBatch?.(samples.length, records.length, samples.reduce((a, x) => a + (x.correct ? 1 : 0), 0));
    }
  } finally {
    if (own) await gen.release();
  }
  return summarize(records, samples, keepSamples, (performance.now() - t0) / 1000);
}

/** An evaluation error that says which records it came from (the error keeps its class). */
function named(e: unknown, which: string): unknown {
  if (e instanceof Error) e.message = `evaluating ${which}: ${e.message}`;
  return e;
}

const batchName = (batch: readonly TaskRecord[]) =>
  batch.length === 1 ? `record ${JSON.stringify(batch[0]!.id)}` : `the batch of ${batch.length} records ${JSON.stringify(batch[0]!.id)} … ${JSON.stringify(batch.at(-1)!.id)}`;

/** One JSON line per sample (id, prompt, completion, answer, reward, correct, truncated): what an evaluation file holds. */
export function samplesJsonl(samples: readonly EvalSample[]): string {
  return samples.map((s) => JSON.stringify(s) + '\n').join('');
}

function asSource(c: ModelConfig, w: Weights | WeightSource): WeightSource {
  if (typeof w === 'function') return w;
  const feeds = weightFeeds(c, w);
  return () => feeds;
}

function summarize(records: readonly TaskRecord[], samples: EvalSample[], keep: number, seconds: number): EvalResult {
  const n = samples.length;
  const correct = samples.filter((s) => s.correct).length;
  const tags = new Map<string, { n: number; correct: number }>();
  records.forEach((r, i) => {
    if (r.tag === undefined) return;
    const t = tags.get(r.tag) ?? { n: 0, correct: 0 };
    t.n++;
    if (samples[i]!.correct) t.correct++;
    tags.set(r.tag, t);
  });
  return {
    accuracy: correct / n,
    meanReward: samples.reduce((a, s) => a + s.reward, 0) / n,
    n,
    correct,
    truncatedRate: samples.filter((s) => s.truncated).length / n,
    byTag: Object.fromEntries([...tags].map(([k, t]) => [k, { n: t.n, accuracy: t.correct / t.n }])),
    samples: samples.slice(0, keep),
    seconds,
  };
}
