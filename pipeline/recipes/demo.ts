// The built-in distillation demo's models: a teacher that solves fixed-width 2-digit addition and a
// 12× smaller student that does not, both trained by `opd sft` (sftModelDir) from a seeded
// random init on the task's own demonstrations, and cached: a model directory is reused only when
// its opd-recipe.json (written last) matches the recipe exactly. The recipe and the measurements
// behind it are in examples/demo/NOTES.md; `recipeCommands` prints the equivalent CLI commands.

import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createTask } from '../../data/tasks/registry.ts';
import type { RuntimeOptions } from '../../engine/runtime/session.ts';
import { initModelDir } from '../../student/model/init.ts';
import { sftModelDir } from './sft.ts';

export const DEMO_TASK = { task: 'arithmetic', taskConfig: { digits: 2, minDigits: 2, ops: ['+'] }, pool: 7000, seed: 0 } as const;

export interface DemoModelRecipe {
  name: string;
  /** HF config.json for `opd model init` (path relative to the repository root). */
  modelConfig: string;
  initSeed: number;
  /** The first `demos` of the task's train split (DEMO_TASK.pool problems, seed DEMO_TASK.seed). */
  demos: number;
  sft: { steps: number; lr: number; warmup: number; batchSize: number; seed: number };
}

export const DEMO_TEACHER: DemoModelRecipe = {
  name: 'arithmetic-teacher', modelConfig: 'examples/demo/teacher.config.json', initSeed: 0, demos: 7000,
  sft: { steps: 4000, lr: 1e-3, warmup: 10, batchSize: 64, seed: 0 },
};
export const DEMO_STUDENT: DemoModelRecipe = {
  name: 'arithmetic-student', modelConfig: 'examples/demo/student.config.json', initSeed: 0, demos: 500,
  sft: { steps: 2000, lr: 3e-3, warmup: 10, batchSize: 64, seed: 0 },
};

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
const dataFile = (root: string, demos: number) => join(root, 'data', `${DEMO_TASK.task}-2digit-add-train-${demos}.jsonl`);

/** The demonstrations file: the first `demos` problems of the train split, as {"prompt","completion"} lines. */
export function writeDemoData(root: string, demos: number): string {
  const file = dataFile(root, demos);
  if (existsSync(file)) return file;
  const task = createTask(DEMO_TASK.task, DEMO_TASK.taskConfig);
  const lines = task.generate('train', DEMO_TASK.pool, DEMO_TASK.seed).slice(0, demos).map((r) => JSON.stringify({ prompt: r.prompt, completion: task.demonstration(r) }));
  writeFileSync(file, lines.join('\n') + '\n');
  return file;
}

/** The model directory of `r` under `root`: reused when its recipe matches, else (re)trained. */
export async function ensureDemoModel(root: string, r: DemoModelRecipe, o: { runtime?: RuntimeOptions; log?: (m: string) => void } = {}): Promise<{ dir: string; trained: boolean; seconds: number }> {
  const log = o.log ?? (() => {});
  const dir = join(root, r.name);
  const stamp = join(dir, 'opd-recipe.json');
  const want = JSON.stringify({ version: 1, task: DEMO_TASK, ...r }, null, 1) + '\n';
  if (existsSync(stamp) && readFileSync(stamp, 'utf8') === want) return { dir, trained: false, seconds: 0 };
  await mkdir(join(root, 'data'), { recursive: true });
  const data = writeDemoData(root, r.demos);
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
    `opd sft --model ${join(root, `${r.name}-init`)} --data ${dataFile(root, r.demos)} --out ${join(root, r.name)} --steps ${s.steps} --lr ${s.lr} --warmup ${s.warmup} --batch-size ${s.batchSize} --seed ${s.seed}`,
  ];
}
