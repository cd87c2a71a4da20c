// `opd run CONFIG [--set path=value ...]` and `opd resume RUN_DIR [--force]`: the GRPO-OPD job.
//
// run: validate the config, create <outDir>/<name>/ with the frozen config (or, if that run
// directory already holds one, resume it: refused with what changed unless --force), open the
// student, the teacher behind the shared score cache (<outDir>/score-cache), the prompts and the
// rewards, check the tokenizers agree, then run the loop with checkpoints and metrics on disk.
// Not wired yet (refused with a message, never ignored): several teachers with routing,
// {builtin} students, one-step-stale generation, lr schedules other than constant.

import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { readFileSync, writeFileSync } from 'node:fs';
import { combine } from '../../../data/rewards/index.ts';
import { loadPrompts } from '../../../data/sources/index.ts';
import { createTask, extractAnswer, type Task, type TaskRecord } from '../../../data/tasks/registry.ts';
import { loadTokenizer } from '../../../data/tokenizer/hf.ts';
import { loadModelDir } from '../../../student/model/weights.ts';
import { CachedTeacher, ScoreCache } from '../../../teacher/cache.ts';
import { HttpTeacher } from '../../../teacher/http.ts';
import { LocalTeacher } from '../../../teacher/local.ts';
import { preflight } from '../../../teacher/preflight.ts';
import type { Teacher } from '../../../teacher/types.ts';
import { type RunConfig, blendSpec, loadRunConfig, parseRunConfig, policyLossOptions } from '../../config.ts';
import { evaluate } from '../../eval.ts';
import { writeReport } from '../../report.ts';
import { createLogger, flushLogger } from '../../log.ts';
import type { OpdJob, OpdSettings } from '../../recipes/opd.ts';
import { runPersisted } from '../../recipes/persisted.ts';
import { checkResumeConfig, openRunDir, readFrozenConfig, runDirPaths, writeFrozenConfig } from '../../rundir.ts';
import { flag, str } from '../args.ts';
import type { Command, Values } from '../command.ts';

function refuseUnwired(c: RunConfig): void {
  const no = (what: string) => {
    throw new Error(`${what} is not supported by opd run yet; remove it from the config`);
  };
  if (typeof c.student !== 'string') no('a {builtin} student (use an HF model directory, e.g. from opd model init + opd sft)');
  if (c.teachers.length > 1) no('more than one teacher (multi-teacher routing)');
  if (c.runtime.oneStepStale) no('runtime.oneStepStale');
  if (c.train.optimizer.schedule !== 'constant') no(`train.optimizer.schedule "${c.train.optimizer.schedule}"`);
}

function settingsOf(c: RunConfig): OpdSettings {
  const o = c.train.optimizer;
  const rolloutsPerMinibatch = (c.rollout.promptsPerStep * c.rollout.groupSize) / c.train.minibatches;
  return {
    steps: c.run.steps,
    promptsPerStep: c.rollout.promptsPerStep,
    sampling: { groupSize: c.rollout.groupSize, maxNewTokens: c.rollout.maxNewTokens, temperature: c.rollout.temperature, topK: c.rollout.topK || undefined, topP: c.rollout.topP < 1 ? c.rollout.topP : undefined },
    advantages: { groupMode: c.algo.advantage.mode, eps: c.algo.advantage.eps, baseline: c.algo.advantage.baseline, blend: blendSpec(c), gamma: c.algo.gamma },
    lambda: c.algo.lambdaSchedule,
    loss: policyLossOptions(c),
    aggregation: c.loss.aggregation,
    maxCompletionLen: c.loss.maxCompletionLen,
    maskTruncated: c.rollout.maskTruncated,
    epochs: c.train.epochs,
    minibatches: c.train.minibatches,
    microBatches: c.train.microBatchSize ? Math.ceil(rolloutsPerMinibatch / c.train.microBatchSize) : 1,
    lr: o.lr,
    warmupSteps: o.warmupSteps,
    weightDecay: o.weightDecay,
    adamw: { beta1: o.beta1, beta2: o.beta2, eps: o.eps, maxGradNorm: o.maxGradNorm },
    maxConsecutiveSkips: c.run.maxConsecutiveSkips,
    seed: c.run.seed,
    runtime: { device: c.runtime.device, threads: c.runtime.threads },
  };
}

