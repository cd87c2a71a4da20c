// `opd run CONFIG [--set path=value ...]` and `opd resume RUN_DIR [--force]`: the GRPO-OPD job.
//
// run: validate the config, create <outDir>/<name>/ with the frozen config (or, if that run
// directory already holds one, resume it: refused with what changed unless --force), open the
// student, the teacher(s) behind the shared score cache (<outDir>/score-cache), the prompts and
// the rewards, check the tokenizers agree, then run the loop with checkpoints and metrics on disk,
// held-out evaluations on the run.evalEvery cadence, and at the end summary.json and the report.
// Held-out evaluation takes one path for every kind of data (pipeline/run-data.ts): a task's test
// split or a prompt file's data.test, scored with the run's own rewards; each evaluation's
// completions are kept in <run>/eval/ (before, teacher-<id>, step-NNNNNN, after).
// SIGTERM / SIGINT / SIGHUP: the current step finishes, a checkpoint is committed, the log is
// flushed and the command exits 143 / 130 / 129 (a second signal exits at once); `opd run` again
// resumes (R13). After SIGHUP (the terminal closed) console writes may fail and are ignored.
// The `opd run` / `opd resume` commands are run-command.ts: they validate the config before this
// module (and onnxruntime with it) is imported.

import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { atomicWriteFile } from '../../../engine/io/atomic.ts';
import { join, resolve } from 'node:path';
import { combine } from '../../../data/rewards/index.ts';
import type { TaskRecord } from '../../../data/tasks/types.ts';
import { loadTokenizer } from '../../../data/tokenizer/hf.ts';
import { initModelDir, tinyConfig } from '../../../student/model/init.ts';
import { loadModelDir } from '../../../student/model/weights.ts';
import { CachedTeacher, ScoreCache } from '../../../teacher/cache.ts';
import { HttpTeacher } from '../../../teacher/http.ts';
import { LocalTeacher } from '../../../teacher/local.ts';
import { preflight } from '../../../teacher/preflight.ts';
import type { Teacher } from '../../../teacher/types.ts';
import { type RunConfig, blendSpec, policyLossOptions } from '../../config.ts';
import { studentLora, studentPath } from '../../config/sources.ts';
import { exportLora, prepareLoraStudent } from '../../recipes/lora.ts';
import { type EvalModel, type EvalResult, type Scoring, evaluateRecords, samplesJsonl } from '../../eval.ts';
import { loadRunData } from '../../run-data.ts';
import { writeReport } from '../../report.ts';
import { createLogger, flushLogger } from '../../log.ts';
import { createProgress } from '../../progress.ts';
import type { TeacherSet } from '../../recipes/rollout-step.ts';
import type { OpdJob, OpdSettings } from '../../recipes/opd.ts';
import { runPersisted } from '../../recipes/persisted.ts';
import { type RunDir, checkResumeConfig, openRunDir, readMetrics, writeFrozenConfig } from '../../rundir.ts';

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
    lrSchedule: o.schedule,
    evalEvery: c.run.evalEvery,
    oneStepStale: c.runtime.oneStepStale,
    weightDecay: o.weightDecay,
    adamw: { beta1: o.beta1, beta2: o.beta2, eps: o.eps, maxGradNorm: o.maxGradNorm },
    maxConsecutiveSkips: c.run.maxConsecutiveSkips,
    seed: c.run.seed,
    trainStep: c.train.step,
    runtime: { device: c.runtime.device, threads: c.runtime.threads },
  };
}

/** The teachers the blend needs (none for grpo), each behind the shared score cache. */
async function openTeachers(c: RunConfig, studentTokenizerDir: string): Promise<{ single: Teacher | null; set?: TeacherSet; all: Teacher[] }> {
  if (c.algo.blend.mode === 'grpo' || c.teachers.length === 0) return { single: null, all: [] };
  const cache = ScoreCache.open(join(c.run.outDir, 'score-cache'));
  const open = async (t: RunConfig['teachers'][number]): Promise<Teacher> => {
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
    return new CachedTeacher(inner, cache);
  };
  const all = await Promise.all(c.teachers.map(open));
  if (all.length === 1) return { single: all[0]!, all };
  const byId = new Map(c.teachers.map((t, i) => [t.id, all[i]!]));
  return { single: null, set: { byId, routes: { byTag: c.routing.byTag, defaultTeacher: c.routing.defaultTeacher } }, all };
}

