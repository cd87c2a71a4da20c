// A complete, small GRPO-OPD job for tests and the kill/resume check: a byte-level teacher SFT'd
// briefly on one-digit addition, a random student, 1-digit arithmetic prompts. Deterministic for
// a seed. Run as a script (`node --import tsx pipeline/recipes/tiny-job.ts RUN_DIR MODELS_DIR`) it
// executes the job in RUN_DIR, resuming if RUN_DIR holds checkpoints.

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { combine } from '../../data/rewards/index.ts';
import { createTask, extractAnswer } from '../../data/tasks/registry.ts';
import { loadTokenizer } from '../../data/tokenizer/hf.ts';
import { initModelDir, tinyConfig } from '../../student/model/init.ts';
import { loadModelDir, saveModelDir } from '../../student/model/weights.ts';
import { openTeacher } from '../../teacher/open.ts';
import { openRunDir } from '../rundir.ts';
import { runSft, tokenizeSft } from './sft.ts';
import type { OpdJob, OpdSettings } from './opd.ts';
import { runPersisted } from './persisted.ts';

export const TINY_SETTINGS: OpdSettings = {
  steps: 6,
  promptsPerStep: 4,
  sampling: { groupSize: 4, maxNewTokens: 4, temperature: 1 },
  advantages: { groupMode: 'mean', eps: 1e-6, baseline: 0, blend: { mode: 'additive', rewardWeight: 1 }, gamma: 0 },
  lambda: { kind: 'constant', lambda: 1 },
  loss: { type: 'ppo', clipLow: 0.2, clipHigh: 0.2 },
  aggregation: 'token_mean',
  maskTruncated: false,
  epochs: 1,
  minibatches: 1,
  microBatches: 1,
  lr: 2e-3,
  warmupSteps: 0,
  weightDecay: 0,
  adamw: { beta1: 0.9, beta2: 0.999, eps: 1e-8, maxGradNorm: 1 },
  maxConsecutiveSkips: 3,
  seed: 0,
  runtime: { threads: 1 },
};

/** Create (once) the teacher and student model directories under `models`. */
export async function tinyModels(models: string): Promise<{ teacher: string; student: string }> {
  const teacher = join(models, 'teacher');
  const student = join(models, 'student');
  if (!existsSync(join(teacher, 'config.json'))) {
    const base = await initModelDir(join(models, 'teacher-init'), tinyConfig(), 1);
    const task = createTask('arithmetic', { digits: 1, ops: ['+'] });
    const tok = await loadTokenizer(join(models, 'teacher-init'));
    const recs = task.generate('train', 80, 0).map((r) => ({ prompt: r.prompt, completion: task.demonstration(r), where: r.id }));
    const { weights } = await runSft(base, tokenizeSft(tok, recs, 256), tok.padTokenId ?? 0, { steps: 150, lr: 3e-3, warmup: 10, batchSize: 16, seed: 0, weightDecay: 0, maxGradNorm: 1, runtime: { threads: 1 } });
    await saveModelDir(teacher, { config: base.config, weights }, { tokenizerFrom: join(models, 'teacher-init') });
  }
  if (!existsSync(join(student, 'config.json'))) await initModelDir(student, tinyConfig({ hidden_size: 32, intermediate_size: 64 }), 2);
  return { teacher, student };
}

/**
 * An `opd run` config (JSON-ready) over the tiny models in `root`/models, writing runs under
 * `root`/runs; `run`, `data` and `rollout` fields given here replace the defaults.
 */
export function tinyRunConfig(root: string, m: { teacher: string; student: string }, o: { run?: Record<string, unknown>; data?: Record<string, unknown>; rollout?: Record<string, unknown> } = {}) {
  return {
    run: { outDir: join(root, 'runs'), ...o.run },
    student: m.student,
    teachers: [{ id: 't', kind: 'local', path: m.teacher }],
    data: { task: 'arithmetic', taskConfig: { digits: 1, ops: ['+'] }, trainSize: 40, testSize: 10, ...o.data },
    rollout: { groupSize: 4, promptsPerStep: 4, maxNewTokens: 4, ...o.rollout },
    train: { optimizer: { lr: 0.002 } },
    runtime: { threads: 1 },
  };
}

export async function tinyJob(models: string, settings: OpdSettings = TINY_SETTINGS): Promise<{ job: OpdJob; close(): Promise<void>; tokenizerFrom: string }> {
  const dirs = await tinyModels(models);
  const task = createTask('arithmetic', { digits: 1, ops: ['+'] });
  const [student, tokenizer, teacher] = await Promise.all([loadModelDir(dirs.student), loadTokenizer(dirs.student), openTeacher({ kind: 'local', path: dirs.teacher }, { threads: 1 }).then((t) => t.teacher)]);
  const job: OpdJob = {
    student: { config: student.config, weights: student.weights, tokenizer },
    teacher,
    prompts: task.generate('train', 10, 0), // 4 per step: epoch boundaries inside a 6-step run
    reward: await combine(task.reward),
    correct: (r, c) => extractAnswer(c) === r.answer,
    settings,
  };
  return { job, close: () => teacher.close(), tokenizerFrom: dirs.student };
}

if (process.argv[1]?.endsWith('tiny-job.ts') && process.argv[2]) {
  const [runDir, models] = [process.argv[2], process.argv[3]!];
  const { job, close, tokenizerFrom } = await tinyJob(models);
  await import('node:fs/promises').then((f) => f.mkdir(runDir, { recursive: true }));
  const run = await openRunDir(runDir);
  const r = await runPersisted(run, job, { checkpointEvery: 1, keepLast: 2, tokenizerFrom });
  await r.close();
  await close();
}
