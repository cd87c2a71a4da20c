// The composition root of a GRPO-OPD run: a validated RunConfig and a run directory in, the job
// runPersisted / runOpd take out. `opd run`, `opd resume`, `opd compare` and `opd demo` (all through
// pipeline/cli/commands/run.ts, which adds only the console: progress, signals, printing) build and
// run their jobs here, and so can anything else that runs a config (a queue worker) without the CLI.
//
// buildJob: the student directory (the configured one, or a {builtin} model created once in
// <run>/student-init), its weights and tokenizer (and LoRA adapters when configured), the teachers
// the blend needs (none for grpo; teacher/open.ts, behind the shared score cache
// <run.outDir>/score-cache), the tokenizer preflight of every local teacher, the prompts train and
// held-out (pipeline/run-data.ts), the rewards, the held-out scorer and the loop's OpdSettings
// (settingsOf). A failure after the teachers are open closes them. The held-out evaluations are in
// pipeline/held-out.ts.
//
// runJob: buildJob, the held-out evaluation before training (kept in eval-before.json so a resumed
// run reports the same numbers), the persisted loop (checkpoints, metrics; evaluations on the
// run.evalEvery cadence), then summary.json with the held-out numbers and the report. Each
// evaluation's completions are kept in <run>/eval/ (before, teacher-<id>, step-NNNNNN, after). A run
// stopped by `shouldStop` has a committed checkpoint and no summary.json; it reports `stopped`.
//
// wall_s is the wall-clock time of the whole run, over every segment (each runJob over the
// directory: the first `opd run`, each resume): the sum of <run>/elapsed.json's segments_s.
// A segment runs from runJob's start (hooks.startedAt) and is recorded when the loop starts, after
// every step and when the segment ends (stopped, or summary.json written), so a segment killed
// with -9 counts up to its last finished step and one interrupted during start-up counts nothing.
// The time is kept out of the checkpoints (their bytes depend on the state only, R1) and out of
// metrics.jsonl (cut back on resume, so it would lose the redone steps' time).
//
// prepareRunDir: <outDir>/<name>/ with the frozen config, or, when it holds one, the same directory
// to resume, refused with what changed unless `force`.

import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { combine } from '../data/rewards/index.ts';
import { loadTokenizer } from '../data/tokenizer/hf.ts';
import { atomicWriteFile } from '../engine/io/atomic.ts';
import { loadModelDir } from '../student/model/weights.ts';
import { collectGarbage } from '../engine/runtime/session.ts';
import { type OpenTeachers, openTeachers } from '../teacher/open.ts';
import { preflight } from '../teacher/preflight.ts';
import { AlignedTeacher, wrapTeachers } from '../teacher/aligned.ts';
import { type ChatTemplateMode, chatStopIds, usesTemplate } from '../data/chat.ts';
import { stopTokenIds } from '../student/generate/generate.ts';
import { type RunConfig, blendSpec, policyLossOptions } from './config.ts';
import { studentLora, studentPath } from './config/sources.ts';
import { type HeldOutScorer, finalHeldOut, heldOutEval, heldOutScorer } from './held-out.ts';
import { type LoraStudent, exportLora, prepareLoraStudent } from './recipes/lora.ts';
import type { OpdJob, OpdSettings } from './recipes/opd.ts';
import { type PersistOptions, runPersisted } from './recipes/persisted.ts';
import { type RunData, contextLimitOf, loadRunData } from './run-data.ts';
import { writeReport } from './report.ts';
import { lockRunDir } from './run-lock.ts';
import { builtinStudentDir, checkStudentFiles, sweepDeadTemps } from './startup.ts';
import { type RunDir, checkResumeConfig, openRunDir, readSegments, writeFrozenConfig, writeSegments } from './rundir.ts';

/** Where a job's messages go (a winston Logger fits). */
export interface JobLog {
  info(message: string): unknown;
  warn(message: string): unknown;
}

const silent: JobLog = { info: () => {}, warn: () => {} };

