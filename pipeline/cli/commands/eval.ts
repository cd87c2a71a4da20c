// `opd eval --model DIR`: greedy-decode a held-out set and print its accuracy and mean reward
// (pipeline/eval.ts), batched, with a progress bar on a terminal. The held-out set is one of
//   --task NAME              a built-in task's split; its reward, exact answers
//   --data FILE --reward R   a prompt file (JSONL/Parquet/Arrow); reward R (a module path or a
//                            built-in name, repeatable: summed); correct ⇔ reward ≥ --threshold (1)
//   --config RUN.json        what `opd run` evaluates: the config's data.test (or task test split,
//                            first run.evalPrompts), rewards, accuracy rule and rollout.maxNewTokens;
//                            --data / --reward / --threshold replace the config's
// A prompt file may be conversational (TRL prompt lists or a "messages" column, data/sources/
// conversation.ts): such records are rendered with the model's chat template; --chat-template
// auto|none|always and --chat-template-kwargs JSON (default: the config's data.chatTemplate*) say how.
// --json prints one JSON object; --out FILE writes every completion with its reward and verdict.

import { existsSync, writeFileSync } from 'node:fs';
import { combine, REWARDS, type RewardTerm } from '../../../data/rewards/index.ts';
import { loadPrompts } from '../../../data/sources/index.ts';
import { createTask } from '../../../data/tasks/registry.ts';
import type { TaskRecord } from '../../../data/tasks/types.ts';
import { loadTokenizer } from '../../../data/tokenizer/hf.ts';
import type { Tokenizer } from '../../../data/tokenizer/types.ts';
import { loadModelDir } from '../../../student/model/weights.ts';
import { type RunConfig, loadRunConfig } from '../../config.ts';
import { type Scoring, evaluateRecords, exactAnswer, rewardAtLeast, samplesJsonl } from '../../eval.ts';
import { createProgress } from '../../progress.ts';
import { loadRunData } from '../../run-data.ts';
import { chatFrom, chatOptions, flag, num, runtimeFrom, runtimeOptions, str } from '../args.ts';
import type { PromptRenderOptions } from '../../../data/chat.ts';
import { type Command, UsageError, type Values } from '../command.ts';

/** The records to decode, how to score them, the defaults they bring and what to print about them. */
interface HeldOutSet {
  records: TaskRecord[];
  scoring: Scoring;
  rule: string;
  maxNewTokens: number;
  seed: number;
  /** Keys of the --json object that say what was evaluated. */
  about: Record<string, unknown>;
  label: string;
  /** How prompts are rendered. */
  chat: PromptRenderOptions;
}

