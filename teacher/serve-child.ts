// Test support: `opd teacher serve` in a child process, resolved once it prints the URL it listens on
// (the server, reproducibility and drain tests all start one this way).

import { type ChildProcess, spawn } from 'node:child_process';
import { OPD_BIN } from '../pipeline/cli/opd-bin.ts';

export interface ServeChild {
  child: ChildProcess;
  url: string;
  /** The exit code, or the signal that ended it. */
  exited: Promise<number | string | null>;
  /** What it wrote to stderr so far. */
  stderr(): string;
}

/**
 * Spawn `opd teacher serve ...args` (log level warn) and wait for "listening on URL"; rejects if it
 * exits first. `asProgram` runs bin/opd.mjs itself (its shell launcher execs node) instead of
 * `node bin/opd.mjs`; `env` adds to the environment.
 */
export async function spawnTeacherServe(args: readonly string[], o: { asProgram?: boolean; env?: Record<string, string | undefined> } = {}): Promise<ServeChild> {
  const env = { ...process.env, OPD_LOG_LEVEL: 'warn', ...o.env };
  const child = o.asProgram ? spawn(OPD_BIN, ['teacher', 'serve', ...args], { env }) : spawn(process.execPath, [OPD_BIN, 'teacher', 'serve', ...args], { env });
  let out = '';
  let err = '';
  child.stderr.on('data', (d) => (err += d));
  const exited = new Promise<number | string | null>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal)));
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout.on('data', (d) => {
      out += d;
      const m = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(out);
      if (m) resolve(m[1]!);
    });
    void exited.then((code) => reject(new Error(`opd teacher serve exited ${code}: ${err}`)));
  });
  return { child, url, exited, stderr: () => err };
}
