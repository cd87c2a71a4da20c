// The built-in distillation demos' models: for each demo task, a teacher that solves it and a 12×
// smaller student that does not, both trained by `opd sft` (sftModelDir) from a seeded random init on
// the task's own demonstrations, and cached: a model directory is reused only when its
// opd-recipe.json (written last) matches the recipe exactly. `recipeCommands` prints the equivalent
// CLI commands. Two demos (DEMOS): `arithmetic`, fixed-width 2-digit addition with 3-byte answers
// (the default; recipe and measurements in examples/demo/NOTES.md), and `long_multiplication`, a
// number times a digit written out (26-byte answers, only the whole trace rewarded).

import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createTask } from '../../data/tasks/registry.ts';
import type { RuntimeOptions } from '../../engine/runtime/session.ts';
import { initModelDir } from '../../student/model/init.ts';
import { sftModelDir } from './sft.ts';

/** A demo's task: its config, how many train problems are drawn (`pool`, with `seed`), and a file label. */
export interface DemoTask {
  task: string;
  taskConfig: Readonly<Record<string, unknown>>;
  pool: number;
  seed: number;
  /** Names the demonstrations file: data/<label>-train-<demos>.jsonl. */
  label: string;
}

export const DEMO_TASK: DemoTask = { task: 'arithmetic', taskConfig: { digits: 2, minDigits: 2, ops: ['+'] }, pool: 7000, seed: 0, label: 'arithmetic-2digit-add' };
export const LONG_TASK: DemoTask = { task: 'long_multiplication', taskConfig: {}, pool: 580, seed: 0, label: 'long_multiplication-2x1' };

export interface DemoModelRecipe {
  name: string;
  task: DemoTask;
  /** HF config.json for `opd model init` (path relative to the repository root). */
  modelConfig: string;
  initSeed: number;
  /** The first `demos` of the task's train split (DEMO_TASK.pool problems, seed DEMO_TASK.seed). */
  demos: number;
  sft: { steps: number; lr: number; warmup: number; batchSize: number; seed: number };
}

export const DEMO_TEACHER: DemoModelRecipe = {
  name: 'arithmetic-teacher', task: DEMO_TASK, modelConfig: 'examples/demo/teacher.config.json', initSeed: 0, demos: 7000,
  sft: { steps: 4000, lr: 1e-3, warmup: 10, batchSize: 64, seed: 0 },
};
export const DEMO_STUDENT: DemoModelRecipe = {
  name: 'arithmetic-student', task: DEMO_TASK, modelConfig: 'examples/demo/student.config.json', initSeed: 0, demos: 500,
  sft: { steps: 2000, lr: 3e-3, warmup: 10, batchSize: 64, seed: 0 },
};

export const LONG_TEACHER: DemoModelRecipe = {
  name: 'long-multiplication-teacher', task: LONG_TASK, modelConfig: 'examples/demo/teacher.config.json', initSeed: 0, demos: 580,
  sft: { steps: 3000, lr: 1e-3, warmup: 10, batchSize: 64, seed: 0 },
};
export const LONG_STUDENT: DemoModelRecipe = {
  name: 'long-multiplication-student', task: LONG_TASK, modelConfig: 'examples/demo/student.config.json', initSeed: 0, demos: 400,
  sft: { steps: 1000, lr: 3e-3, warmup: 10, batchSize: 64, seed: 0 },
};

/** Each demo: its models and its GRPO-OPD run config (relative to the repository root). */
export const DEMOS: Readonly<Record<string, { teacher: DemoModelRecipe; student: DemoModelRecipe; config: string }>> = {
  arithmetic: { teacher: DEMO_TEACHER, student: DEMO_STUDENT, config: 'examples/arithmetic.json' },
  long_multiplication: { teacher: LONG_TEACHER, student: LONG_STUDENT, config: 'examples/long-multiplication.json' },
};

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
const dataFile = (root: string, t: DemoTask, demos: number) => join(root, 'data', `${t.label}-train-${demos}.jsonl`);

/** The demonstrations file: the first `demos` problems of the task's train split, as {"prompt","completion"} lines. */
export function writeDemoData(root: string, t: DemoTask, demos: number): string {
  const file = dataFile(root, t, demos);
  if (existsSync(file)) return file;
  const task = createTask(t.task, t.taskConfig);
  const lines = task.generate('train', t.pool, t.seed).slice(0, demos).map((r) => JSON.stringify({ prompt: r.prompt, completion: task.demonstration(r) }));
  writeFileSync(file, lines.join('\n') + '\n');
  return file;
}

/** The model directory of `r` under `root`: reused when its recipe matches, else (re)trained. */
export async function ensureDemoModel(root: string, r: DemoModelRecipe, o: { runtime?: RuntimeOptions; log?: (m: string) => void } = {}): Promise<{ dir: string; trained: boolean; seconds: number }> {
  const log = o.log ?? (() => {});
  const dir = join(root, r.name);
  const stamp = join(dir, 'opd-recipe.json');
  // the stamp: everything the model's bytes depend on (the task's file label is not), in the same
  // layout as before demos had tasks, so models cached by earlier versions stay valid
  const { label: _label, ...task } = r.task;
  const { task: _task, ...recipe } = r;
  const want = JSON.stringify({ version: 1, task, ...recipe }, null, 1) + '\n';
  if (existsSync(stamp) && readFileSync(stamp, 'utf8') === want) return { dir, trained: false, seconds: 0 };
  await mkdir(join(root, 'data'), { recursive: true });
  const data = writeDemoData(root, r.task, r.demos);
  const init = join(root, `${r.name}-init`);
  await initModelDir(init, JSON.parse(readFileSync(join(repoRoot, r.modelConfig), 'utf8')) as Record<string, unknown>, r.initSeed);
  log(`training ${r.name} with opd sft: ${r.demos} demonstrations, ${r.sft.steps} steps (cached in ${dir} for later runs)`);
  const every = Math.max(1, Math.round(r.sft.steps / 8));
  const { seconds } = await sftModelDir(init, data, dir, {
    ...r.sft, weightDecay: 0, maxGradNorm: 1, runtime: o.runtime,
    onStep: (s, loss) => s % every === 0 && log(`  ${r.name} sft step ${s}/${r.sft.steps} loss ${loss.toFixed(4)}`),
  });
  writeFileSync(stamp, want); // last: a directory without it (or with another recipe) is retrained
  return { dir, trained: true, seconds };
}

/** The CLI commands that build the same model directory bit for bit. */
export function recipeCommands(root: string, r: DemoModelRecipe): string[] {
  const s = r.sft;
  return [
    `opd model init --config ${r.modelConfig} --out ${join(root, `${r.name}-init`)} --seed ${r.initSeed}`,
    `opd sft --model ${join(root, `${r.name}-init`)} --data ${dataFile(root, r.task, r.demos)} --out ${join(root, r.name)} --steps ${s.steps} --lr ${s.lr} --warmup ${s.warmup} --batch-size ${s.batchSize} --seed ${s.seed}`,
  ];
}