type Tok = Awaited<ReturnType<typeof loadTokenizer>>;
type Student = Awaited<ReturnType<typeof loadModelDir>>;

export function settingsOf(c: RunConfig): OpdSettings {
  const o = c.train.optimizer;
  const rolloutsPerMinibatch = (c.rollout.promptsPerStep * c.rollout.groupSize) / c.train.minibatches;
  return {
    steps: c.run.steps,
    promptsPerStep: c.rollout.promptsPerStep,
    sampling: { groupSize: c.rollout.groupSize, slicePrompts: c.rollout.slicePrompts, maxNewTokens: c.rollout.maxNewTokens, temperature: c.rollout.temperature, topK: c.rollout.topK || undefined, topP: c.rollout.topP < 1 ? c.rollout.topP : undefined },
    advantages: { groupMode: c.algo.advantage.mode, eps: c.algo.advantage.eps, baseline: c.algo.advantage.baseline, blend: blendSpec(c), gamma: c.algo.gamma },
    lambda: c.algo.lambdaSchedule,
    loss: policyLossOptions(c),
    aggregation: c.loss.aggregation,
    maxCompletionLen: c.loss.maxCompletionLen ?? c.rollout.maxNewTokens, // Dr. GRPO: a constant L_max, the generation budget (as the config doc says)
    maskTruncated: c.rollout.maskTruncated,
    epochs: c.train.epochs,
    minibatches: c.train.minibatches,
    microBatches: c.train.microBatchSize ? Math.ceil(rolloutsPerMinibatch / c.train.microBatchSize) : 1,
    lr: o.lr,
    warmupSteps: o.warmupSteps,
    lrSchedule: o.schedule,
    evalEvery: c.run.evalEvery,
    oneStepStale: c.runtime.oneStepStale,
    weightDecay: o.weightDecay,
    adamw: { beta1: o.beta1, beta2: o.beta2, eps: o.eps, maxGradNorm: o.maxGradNorm },
    maxConsecutiveSkips: c.run.maxConsecutiveSkips,
    seed: c.run.seed,
    trainStep: c.train.step,
    runtime: { device: c.runtime.device, threads: c.runtime.threads },
    chat: chatOf(c),
    objective: c.algo.objective,
  };
}

/** How the run renders prompts (data.chatTemplate, data.chatTemplateKwargs; data/chat.ts). */
export const chatOf = (c: RunConfig) => ({ chatTemplate: c.data.chatTemplate, chatTemplateKwargs: c.data.chatTemplateKwargs });

/** The student directory: the configured one, or a {builtin} model created once inside the run directory. */
export async function studentDir(c: RunConfig, runDir: string, warn: (m: string) => void = () => {}): Promise<string> {
  const path = studentPath(c.student);
  return path ?? builtinStudentDir(runDir, c.run.seed, warn); // built in a temp dir and renamed: whole or absent (pipeline/startup.ts)
}

/** A run, assembled: what runPersisted takes, and what the run reports from. */
export interface Job {
  config: RunConfig;
  run: RunDir;
  studentDir: string;
  student: Student;
  tokenizer: Tok;
  /** The LoRA adapters and frozen base, when the config trains LoRA. */
  lora?: LoraStudent;
  teachers: OpenTeachers;
  data: RunData;
  /** One greedy evaluation of the held-out records, its completions kept in <run>/eval/<name>.jsonl; null without a held-out split. */
  score: HeldOutScorer | null;
  /** The loop's job (runOpd / runPersisted). */
  opd: OpdJob;
  /** runPersisted's options from the config (the caller adds log, shouldStop, onStep). */
  persist: Pick<PersistOptions, 'checkpointEvery' | 'keepLast' | 'tokenizerFrom'>;
  /** Close the teachers. */
  close(): Promise<void>;
}

