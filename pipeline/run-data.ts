// A run's prompts from its config, train and held-out, and the rule its accuracy counts by: one path
// for built-in tasks and prompt files, so `opd run`, `opd compare` and `opd eval --config` train on
// and evaluate the same records the same way.
//
//   task data   train: task.generate('train', data.trainSize ?? promptsPerStep × steps, run.seed)
//               held-out: task.generate('test', run.evalPrompts, run.seed); correct = exact answer
//   prompt file train: data.path, less the held-out records when data.test is a fraction
//               held-out: data.test's file, or that fraction of data.path chosen by run.seed
//               (data/sources/split.ts), cut to its first run.evalPrompts records; correct = reward
//               ≥ run.accuracyThreshold. No data.test: no held-out set.
//
// Both files are read with the same options (format, fields, requireAnswer, maxPromptTokens,
// onTooLong, maxRejectFraction, chatTemplate: prompt lengths count the rendered template); with `rejectsDir` their rejects go to rejects.jsonl and
// rejects-test.jsonl there. Relative paths resolve against the current directory, like data.path.

import { join } from 'node:path';
import { encodePrompt } from '../data/chat.ts';
import { holdOut, loadPrompts } from '../data/sources/index.ts';
import type { LoadResult } from '../data/sources/index.ts';
import { createTask } from '../data/tasks/registry.ts';
import type { TaskRecord } from '../data/tasks/types.ts';
import type { Tokenizer } from '../data/tokenizer/types.ts';
import type { RunConfig } from './config.ts';
import { type CorrectFn, exactAnswer, rewardAtLeast } from './eval.ts';

export interface RunData {
  train: TaskRecord[];
  /** The held-out records each evaluation decodes (at most run.evalPrompts); empty without a held-out split. */
  test: TaskRecord[];
  correct: CorrectFn;
  /** How accuracy is counted, for logs and summary.json: "exact answer" or "reward >= 1". */
  accuracyRule: string;
  /** Set for prompt files: the reward a completion needs to count as correct. */
  accuracyThreshold?: number;
  /** What loading found worth a log line: per-file summaries, the cut to evalPrompts, shared prompts. */
  notes: string[];
}

type FileData = Extract<RunConfig['data'], { path: string }>;

/** The train and held-out records of `c`, `tokenizer` measuring prompt lengths; see the header. */
export async function loadRunData(c: RunConfig, tokenizer: Tokenizer, o: { rejectsDir?: string; contextLimit?: ContextLimit } = {}): Promise<RunData> {
  if ('task' in c.data) {
    const task = createTask(c.data.task, c.data.taskConfig);
    const train = task.generate('train', c.data.trainSize ?? c.rollout.promptsPerStep * c.run.steps, c.run.seed);
    const test = task.generate('test', c.run.evalPrompts, c.run.seed);
    if (o.contextLimit) for (const [split, recs] of [['train', train], ['test', test]] as const) checkContext(`data.task ${c.data.task} (${split})`, recs, tokenizer, c, o.contextLimit);
    return { train, test, correct: exactAnswer, accuracyRule: 'exact answer', notes: [] };
  }
  const d = c.data;
  const load = (file: string, rejects: string, name = 'data.path') => loadPrompts(file, {
    format: d.format, fields: d.fields, requireAnswer: d.requireAnswer, maxRejectFraction: d.maxRejectFraction, onTooLong: d.onTooLong,
    maxPromptLength: d.maxPromptTokens, tokenizer, chat: { chatTemplate: d.chatTemplate, chatTemplateKwargs: d.chatTemplateKwargs }, rejectsFile: o.rejectsDir ? join(o.rejectsDir, rejects) : undefined, name, limitName: 'data.maxPromptTokens', contextLimit: o.contextLimit,
  });
  const loaded = await load(d.path, 'rejects.jsonl');
  const notes = [loaded.summary];
  const { train, test } = await heldOutOf(d, loaded, c.run.seed, (f) => load(f, 'rejects-test.jsonl', 'data.test'), notes);
  const threshold = c.run.accuracyThreshold;
  if (test.length > c.run.evalPrompts) notes.push(`held-out: evaluating the first ${c.run.evalPrompts} of ${test.length} records (run.evalPrompts)`);
  return { train, test: test.slice(0, c.run.evalPrompts), correct: rewardAtLeast(threshold), accuracyRule: `reward >= ${threshold}`, accuracyThreshold: threshold, notes };
}

/** The most prompt tokens generation can take: max_position_embeddings − rollout.maxNewTokens, and how it is made up. */
export interface ContextLimit {
  tokens: number;
  what: string;
}

export function contextLimitOf(maxPositionEmbeddings: number, c: RunConfig): ContextLimit {
  return { tokens: maxPositionEmbeddings - c.rollout.maxNewTokens, what: `the student's max_position_embeddings ${maxPositionEmbeddings} − rollout.maxNewTokens ${c.rollout.maxNewTokens}` };
}

/** Built-in task records: every prompt within the context, or an error naming the record. */
function checkContext(source: string, records: readonly TaskRecord[], tokenizer: Tokenizer, c: RunConfig, limit: ContextLimit): void {
  const chat = { chatTemplate: c.data.chatTemplate, chatTemplateKwargs: c.data.chatTemplateKwargs };
  for (const r of records) {
    const n = encodePrompt(tokenizer, r, chat).length;
    if (n > limit.tokens) throw new Error(`${source} record ${JSON.stringify(r.id)}: the prompt has ${n} tokens, more than the ${limit.tokens} the model can take (${limit.what}); prompts are never sliced: lower rollout.maxNewTokens or use a model with a longer context`);
  }
}

/** Split off the held-out records: a fraction of the train file, or a file of their own. */
async function heldOutOf(d: FileData, loaded: LoadResult, seed: number, load: (file: string) => Promise<LoadResult>, notes: string[]) {
  if (d.test === undefined) return { train: loaded.records, test: [] };
  if (typeof d.test === 'number') {
    const split = holdOut(loaded.records, d.test, seed);
    notes.push(`held-out: ${split.test.length} of ${loaded.records.length} records of ${d.path} (data.test ${d.test}, run.seed ${seed}); training on the other ${split.train.length}`);
    return split;
  }
  const test = await load(d.test);
  notes.push(test.summary);
  const trainPrompts = new Set(loaded.records.map((r) => r.prompt));
  const shared = test.records.filter((r) => trainPrompts.has(r.prompt)).length;
  if (shared > 0) notes.push(`warning: ${shared} of ${test.records.length} held-out prompts in ${d.test} also appear in ${d.path} and are trained on`);
  return { train: loaded.records, test: test.records };
}
