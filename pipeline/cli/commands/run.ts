// `opd run CONFIG [--set path=value ...]` and `opd resume RUN_DIR [--force]`: the GRPO-OPD job on
// the console. The job itself — student, teachers, data, rewards, held-out evaluation, the loop,
// summary.json and the report — is assembled and run by pipeline/job.ts (prepareRunDir, runJob);
// this module adds only what a terminal needs: the progress bar and per-step lines, the log file
// <run>/log.jsonl, and the signals.
// SIGTERM / SIGINT / SIGHUP: the current step finishes, a checkpoint is committed, the log is
// flushed and the command exits 143 / 130 / 129 (a second signal exits at once); `opd run` again
// resumes (R13). After SIGHUP (the terminal closed) console writes may fail and are ignored.
// The `opd run` / `opd resume` commands are run-command.ts: they validate the config before this
// module (and onnxruntime with it) is imported.

import { existsSync } from 'node:fs';
import type { RunConfig } from '../../config.ts';
import { type RunSummary, prepareRunDir, runJob } from '../../job.ts';
import { createLogger, flushLogger } from '../../log.ts';
import { createProgress } from '../../progress.ts';
import { openRunDir, readMetrics } from '../../rundir.ts';

export type { RunSummary } from '../../job.ts';

export interface RunJobOptions {
  /** Console shows warnings and errors only (the log file still has everything). */
  quiet?: boolean;
  /** Install SIGTERM/SIGINT/SIGHUP handlers that stop after the current step (the CLI does; tests in-process need not). */
  handleSignals?: boolean;
}

/** Run (or resume) the job of `c` in the existing run directory `runDir`, with progress, log file and signals. */
export async function runInDir(c: RunConfig, runDir: string, opts: RunJobOptions = {}): Promise<RunSummary> {
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
    const { summary, stopped } = await runJob(c, run, {
      log,
      startedAt: t0,
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
      onLoopEnd: () => progress.stop(),
    });
    if (stopped) {
      log.warn(`stopped by ${stopSignal} after step ${summary.steps}/${c.run.steps}; checkpoint committed. Continue with: opd resume ${run.dir}`);
      return { ...summary, stopped_by: stopSignal };
    }
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
  return runInDir(c, await prepareRunDir(c, { force: opts.force }), opts);
}

const STOP_SIGNALS = ['SIGTERM', 'SIGINT', 'SIGHUP'] as const;
/** The shell's convention, 128 + signal number: SIGHUP 129, SIGINT 130, SIGTERM 143. */
export const signalExitCode = (sig: NodeJS.Signals): number => ({ SIGHUP: 129, SIGINT: 130 })[sig as string] ?? 143;