export const evalCommand: Command = {
  name: 'eval',
  summary: 'accuracy and mean reward of a model on held-out prompts (greedy): a built-in task, a prompt file with a reward, or a run config',
  usage:
    'eval --model DIR (--task NAME [--task-config JSON] [--split test] | --data FILE --reward M.mjs|NAME [--reward ...] [--reward-export NAME] | --config RUN.json [--set path=value ...]) ' +
    '[--chat-template auto|none|always] [--chat-template-kwargs JSON] [--threshold 1] [--n N] [--seed 0] [--batch-size 64] [--max-new-tokens N (a task: its longest answer + 1, at least 16; else 16)] [--temperature 0] [--samples 5] [--out FILE.jsonl] [--json]',
  options: {
    model: { type: 'string' }, task: { type: 'string' }, 'task-config': { type: 'string' }, split: { type: 'string' }, data: { type: 'string' },
    reward: { type: 'string', multiple: true }, 'reward-export': { type: 'string' }, config: { type: 'string' }, set: { type: 'string', multiple: true },
    threshold: { type: 'string' }, n: { type: 'string' }, seed: { type: 'string' }, 'batch-size': { type: 'string' }, 'max-new-tokens': { type: 'string' },
    temperature: { type: 'string' }, samples: { type: 'string' }, out: { type: 'string' }, json: { type: 'boolean' }, ...runtimeOptions, ...chatOptions,
  },
  async run({ values }) {
    const dir = str(values, 'model');
    const tok = await loadTokenizer(dir);
    const set = await heldOutSet(values, tok); // before the model loads: a bad flag or file fails fast
    const model = await loadModelDir(dir);
    const keep = num(values, 'samples', 5, { int: true, min: 0 });
    const maxNewTokens = num(values, 'max-new-tokens', set.maxNewTokens, { int: true, min: 1 });
    const progress = createProgress({ total: set.records.length, start: 0, label: 'eval', unit: 'prompts', tty: flag(values, 'json') ? false : undefined });
    let r;
    try {
      r = await evaluateRecords(model, tok, set.records, set.scoring, {
        seed: num(values, 'seed', set.seed, { int: true }),
        batchSize: num(values, 'batch-size', 64, { int: true, min: 1 }),
        maxNewTokens,
        temperature: num(values, 'temperature', 0, { min: 0 }),
        keepSamples: Infinity,
        chat: set.chat,
        runtime: runtimeFrom(values),
        onBatch: (done, _total, correct) => progress.update(done, `accuracy ${(correct / done).toFixed(3)}`),
      });
    } finally {
      progress.stop();
    }
    const out = str(values, 'out', null);
    if (out) writeFileSync(out, samplesJsonl(r.samples));
    const shown = { ...r, samples: r.samples.slice(0, keep) };
    if (flag(values, 'json')) {
      console.log(JSON.stringify({ model: dir, ...set.about, accuracy_rule: set.rule, max_new_tokens: maxNewTokens, ...shown }));
      return;
    }
    console.log(`${dir} on ${set.label} (n=${r.n}): accuracy ${(100 * r.accuracy).toFixed(1)}% (${r.correct}/${r.n}, ${set.rule}), mean reward ${r.meanReward.toFixed(3)}, ${r.seconds.toFixed(1)} s`);
    for (const [tag, t] of Object.entries(r.byTag)) console.log(`  ${tag}: ${(100 * t.accuracy).toFixed(1)}% of ${t.n}`);
    for (const x of shown.samples) console.log(`  ${x.correct ? 'ok ' : 'bad'} ${JSON.stringify(x.prompt)} -> ${JSON.stringify(x.completion)} (answer ${x.answer}, reward ${x.reward})`);
    if (out) console.log(`every completion: ${out}`);
  },
};

