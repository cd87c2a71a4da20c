// `opd eval --model DIR --task NAME`: greedy-decode a built-in task's held-out split and print the
// exact-answer accuracy and the task's mean reward (pipeline/eval.ts); --json prints one JSON object.

import { createTask } from '../../../data/tasks/registry.ts';
import { loadTokenizer } from '../../../data/tokenizer/hf.ts';
import { loadModelDir } from '../../../student/model/weights.ts';
import { evaluate } from '../../eval.ts';
import { flag, num, runtimeFrom, runtimeOptions, str } from '../args.ts';
import { type Command, UsageError } from '../command.ts';

export const evalCommand: Command = {
  name: 'eval',
  summary: "accuracy and mean reward of a model on a built-in task's held-out split (greedy)",
  usage:
    'eval --model DIR --task NAME [--task-config JSON] [--split test] [--n 200] [--seed 0] [--batch-size 64] [--max-new-tokens 16] [--temperature 0] [--samples 5] [--json]',
  options: {
    model: { type: 'string' }, task: { type: 'string' }, 'task-config': { type: 'string' }, split: { type: 'string' }, n: { type: 'string' },
    seed: { type: 'string' }, 'batch-size': { type: 'string' }, 'max-new-tokens': { type: 'string' }, temperature: { type: 'string' },
    samples: { type: 'string' }, json: { type: 'boolean' }, ...runtimeOptions,
  },
  async run({ values }) {
    const dir = str(values, 'model');
    const taskName = str(values, 'task');
    const split = str(values, 'split', 'test')!;
    if (split !== 'test' && split !== 'train') throw new UsageError(`--split must be test or train, got "${split}"`);
    const task = createTask(taskName, parseJson(values['task-config']));
    const [model, tok] = await Promise.all([loadModelDir(dir), loadTokenizer(dir)]);
    const r = await evaluate(model, tok, task, {
      split,
      n: num(values, 'n', 200, { int: true, min: 1 }),
      seed: num(values, 'seed', 0, { int: true }),
      batchSize: num(values, 'batch-size', 64, { int: true, min: 1 }),
      maxNewTokens: num(values, 'max-new-tokens', 16, { int: true, min: 1 }),
      temperature: num(values, 'temperature', 0, { min: 0 }),
      keepSamples: num(values, 'samples', 5, { int: true, min: 0 }),
      runtime: runtimeFrom(values),
    });
    if (flag(values, 'json')) {
      console.log(JSON.stringify({ model: dir, task: task.name, task_config: task.config, split, ...r }));
      return;
    }
    console.log(`${dir} on ${task.name} ${split} (n=${r.n}): accuracy ${(100 * r.accuracy).toFixed(1)}% (${r.correct}/${r.n}), mean reward ${r.meanReward.toFixed(3)}, ${r.seconds.toFixed(1)} s`);
    for (const [tag, t] of Object.entries(r.byTag)) console.log(`  ${tag}: ${(100 * t.accuracy).toFixed(1)}% of ${t.n}`);
    for (const s of r.samples) console.log(`  ${s.correct ? 'ok ' : 'bad'} ${JSON.stringify(s.prompt)} -> ${JSON.stringify(s.completion)} (answer ${s.answer})`);
  },
};

function parseJson(text: string | boolean | string[] | undefined): unknown {
  if (text === undefined) return undefined;
  try {
    return JSON.parse(String(text));
  } catch (e) {
    throw new UsageError(`--task-config must be JSON, e.g. '{"digits":2,"ops":["+"]}' (${(e as Error).message})`);
  }
}