/** Assemble the job of config `c` in `runDir` (an existing run directory); see the header. */
export async function buildJob(c: RunConfig, runDir: string | RunDir, o: { log?: JobLog } = {}): Promise<Job> {
  const log = o.log ?? silent;
  const run = typeof runDir === 'string' ? await openRunDir(runDir) : runDir;
  for (const d of [run.dir, run.eval, join(run.dir, 'lora-base')]) await sweepDeadTemps(d); // what a killed start left half-written
  const sdir = await studentDir(c, run.dir, (m) => log.warn(m));
  await checkStudentFiles(run.dir, sdir, log); // item 9: the student this run started from, recorded once and verified at every start
  const [student, tokenizer] = await Promise.all([loadModelDir(sdir), loadTokenizer(sdir)]);
  const loraCfg = studentLora(c.student);
  const lora = loraCfg ? await prepareLoraStudent(run.dir, student, loraCfg, c.run.seed) : undefined;
  // a top-k divergence asks for the teacher's top-k: a local teacher computes it only when opened with that k
  const topK = policyLossOptions(c).distill?.divergence?.topK;
  const specs = c.teachers.map((t) => (topK && t.kind === 'local' ? { ...t, topK } : t));
  // sft_teacher samples with the teacher's own weights in-process and scores nothing
  const teacherSampler = c.algo.objective === 'sft_teacher' ? await loadSamplingTeacher(c, tokenizer) : undefined;
  // a full-vocabulary divergence recomputes the teacher's distribution from its weights at train time
  const fullTeacher = policyLossOptions(c).distill?.full ? await loadFullTeacher(c, tokenizer, student.config.vocabSize) : undefined;
  const teachers = await openTeachers(c.algo.blend.mode === 'grpo' || teacherSampler ? [] : specs, {
    threads: c.runtime.threads, device: c.runtime.device, defaultTokenizer: sdir, cacheDir: join(c.run.outDir, 'score-cache'), routing: c.routing, warn: (m) => log.warn(m),
  });
  try {
    const data = await loadRunData(c, tokenizer, { rejectsDir: run.dir, contextLimit: contextLimitOf(student.config.maxPositionEmbeddings, c) }); // item 8: every prompt fits, named by line and id
    data.notes.forEach((n) => (n.startsWith('warning: ') ? log.warn(n.slice(9)) : log.info(n)));
    // R9 / issue 12: how each teacher's scores reach the student's tokens (teacher/preflight.ts); a teacher
    // with another tokenizer or rendering scores through teacher/aligned.ts, one that cannot is refused
    const chat = c.data as { chatTemplate?: ChatTemplateMode; chatTemplateKwargs?: Record<string, unknown> };
    const conversational = data.train.some((r) => usesTemplate(r, chat));
    wrapTeachers(teachers, (t) => {
      const pf = preflight({ tokenizer, vocabRows: student.config.vocabSize }, { tokenizer: t.tokenizer, vocabRows: t.teacher.identity.vocabSize }, { conversational, chatTemplateKwargs: chat.chatTemplateKwargs });
      [...pf.report, ...pf.notes].forEach((n) => log.info(`teacher ${t.id}: ${n}`));
      if (pf.path === 'exact') return null;
      const studentStopIds = chatStopIds(tokenizer, stopTokenIds(tokenizer, student.config), conversational, chat.chatTemplateKwargs);
      return new AlignedTeacher(t.teacher, { student: tokenizer, teacher: t.tokenizer, studentStopIds, chat });
    });
    const reward = await combine(c.rewards, { timeoutMs: c.rollout.rewardTimeoutMs });
    const score = data.test.length ? heldOutScorer(c, run, { reward, correct: data.correct }, data.test, chatOf(c)) : null;
    if (!score) log.warn(`data.path ${'path' in c.data ? c.data.path : ''} has no held-out split: no held-out evaluation (run.evalEvery is unused); set data.test to a file or a fraction, e.g. 0.1`);
    const opd: OpdJob = {
      student: { config: student.config, weights: student.weights, tokenizer, ...(lora ? { lora } : {}) },
      teacher: teachers.single,
      teachers: teachers.routed,
      prompts: data.train,
      reward,
      correct: data.correct,
      heldOut: score
        ? async (gen, step) => {
            const r = await score(gen, tokenizer, `step-${String(step).padStart(6, '0')}`);
            return { accuracy: r.accuracy, reward: r.meanReward };
          }
        : undefined,
      settings: settingsOf(c),
      ...(teacherSampler ? { teacherSampler } : {}),
      ...(fullTeacher ? { fullTeacher } : {}),
    };
    const persist = { checkpointEvery: c.run.checkpointEvery, keepLast: c.run.keepCheckpoints, tokenizerFrom: sdir };
    return { config: c, run, studentDir: sdir, student, tokenizer, lora, teachers, data, score, opd, persist, close: () => teachers.close() };
  } catch (e) {
    await teachers.close().catch(() => {});
    throw e;
  }
}

