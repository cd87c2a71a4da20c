// `opd run CONFIG [--set path=value ...]` and `opd resume RUN_DIR [--force]`: the GRPO-OPD job on
// the console. The job itself — student, teachers, data, rewards, held-out evaluation, the loop,
// summary.json and the report — is assembled and run by pipeline/job.ts (prepareRunDir, runJob);
// this module adds only what a terminal needs: the progress bar and per-step lines, the log file
// <run>/log.jsonl, and the signals.
// SIGTERM / SIGINT / SIGHUP once the loop runs: the current step finishes, a checkpoint is
// committed, the log is flushed and the command exits 143 / 130 / 129 (a second signal exits at
// once); `opd run` again resumes (R13). During start-up (loading the models, teachers and data, the
// held-out evaluation before training, restoring the checkpoint), before the first step, nothing
// of this start is committed yet: the command says what start-up was doing and that nothing was
// committed, and exits at once with the same codes (../startup-signals.ts guards the commands'
// own start-up, before this module is imported). After SIGHUP (the terminal closed) console
// writes may fail and are ignored.
// With `quiet` (opd compare) the console gets warnings only, but progress still shows when
// `progressEvery` is set: the bar on a terminal, else one step line every `progressEvery` steps
// (and at every held-out evaluation, skip and the last step), prefixed with `label`.
import { existsSync } from 'node:fs';
import type { RunConfig } from '../../config.ts';
import { type RunSummary, prepareRunDir, runJob } from '../../job.ts';
import { createLogger, flushLogger } from '../../log.ts';
import { createProgress } from '../../progress.ts';
import { openRunDir, readMetrics } from '../../rundir.ts';
import { STOP_SIGNALS, delegateSignals, signalExitCode } from '../startup-signals.ts';

export type { RunSummary } from '../../job.ts';
export { signalExitCode } from '../startup-signals.ts';

export interface RunJobOptions {
  /** Console shows warnings and errors only (the log file still has everything). */
  quiet?: boolean;
  /** Install SIGTERM/SIGINT/SIGHUP handlers that stop after the current step (the CLI does; tests in-process need not). */
  handleSignals?: boolean;
  /** The name on the progress bar and step lines (default: the run directory's name). */
  label?: string;
  /** With `quiet`: still show progress (a bar on a terminal, else a step line every this many steps). */
  progressEvery?: number;
  /** The command that starts the run again, for the message of a signal during start-up (default: opd resume RUN_DIR). */
  again?: string;
  /** Sample and score through this queue (`--queue`, pipeline/queue/controller.ts): the run is its controller. */
  queue?: import('../../queue/controller.ts').QueueRunOptions;
}