/** The student directory: the configured one, or a {builtin} model created once inside the run directory. */
async function studentDir(c: RunConfig, runDir: string): Promise<string> {
  const path = studentPath(c.student);
  if (path !== null) return path;
  const dir = join(runDir, 'student-init');
  if (!existsSync(join(dir, 'config.json'))) await initModelDir(dir, tinyConfig(), c.run.seed);
  return dir;
}

/** What a finished (or stopped) run reports; also written to <run>/summary.json when it finishes. */
export interface RunSummary {
  run_dir: string;
  steps: number;
  skipped_total: number;
  wall_s: number;
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

export interface RunJobOptions {
  /** Console shows warnings and errors only (the log file still has everything). */
  quiet?: boolean;
  /** Install SIGTERM/SIGINT/SIGHUP handlers that stop after the current step (the CLI does; tests in-process need not). */
  handleSignals?: boolean;
}

export async function runJob(c: RunConfig, runDir: string, opts: RunJobOptions = {}): Promise<RunSummary> {
  const t0 = performance.now();
  const run = await openRunDir(runDir);
  const done = existsSync(run.metrics) ? (readMetrics(run.dir).at(-1)?.step ?? 0) : 0;
  const progress = createProgress({ total: c.run.steps, start: Math.min(done, c.run.steps), label: run.name, tty: opts.quiet ? false : undefined });
  const log = createLogger({ file: run.log, consoleStream: progress.live ? progress.stream : undefined, consoleLevel: opts.quiet ? 'warn' : undefined });
  let stopSignal: NodeJS.Signals | undefined;
  const onSignal = (sig: NodeJS.Signals) => {
    if (stopSignal) {
      log.error(`second ${sig}: exiting now without a checkpoint (resume continues from the last committed one)`);
      process.exit(signalExitCode(sig));
    }
    stopSignal = sig;
    if (sig === 'SIGHUP') for (const out of [process.stdout, process.stderr]) out.on('error', () => {});
    log.warn(`${sig}: finishing the current step, then committing a checkpoint and exiting (send it again to exit at once)`);
  };
  if (opts.handleSignals) {
    for (const sig of STOP_SIGNALS) process.on(sig, onSignal);
  }
  try {
    const sdir = await studentDir(c, run.dir);
    const [student, tokenizer] = await Promise.all([loadModelDir(sdir), loadTokenizer(sdir)]);
    const loraCfg = studentLora(c.student);
    const lora = loraCfg ? await prepareLoraStudent(run.dir, student, loraCfg, c.run.seed) : undefined;
    const teachers = await openTeachers(c, sdir);
    for (const [i, t] of c.teachers.entries()) {
      const teacher = teachers.all[i];
      if (!teacher || t.kind !== 'local') continue;
      const pf = preflight({ tokenizer, vocabRows: student.config.vocabSize }, { tokenizer: await loadTokenizer(t.tokenizer ?? t.path), vocabRows: teacher.identity.vocabSize });
      pf.notes.forEach((n) => log.info(`teacher ${t.id}: ${n}`));
    }
    const data = await loadRunData(c, tokenizer, { rejectsDir: run.dir });
    data.notes.forEach((n) => (n.startsWith('warning: ') ? log.warn(n.slice(9)) : log.info(n)));
    const reward = await combine(c.rewards);
    const score = data.test.length ? heldOutScorer(c, run, { reward, correct: data.correct }, data.test) : null;
    if (!score) log.warn(`data.path ${'path' in c.data ? c.data.path : ''} has no held-out split: no held-out evaluation (run.evalEvery is unused); set data.test to a file or a fraction, e.g. 0.1`);
    const job: OpdJob = {
      student: { config: student.config, weights: student.weights, tokenizer, ...(lora ? { lora } : {}) },
      teacher: teachers.single,
      teachers: teachers.set,
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
    };
    log.info(`run ${run.dir}: ${c.run.steps} steps, ${c.rollout.promptsPerStep} prompts × G=${c.rollout.groupSize}, blend ${c.algo.blend.mode}${c.runtime.oneStepStale ? ', one-step-stale' : ''}`);
    const heldOut = score ? await heldOutEval(c, score, run.dir, student, tokenizer, (m) => log.info(m)) : null;
    const result = await runPersisted(run, job, {
      checkpointEvery: c.run.checkpointEvery,
      keepLast: c.run.keepCheckpoints,
      tokenizerFrom: sdir,
      log: (m) => log.info(m),
      shouldStop: () => stopSignal !== undefined,
      onStep: (rec, _state, info) => {
        const m = rec.metrics;
        const acc = m.accuracy === undefined ? '' : ` acc ${m.accuracy.toFixed(3)}`;
        const kl = m.teacher_kl === undefined ? '' : ` teacher_kl ${m.teacher_kl.toFixed(3)}`;
        const ev = m.eval_accuracy === undefined ? '' : ` | held-out acc ${m.eval_accuracy.toFixed(3)} reward ${m.eval_reward!.toFixed(3)}`;
        const ck = info.checkpointSeconds === undefined ? '' : ' | checkpoint';
        const line = `step ${rec.step}/${c.run.steps} reward ${m.reward_mean?.toFixed(3)}${acc}${kl} loss ${m.loss?.toFixed(4) ?? '-'} ${m.step_s?.toFixed(2)}s${ev}${ck}${rec.skipped ? ` SKIPPED (${rec.skipReason})` : ''}`;
        // on a terminal the bar carries the per-step numbers; evaluations and skips still get a line
        log.log(progress.live && !ev && !rec.skipped ? 'debug' : 'info', line);
        progress.update(rec.step, `reward ${m.reward_mean?.toFixed(2)}${acc}${kl}${m.eval_accuracy === undefined ? '' : ` held-out ${m.eval_accuracy.toFixed(3)}`}`);
      },
    });
    progress.stop();
    await result.close();
    await Promise.all(teachers.all.map((t) => t.close()));
    const summary: RunSummary = {
      run_dir: run.dir, steps: result.state.step, skipped_total: result.state.skippedTotal, wall_s: (performance.now() - t0) / 1e3, ...heldOut?.before,
      ...(score ? { eval_prompts: data.test.length, ...(data.accuracyThreshold === undefined ? {} : { accuracy_threshold: data.accuracyThreshold }) } : {}),
    };
    if (result.stopped) {
      log.warn(`stopped by ${stopSignal} after step ${result.state.step}/${c.run.steps}; checkpoint committed. Continue with: opd resume ${run.dir}`);
      return { ...summary, stopped_by: stopSignal };
    }
    const trained = result.trainer.params();
    // a LoRA run ends with its PEFT adapter and the merged model; the held-out "after" uses the merged one
    const finalWeights = lora ? Object.fromEntries(await exportLora(run.dir, student, lora.spec, new Map(Object.entries(trained) as Array<[string, Float32Array]>), sdir)) : trained;
    if (lora) log.info(`LoRA outputs: ${join(run.dir, 'lora', 'adapter')} (PEFT), ${join(run.dir, 'lora', 'merged')} (merged HF model)`);
    Object.assign(summary, await finalHeldOut(run.dir, c, heldOut, finalWeights));
    writeFileSync(join(run.dir, 'summary.json'), JSON.stringify(summary, null, 1) + '\n');
    log.info(`report: ${writeReport(run.dir, tokenizer)}`);
    if (heldOut)
      log.info(`held-out accuracy (${data.accuracyRule}, ${data.test.length} prompts): teacher ${fmt(summary.teacher_accuracy)}, student before ${fmt(summary.student_before_accuracy)}, after ${fmt(summary.student_after_accuracy)}`);
    return summary;
  } finally {
    progress.stop();
    if (opts.handleSignals) {
      for (const sig of STOP_SIGNALS) process.off(sig, onSignal);
    }
    await flushLogger(log);
  }
}

/**
 * Create or resume `<outDir>/<name>` for `c` exactly as `opd run` does and run the job. A run
 * directory holding a different frozen config is refused (naming the changes) unless `force`.
 */
export async function startRun(c: RunConfig, opts: RunJobOptions & { force?: boolean } = {}): Promise<RunSummary> {
  const dir = resolve(c.run.outDir, c.run.name ?? `run-${new Date().toISOString().replace(/[-:]/g, '').slice(0, 15)}`);
  if (existsSync(join(dir, 'config.json'))) {
    const changes = checkResumeConfig(dir, c, { override: opts.force });
    if (changes.length) await writeFrozenConfig(dir, c, { replace: true }); // --force: the run continues under the new config
  } else {
    await mkdir(dir, { recursive: true });
    await writeFrozenConfig(dir, c);
  }
  return runJob(c, dir, opts);
}

const STOP_SIGNALS = ['SIGTERM', 'SIGINT', 'SIGHUP'] as const;
/** The shell's convention, 128 + signal number: SIGHUP 129, SIGINT 130, SIGTERM 143. */
export const signalExitCode = (sig: NodeJS.Signals): number => ({ SIGHUP: 129, SIGINT: 130 })[sig as string] ?? 143;
const fmt = (x: unknown) => (typeof x === 'number' ? x.toFixed(3) : 'n/a');

type Tok = Awaited<ReturnType<typeof loadTokenizer>>;
type HeldOutScorer = (model: EvalModel, tok: Tok, name: string) => Promise<EvalResult>;

/** One held-out evaluation (greedy) of the run's held-out records, its completions kept in <run>/eval/<name>.jsonl. */
function heldOutScorer(c: RunConfig, run: RunDir, scoring: Scoring, test: readonly TaskRecord[]): HeldOutScorer {
  const opts = { seed: c.run.seed, maxNewTokens: c.rollout.maxNewTokens, keepSamples: Infinity, runtime: { device: c.runtime.device, threads: c.runtime.threads } };
  return async (model, tok, name) => {
    const r = await evaluateRecords(model, tok, test, scoring, opts);
    await mkdir(run.eval, { recursive: true });
    await atomicWriteFile(join(run.eval, `${name}.jsonl`), Buffer.from(samplesJsonl(r.samples)));
    return r;
  };
}

/**
 * Held-out accuracy and reward (greedy) of the teacher(s') first local model and of the student
 * before training, computed once per run and kept in eval-before.json so a resumed run reports the
 * same numbers.
 */
async function heldOutEval(c: RunConfig, score: HeldOutScorer, runDir: string, student: Awaited<ReturnType<typeof loadModelDir>>, tok: Tok, log: (m: string) => void) {
  const file = join(runDir, 'eval-before.json');
  let before: Record<string, number>;
  if (existsSync(file)) before = JSON.parse(readFileSync(file, 'utf8')) as Record<string, number>;
  else {
    log('evaluating the student (and a local teacher) on the held-out prompts');
    const s = await score(student, tok, 'before');
    before = { student_before_accuracy: s.accuracy, student_before_reward: s.meanReward };
    const t = c.teachers.find((x) => x.kind === 'local' && !x.path.endsWith('.onnx'));
    if (t?.kind === 'local') {
      const [tm, ttok] = await Promise.all([loadModelDir(t.path), loadTokenizer(t.tokenizer ?? t.path)]);
      const r = await score(tm, ttok, `teacher-${t.id}`);
      Object.assign(before, { teacher_accuracy: r.accuracy, teacher_reward: r.meanReward });
    }
    writeFileSync(file, JSON.stringify(before) + '\n');
  }
  return {
    before,
    after: async (weights: Record<string, Float32Array | Float64Array>) => {
      const r = await score({ config: student.config, weights: new Map(Object.entries(weights) as Array<[string, Float32Array]>) }, tok, 'after');
      return { student_after_accuracy: r.accuracy, student_after_reward: r.meanReward };
    },
  };
}

/** The final held-out numbers: the last step's evaluation line when there is one, else evaluated now. */
async function finalHeldOut(runDir: string, c: RunConfig, heldOut: Awaited<ReturnType<typeof heldOutEval>> | null, weights: Record<string, Float32Array | Float64Array>) {
  if (!heldOut) return {};
  const last = readMetrics(runDir).at(-1);
  if (last?.step === c.run.steps && typeof last.eval_accuracy === 'number')
    return { student_after_accuracy: last.eval_accuracy, student_after_reward: last.eval_reward as number };
  return heldOut.after(weights);
}