/** Objective sft_teacher: the sampling teacher's model (a local HF directory sharing the student's tokenizer). */
async function loadSamplingTeacher(c: RunConfig, studentTok: Tok): Promise<NonNullable<OpdJob['teacherSampler']>> {
  const id = c.algo.sftTeacher ?? c.routing.defaultTeacher ?? c.teachers[0]?.id;
  const t = c.teachers.find((x) => x.id === id);
  const fix = 'set algo.sftTeacher to the id of a local teacher whose path is a Hugging Face model directory';
  if (!t) throw new Error(`algo.objective sft_teacher: no teacher ${id === undefined ? '(teachers is empty)' : `"${id}" in teachers`}; ${fix}`);
  if (t.kind !== 'local' || t.path.endsWith('.onnx'))
    throw new Error(`algo.objective sft_teacher: teacher "${t.id}" is ${t.kind === 'local' ? `an ONNX file (${t.path})` : `an HTTP server (${t.url})`}, but the baseline samples with the teacher's weights in-process; ${fix}`);
  const [model, tok] = await Promise.all([loadModelDir(t.path), loadTokenizer(t.path)]);
  if (tok.fingerprint() !== studentTok.fingerprint())
    throw new Error(`algo.objective sft_teacher: teacher "${t.id}" (${t.path}) has another tokenizer than the student; the student trains on the teacher's token ids, so both must share one tokenizer`);
  return { config: model.config, weights: model.weights };
}

/** algo.blend.divergence full_*: the distilling teacher's model, loaded in the trainer's process (teacher/full-vocab.ts). */
async function loadFullTeacher(c: RunConfig, studentTok: Tok, vocabRows: number): Promise<NonNullable<OpdJob['fullTeacher']>> {
  const d = c.algo.blend.divergence;
  const id = c.routing.defaultTeacher ?? c.teachers[0]?.id;
  const t = c.teachers.find((x) => x.id === id);
  // the config rules refuse HTTP and ONNX teachers at the field; this is what remains to check with the files
  if (!t || t.kind !== 'local' || t.path.endsWith('.onnx')) throw new Error(`algo.blend.divergence ${d}: needs a local teacher with a Hugging Face model directory; teacher "${id ?? ''}" is not one`);
  const [model, tok] = await Promise.all([loadModelDir(t.path), loadTokenizer(t.tokenizer ?? t.path)]);
  if (tok.fingerprint() !== studentTok.fingerprint())
    throw new Error(`algo.blend.divergence ${d}: teacher "${t.id}" (${t.path}) has another tokenizer than the student; a full-vocabulary divergence compares the two distributions id by id, so both must share one tokenizer (use divergence sampled, which scores through the aligned path)`);
  if (model.config.vocabSize !== vocabRows)
    throw new Error(`algo.blend.divergence ${d}: teacher "${t.id}" (${t.path}) has ${model.config.vocabSize} vocabulary rows and the student ${vocabRows}; a full-vocabulary divergence needs the same rows on both sides (use a topk_* divergence)`);
  return { config: model.config, weights: model.weights, temperature: t.temperature };
}