async function openTeacher(c: RunConfig, studentTokenizerDir: string): Promise<Teacher | null> {
  const t = c.teachers[0];
  if (!t || c.algo.blend.mode === 'grpo') return null;
  const inner: Teacher =
    t.kind === 'local'
      ? await LocalTeacher.open(t.path, { temperature: t.temperature, threads: c.runtime.threads, device: c.runtime.device, tokenizer: t.tokenizer })
      : await (async () => {
          const tok = await loadTokenizer(t.tokenizer ?? studentTokenizerDir);
          const h = new HttpTeacher({ url: t.url, model: t.servedModel, flavor: t.flavor, concurrency: t.concurrency, timeoutMs: t.timeoutMs, retries: t.retries, temperature: t.temperature,
            apiKey: t.apiKeyEnv ? process.env[t.apiKeyEnv] : undefined, identity: { tokenizerFingerprint: tok.fingerprint(), vocabSize: tok.vocabSize } });
          await h.checkServer();
          return h;
        })();
  return new CachedTeacher(inner, ScoreCache.open(join(c.run.outDir, 'score-cache')));
}

async function prompts(c: RunConfig): Promise<{ train: TaskRecord[]; correct?: OpdJob['correct'] }> {
  if ('task' in c.data) {
    const task = createTask(c.data.task, c.data.taskConfig);
    return { train: task.generate('train', c.data.trainSize ?? c.rollout.promptsPerStep * c.run.steps, c.run.seed), correct: (r, text) => extractAnswer(text) === r.answer };
  }
  const loaded = await loadPrompts(c.data.path, { fields: c.data.fields, maxRejectFraction: c.data.maxRejectFraction, onTooLong: c.data.onTooLong, rejectsFile: join(c.run.outDir, 'rejects.jsonl') });
  return { train: loaded.records };
}

export async function runJob(c: RunConfig, runDir: string): Promise<void> {
  refuseUnwired(c);
  const run = await openRunDir(runDir);
  const log = createLogger({ file: run.log });
  try {
    const studentDir = c.student as string;
    const [student, tokenizer] = await Promise.all([loadModelDir(studentDir), loadTokenizer(studentDir)]);
    const teacher = await openTeacher(c, studentDir);
    if (teacher instanceof CachedTeacher && c.teachers[0]?.kind === 'local') {
      const tdir = c.teachers[0].tokenizer ?? c.teachers[0].path;
      const pf = preflight({ tokenizer, vocabRows: student.config.vocabSize }, { tokenizer: await loadTokenizer(tdir), vocabRows: teacher.identity.vocabSize });
      pf.notes.forEach((n) => log.info(n));
    }
    const data = await prompts(c);
    const reward = await combine(c.rewards);
    const job: OpdJob = { student: { config: student.config, weights: student.weights, tokenizer }, teacher, prompts: data.train, reward, correct: data.correct, settings: settingsOf(c) };
    log.info(`run ${run.dir}: ${c.run.steps} steps, ${c.rollout.promptsPerStep} prompts × G=${c.rollout.groupSize}, blend ${c.algo.blend.mode}`);
    const heldOut = await heldOutEval(c, run.dir, student, tokenizer, (m) => log.info(m));
    const result = await runPersisted(run, job, {
      checkpointEvery: c.run.checkpointEvery,
      keepLast: c.run.keepCheckpoints,
      tokenizerFrom: studentDir,
      log: (m) => log.info(m),
      onStep: (rec) => {
        const m = rec.metrics;
        const acc = m.accuracy === undefined ? '' : ` acc ${m.accuracy.toFixed(3)}`;
        log.info(`step ${rec.step}/${c.run.steps} reward ${m.reward_mean?.toFixed(3)}${acc} teacher_kl ${m.teacher_kl?.toFixed(3)} loss ${m.loss?.toFixed(4) ?? '-'} ${m.step_s?.toFixed(2)}s${rec.skipped ? ` SKIPPED (${rec.skipReason})` : ''}`);
      },
    });
    await result.close();
    await teacher?.close();
    const after = heldOut ? await heldOut.after(result.trainer.params()) : {};
    const summary: Record<string, number> = { steps: result.state.step, skipped_total: result.state.skippedTotal, ...heldOut?.before, ...after };
    writeFileSync(join(run.dir, 'summary.json'), JSON.stringify(summary, null, 1) + '\n');
    log.info(`report: ${writeReport(run.dir, tokenizer)}`);
    if (heldOut) log.info(`held-out accuracy: teacher ${fmt(summary.teacher_accuracy)}, student before ${fmt(summary.student_before_accuracy)}, after ${fmt(summary.student_after_accuracy)}`);
    console.log(run.dir);
  } finally {
    await flushLogger(log);
  }
}