/** Run (or resume) the job of `c` in the existing run directory `runDir`, with progress, log file and signals. */
export async function runInDir(c: RunConfig, runDir: string, opts: RunJobOptions = {}): Promise<RunSummary> {
  const t0 = performance.now();
  // from here on this function answers the stop signals (a command's start-up guard stays silent)
  let stopSignal: NodeJS.Signals | undefined;
  let started = false;
  let phase = 'opening the run directory';
  let onSignal: (sig: NodeJS.Signals) => void = (sig) => {
    // before the logger exists: nothing to flush
    process.stderr.write(`${sig} during start-up of ${runDir} (${phase}), before the first step: nothing was committed; start it again with: ${opts.again ?? `opd resume ${runDir}`}\n`);
    process.exit(signalExitCode(sig));
  };
  const handler = (sig: NodeJS.Signals) => onSignal(sig);
  const undelegate = opts.handleSignals ? delegateSignals() : () => {};
  if (opts.handleSignals) for (const sig of STOP_SIGNALS) process.on(sig, handler);
  let progress: ReturnType<typeof createProgress> | undefined;
  let log: ReturnType<typeof createLogger> | undefined;
  try {
    const run = await openRunDir(runDir);
    const done = existsSync(run.metrics) ? (readMetrics(run.dir).at(-1)?.step ?? 0) : 0;
    const label = opts.label ?? run.name;
    const showProgress = !opts.quiet || opts.progressEvery !== undefined;
    const bar = (progress = createProgress({ total: c.run.steps, start: Math.min(done, c.run.steps), label, tty: showProgress ? undefined : false }));
    const logger = (log = createLogger({ file: run.log, consoleStream: bar.live ? bar.stream : undefined, consoleLevel: opts.quiet ? 'warn' : undefined }));
    onSignal = (sig) => {
      if (sig === 'SIGHUP') for (const out of [process.stdout, process.stderr]) out.on('error', () => {});
      if (!started) {
        if (stopSignal) return; // already on the way out
        stopSignal = sig;
        bar.stop();
        logger.warn(`${sig} during start-up of ${run.name} (${phase}), before the first step: stopping now; nothing was committed (no step of this start ran). Start it again with: ${opts.again ?? `opd resume ${run.dir}`}`);
        // flush the log, then exit; start-up goes on meanwhile, and whatever it logs after the end is dropped
        logger.on('error', () => {});
        setTimeout(() => process.exit(signalExitCode(sig)), 3000);
        void flushLogger(logger).finally(() => process.exit(signalExitCode(sig)));
        return;
      }
      if (stopSignal) {
        logger.error(`second ${sig}: exiting now without a checkpoint (resume continues from the last committed one)`);
        process.exit(signalExitCode(sig));
      }
      stopSignal = sig;
      logger.warn(`${sig}: finishing the current step, then committing a checkpoint and exiting (send it again to exit at once)`);
    };
    const every = Math.max(1, Math.floor(opts.progressEvery ?? 1));
    const { summary, stopped } = await runJob(c, run, {
      log: logger,
      queue: opts.queue,
      startedAt: t0,
      shouldStop: () => stopSignal !== undefined,
      onStartupPhase: (what) => (phase = what),
      onLoopStart: () => {
        // a signal during start-up is already exiting: the first step must not begin (it would be checkpointed)
        if (stopSignal) return new Promise<void>(() => {});
        started = true;
      },
      onStep: (rec, _state, info) => {
        const m = rec.metrics;
        const acc = m.accuracy === undefined ? '' : ` acc ${m.accuracy.toFixed(3)}`;
        const kl = m.teacher_kl === undefined ? '' : ` teacher_kl ${m.teacher_kl.toFixed(3)}`;
        const ev = m.eval_accuracy === undefined ? '' : ` | held-out acc ${m.eval_accuracy.toFixed(3)} reward ${m.eval_reward!.toFixed(3)}`;
        const ck = info.checkpointSeconds === undefined ? '' : ' | checkpoint';
        const line = `step ${rec.step}/${c.run.steps} reward ${m.reward_mean?.toFixed(3)}${acc}${kl} loss ${m.loss?.toFixed(4) ?? '-'} ${m.step_s?.toFixed(2)}s${ev}${ck}${rec.skipped ? ` SKIPPED (${rec.skipReason})` : ''}`;
        if (opts.quiet) {
          // the console takes warnings only: progress goes to stderr itself (or the bar)
          const due = rec.step % every === 0 || rec.step === c.run.steps || !!ev || rec.skipped;
          if (opts.progressEvery !== undefined && !bar.live && due) process.stderr.write(`${label} ${line}\n`);
          logger.info(line); // the log file's line
        } else {
          // on a terminal the bar carries the per-step numbers; evaluations and skips still get a line
          logger.log(bar.live && !ev && !rec.skipped ? 'debug' : 'info', line);
        }
        bar.update(rec.step, `reward ${m.reward_mean?.toFixed(2)}${acc}${kl}${m.eval_accuracy === undefined ? '' : ` held-out ${m.eval_accuracy.toFixed(3)}`}`);
      },
      onLoopEnd: () => bar.stop(),
    });
    if (stopped) {
      logger.warn(`stopped by ${stopSignal} after step ${summary.steps}/${c.run.steps}; checkpoint committed. Continue with: opd resume ${run.dir}`);
      return { ...summary, stopped_by: stopSignal };
    }
    return summary;
  } finally {
    progress?.stop();
    if (opts.handleSignals) for (const sig of STOP_SIGNALS) process.off(sig, handler);
    undelegate();
    if (log) await flushLogger(log);
  }
}

/**
 * Create or resume `<outDir>/<name>` for `c` exactly as `opd run` does and run the job. A run
 * directory holding a different frozen config is refused (naming the changes) unless `force`.
 */
export async function startRun(c: RunConfig, opts: RunJobOptions & { force?: boolean } = {}): Promise<RunSummary> {
  return runInDir(c, await prepareRunDir(c, { force: opts.force, warn: (m) => process.stderr.write(`warning: ${m}\n`) }), opts);
}
