// Stop signals before a run's loop starts. Until a job's first step begins there is nothing to save
// (no step ran, nothing of this start is committed), so SIGINT / SIGTERM / SIGHUP then exit at once
// with 130 / 143 / 129 and one line saying what was interrupted and how to start again, instead of
// the default silent death (or, once a job handles signals, instead of waiting for a first step
// only to checkpoint it). A command installs `guardStartup` first thing, before the heavy imports
// (onnxruntime, the models); runInDir (commands/run.ts) takes the signals over with
// `delegateSignals` for as long as it runs a job, and says itself what its start-up was doing.
// This module imports nothing heavy.

export const STOP_SIGNALS = ['SIGTERM', 'SIGINT', 'SIGHUP'] as const;

/** The shell's convention, 128 + signal number: SIGHUP 129, SIGINT 130, SIGTERM 143. */
export const signalExitCode = (sig: NodeJS.Signals): number => ({ SIGHUP: 129, SIGINT: 130 })[sig as string] ?? 143;

/** The command line that started this process, as `opd …` with shell quoting where needed (to say how to start again). */
export function thisCommand(argv: readonly string[] = process.argv.slice(2)): string {
  const q = (a: string) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`);
  return ['opd', ...argv.map(q)].join(' ');
}

let delegated = 0;

/**
 * Until the returned function is called, a stop signal prints `message(sig)` to stderr and exits
 * with signalExitCode(sig); silent while a job handles the signals itself (delegateSignals).
 */
export function guardStartup(message: (sig: NodeJS.Signals) => string): () => void {
  const on = (sig: NodeJS.Signals) => {
    if (delegated > 0) return;
    try {
      process.stderr.write(message(sig) + '\n');
    } catch {
      // SIGHUP: the terminal may be gone
    }
    process.exit(signalExitCode(sig));
  };
  for (const s of STOP_SIGNALS) process.on(s, on);
  return () => {
    for (const s of STOP_SIGNALS) process.off(s, on);
  };
}

/** A job handles the stop signals itself until the returned function is called (guards stay silent meanwhile). */
export function delegateSignals(): () => void {
  delegated++;
  let done = false;
  return () => {
    if (!done) delegated--;
    done = true;
  };
}