/** The held-out set the flags name; see the header. */
async function heldOutSet(values: Values, tok: Tokenizer): Promise<HeldOutSet> {
  const given = (['task', 'data', 'config'] as const).filter((k) => values[k] !== undefined);
  if (given.length === 0) throw new UsageError('give what to evaluate on: --task NAME, --data FILE --reward M.mjs, or --config RUN.json');
  if (given.includes('task') && given.length > 1) throw new UsageError(`--task evaluates a built-in task's split; it cannot be combined with --${given.find((k) => k !== 'task')}`);
  const n = values.n === undefined ? undefined : num(values, 'n', 0, { int: true, min: 1 });
  if (given[0] === 'task') return taskSet(values, n ?? 200, tok);
  const c = values.config === undefined ? null : loadRunConfig(str(values, 'config'), (values.set as string[] | undefined) ?? []);
  const terms = values.reward === undefined ? c?.rewards : rewardTerms(values.reward as string[], str(values, 'reward-export', null));
  if (!terms) throw new UsageError(`--reward is required with --data: a reward module (M.mjs, default export (prompt, completion, record) => number) or a built-in reward: ${Object.keys(REWARDS).join(' | ')}`);
  const reward = await combine(terms, { tokenizer: tok });
  const threshold = values.threshold === undefined ? undefined : num(values, 'threshold', 1);
  const base = { seed: c?.run.seed ?? 0, maxNewTokens: c?.rollout.maxNewTokens ?? 16 };
  const cut = (rs: TaskRecord[]) => (n === undefined ? rs : rs.slice(0, n));
  const chat = chatFrom(values, c ? { chatTemplate: c.data.chatTemplate, chatTemplateKwargs: c.data.chatTemplateKwargs } : {});
  if (values.data !== undefined) {
    const file = str(values, 'data');
    const like = c && 'path' in c.data ? { fields: c.data.fields, format: c.data.format, requireAnswer: c.data.requireAnswer } : { requireAnswer: false };
    const loaded = await loadPrompts(file, { ...like, chat, name: '--data' });
    if (loaded.rejects.length || loaded.filteredTooLong) console.error(loaded.summary);
    const t = threshold ?? c?.run.accuracyThreshold ?? 1;
    return { ...base, records: cut(loaded.records), scoring: { reward, correct: rewardAtLeast(t) }, rule: `reward >= ${t}`, about: { data: file, rewards: terms }, label: file, chat };
  }
  const data = await loadRunData(c!, tok);
  if (data.test.length === 0) throw new UsageError(`${values.config}: data has no held-out split; set data.test (a file or a fraction of data.path), or give --data FILE`);
  const exact = data.accuracyThreshold === undefined && threshold === undefined;
  const t = threshold ?? data.accuracyThreshold;
  return {
    ...base, records: cut(data.test), scoring: { reward, correct: exact ? exactAnswer : rewardAtLeast(t!) }, rule: exact ? 'exact answer' : `reward >= ${t}`,
    about: { config: values.config, data: heldOutName(c!), rewards: terms }, label: `${heldOutName(c!)} (${values.config})`, chat,
  };
}

async function taskSet(values: Values, n: number, tok: Tokenizer): Promise<HeldOutSet> {
  const split = str(values, 'split', 'test')!;
  if (split !== 'test' && split !== 'train') throw new UsageError(`--split must be test or train, got "${split}"`);
  if (values.reward !== undefined || values.threshold !== undefined) throw new UsageError('--task is scored with its own reward and exact answers; use --data FILE --reward ... for another reward');
  const task = createTask(str(values, 'task'), parseJson(values['task-config']));
  const seed = num(values, 'seed', 0, { int: true });
  const records = task.generate(split, n, seed);
  // long enough for the longest exact answer plus EOS (long_multiplication's are ~26 tokens), at least 16
  const longest = Math.max(0, ...records.map((r) => tok.encode(task.demonstration(r), { addSpecialTokens: false }).length));
  return {
    records, rule: 'exact answer', maxNewTokens: Math.max(16, longest + 1), seed, label: `${task.name} ${split}`,
    scoring: { reward: await combine(task.reward, { tokenizer: tok }), correct: exactAnswer },
    about: { task: task.name, task_config: task.config, split }, chat: chatFrom(values),
  };
}

/** Each --reward: a built-in reward name (when no file has that name) or a module path. */
function rewardTerms(values: readonly string[], exportName: string | null): RewardTerm[] {
  return values.map((v) =>
    Object.hasOwn(REWARDS, v) && !existsSync(v) ? { type: v } : { type: 'module', path: v, ...(exportName ? { export: exportName } : {}) },
  );
}

/** What the config holds out, for messages: the test file, the fraction, or the task. */
function heldOutName(c: RunConfig): string {
  if ('task' in c.data) return `${c.data.task} test split`;
  return typeof c.data.test === 'number' ? `${c.data.test} of ${c.data.path}` : String(c.data.test);
}

function parseJson(text: string | boolean | string[] | undefined): unknown {
  if (text === undefined) return undefined;
  try {
    return JSON.parse(String(text));
  } catch (e) {
    throw new UsageError(`--task-config must be JSON, e.g. '{"digits":2,"ops":["+"]}' (${(e as Error).message})`);
  }
}