export const run: Command = {
  name: 'run',
  summary: 'run a GRPO on-policy distillation job from a config (resumes an unfinished run of the same name)',
  usage: 'run CONFIG.json [--set path=value ...] [--force]',
  options: { set: { type: 'string', multiple: true }, force: { type: 'boolean' } },
  positionals: 1,
  async run({ values, positionals }) {
    const file = positionals[0];
    if (!file) throw new Error('give the config file: opd run CONFIG.json');
    const c = loadRunConfig(file, (values.set as string[] | undefined) ?? []);
    const dir = resolve(c.run.outDir, c.run.name ?? `run-${new Date().toISOString().replace(/[-:]/g, "").slice(0, 15)}`);
    if (existsSync(join(dir, 'config.json'))) {
      const changes = checkResumeConfig(dir, c, { override: flag(values, 'force') });
      if (changes.length) await writeFrozenConfig(dir, c, { replace: true }); // --force: the run continues under the new config
    } else {
      await mkdir(dir, { recursive: true });
      await writeFrozenConfig(dir, c);
    }
    await runJob(c, dir);
  },
};

export const resume: Command = {
  name: 'resume',
  summary: 'continue an interrupted run from its newest committed checkpoint',
  usage: 'resume RUN_DIR',
  options: {},
  positionals: 1,
  async run({ positionals }: { values: Values; positionals: string[] }) {
    const dir = positionals[0];
    if (!dir) throw new Error('give the run directory: opd resume RUN_DIR');
    const c = parseRunConfig(readFrozenConfig(runDirPaths(dir).dir), join(dir, 'config.json'));
    await runJob(c, dir);
  },
};

const fmt = (x: unknown) => (typeof x === 'number' ? x.toFixed(3) : 'n/a');

/**
 * Held-out accuracy (greedy) of the teacher and the student before training, computed once per
 * run and kept in eval-before.json so a resumed run reports the same numbers; `after` evaluates
 * the final weights. Task data only (prompt files have no held-out split).
 */
async function heldOutEval(c: RunConfig, runDir: string, student: Awaited<ReturnType<typeof loadModelDir>>, tok: Awaited<ReturnType<typeof loadTokenizer>>, log: (m: string) => void) {
  if (!('task' in c.data)) return null;
  const task: Task = createTask(c.data.task, c.data.taskConfig);
  const opts = { n: c.run.evalPrompts, seed: c.run.seed, maxNewTokens: c.rollout.maxNewTokens, runtime: { device: c.runtime.device, threads: c.runtime.threads } };
  const file = join(runDir, 'eval-before.json');
  let before: Record<string, number>;
  if (existsSync(file)) before = JSON.parse(readFileSync(file, 'utf8')) as Record<string, number>;
  else {
    log(`evaluating on ${opts.n} held-out prompts`);
    before = { student_before_accuracy: (await evaluate(student, tok, task, opts)).accuracy };
    const t = c.teachers[0];
    if (t?.kind === 'local' && !t.path.endsWith('.onnx')) {
      const [tm, ttok] = await Promise.all([loadModelDir(t.path), loadTokenizer(t.tokenizer ?? t.path)]);
      before.teacher_accuracy = (await evaluate(tm, ttok, task, opts)).accuracy;
    }
    writeFileSync(file, JSON.stringify(before) + '\n');
  }
  return {
    before,
    after: async (weights: Record<string, Float32Array | Float64Array>) => ({
      student_after_accuracy: (await evaluate({ config: student.config, weights: new Map(Object.entries(weights) as Array<[string, Float32Array]>) }, tok, task, opts)).accuracy,
    }),
  };
}