/** What a finished (or stopped) run reports; also written to <run>/summary.json when it finishes. */
export interface RunSummary {
  run_dir: string;
  steps: number;
  skipped_total: number;
  /** Wall-clock seconds over every segment of the run (the sum of segments_s; see the header). */
  wall_s: number;
  /** Wall-clock seconds of each segment (the first run, then each resume), as in <run>/elapsed.json. */
  segments_s: number[];
  /** Set when a signal ended the run early (a checkpoint is committed; resume continues it). */
  stopped_by?: NodeJS.Signals;
  teacher_accuracy?: number;
  teacher_reward?: number;
  student_before_accuracy?: number;
  student_before_reward?: number;
  student_after_accuracy?: number;
  student_after_reward?: number;
  /** Held-out prompts each evaluation decoded (absent: the data has no held-out split). */
  eval_prompts?: number;
  /** Prompt files: accuracy counts completions with reward ≥ this; absent for tasks (exact answers). */
  accuracy_threshold?: number;
}

export interface RunHooks {
  log?: JobLog;
  /** Sample and score through this queue (`opd run --queue`, pipeline/queue/); absent: in-process. */
  queue?: import('./queue/controller.ts').QueueRunOptions;
  /** Polled between steps: true stops the run after the current step with a committed checkpoint. */
  shouldStop?: () => boolean;
  /** After every step (metrics, checkpoint timing). */
  onStep?: PersistOptions['onStep'];
  /** What start-up is doing now (loading, the held-out evaluation before training, restoring the checkpoint). */
  onStartupPhase?: (what: string) => void;
  /** Start-up is over: the first step begins once this returns (a signal from here on can stop after a step, with a checkpoint). */
  onLoopStart?: () => void | Promise<void>;
  /** When the loop has returned, before teachers close and the run is summarised (a progress bar stops here). */
  onLoopEnd?: () => void;
  /** performance.now() at the start of this segment of the run, for wall_s; default: when runJob is called. */
  startedAt?: number;
}

/** Build and run the job of `c` in `run` to the end (or until `shouldStop`); see the header. Holds <run>/run.lock throughout (pipeline/run-lock.ts). */
export async function runJob(c: RunConfig, run: RunDir, hooks: RunHooks = {}): Promise<{ summary: RunSummary; stopped: boolean }> {
  const lock = lockRunDir(run.dir, (m) => hooks.log?.warn(m)); // a second process on this directory is refused here, naming the holder
  try {
    return await runLocked(c, run, hooks);
  } finally {
    lock.release();
  }
}

async function runLocked(c: RunConfig, run: RunDir, hooks: RunHooks): Promise<{ summary: RunSummary; stopped: boolean }> {
  const t0 = hooks.startedAt ?? performance.now();
  const log = hooks.log ?? silent;
  const earlier = readSegments(run.dir, (m) => log.warn(m));
  const segments = () => [...earlier, (performance.now() - t0) / 1e3];
  const recordTime = (s = segments()) => writeSegments(run.dir, s);
  hooks.onStartupPhase?.('loading the student, the teachers and the data');
  const job = await buildJob(c, run, { log });
  const queued = hooks.queue ? await (await import('./queue/controller.ts')).queueJob(job.opd, job.teachers.list, { ...hooks.queue, studentDir: job.studentDir, log: (m) => log.info(m) }) : null;
  const { student, tokenizer, lora, score, data } = job;
  log.info(`run ${run.dir}: ${c.run.steps} steps, ${c.rollout.promptsPerStep} prompts × G=${c.rollout.groupSize}, blend ${c.algo.blend.mode}${c.runtime.oneStepStale ? ', one-step-stale' : ''}`);
  if (score && !existsSync(join(run.dir, 'eval-before.json'))) hooks.onStartupPhase?.('the held-out evaluation before training');
  const heldOut = score ? await heldOutEval(c, score, run.dir, student, tokenizer, (m) => log.info(m), (m) => log.warn(m)) : null;
  if (lora) {
    // from here on the base lives in lora-base/base.bin (mapped by the sessions): drop the host copy
    student.weights.clear();
    collectGarbage();
  }
  hooks.onStartupPhase?.('restoring the newest checkpoint and building the trainer');
  const result = await runPersisted(run, job.opd, {
    ...job.persist,
    log: (m) => log.info(m),
    shouldStop: hooks.shouldStop,
    onLoopStart: async () => {
      await hooks.onLoopStart?.();
      await recordTime();
    },
    onStep: async (rec, state, info) => {
      await recordTime();
      await hooks.onStep?.(rec, state, info);
    },
  }).catch(async (e: unknown) => {
    await queued?.close();
    throw e;
  });
  hooks.onLoopEnd?.();
  await result.close();
  await queued?.close();
  await job.close();
  const summary: RunSummary = {
    run_dir: run.dir, steps: result.state.step, skipped_total: result.state.skippedTotal, wall_s: NaN, segments_s: [], ...heldOut?.before,
    ...(score ? { eval_prompts: data.test.length, ...(data.accuracyThreshold === undefined ? {} : { accuracy_threshold: data.accuracyThreshold }) } : {}),
  };
  /** Close this segment's time record; wall_s is the sum over every segment. */
  const endSegment = async () => {
    const s = segments();
    await recordTime(s);
    Object.assign(summary, { wall_s: s.reduce((a, b) => a + b, 0), segments_s: s });
  };
  if (result.stopped) {
    await endSegment();
    return { summary, stopped: true };
  }
  const trained = result.trainer.params();
  // a LoRA run ends with its PEFT adapter and the merged model; the held-out "after" uses the merged one
  const finalWeights = lora
    ? Object.fromEntries(await exportLora(run.dir, await loadModelDir(job.studentDir), lora.spec, new Map(Object.entries(trained) as Array<[string, Float32Array]>), job.studentDir))
    : trained;
  if (lora) log.info(`LoRA outputs: ${join(run.dir, 'lora', 'adapter')} (PEFT), ${join(run.dir, 'lora', 'merged')} (merged HF model)`);
  Object.assign(summary, await finalHeldOut(run.dir, c, heldOut, finalWeights));
  await endSegment();
  await atomicWriteFile(join(run.dir, 'summary.json'), Buffer.from(JSON.stringify(summary, null, 1) + '\n'));
  log.info(`report: ${writeReport(run.dir, tokenizer)}`);
  if (heldOut)
    log.info(`held-out accuracy (${data.accuracyRule}, ${data.test.length} prompts): teacher ${fmt(summary.teacher_accuracy)}, student before ${fmt(summary.student_before_accuracy)}, after ${fmt(summary.student_after_accuracy)}`);
  return { summary, stopped: false };
}

/**
 * `<outDir>/<name>` for `c`, ready to run: created with the frozen config, or an existing run
 * directory to resume. One holding a different frozen config is refused (naming the changes)
 * unless `force`, which continues the run under the new config.
 */
export async function prepareRunDir(c: RunConfig, opts: { force?: boolean; warn?: (message: string) => void } = {}): Promise<string> {
  const dir = resolve(c.run.outDir, c.run.name ?? `run-${new Date().toISOString().replace(/[-:]/g, '').slice(0, 15)}`);
  await mkdir(dir, { recursive: true });
  const lock = lockRunDir(dir, opts.warn); // a run in progress there refuses this one before its config is compared or replaced
  try {
    if (existsSync(join(dir, 'config.json'))) {
      const changes = checkResumeConfig(dir, c, { override: opts.force });
      if (changes.length) await writeFrozenConfig(dir, c, { replace: true }); // --force: the run continues under the new config
    } else await writeFrozenConfig(dir, c);
  } finally {
    lock.release();
  }
  return dir;
}

const fmt = (x: unknown) => (typeof x === 'number' ? x.toFixed(3) : 'n/a');
