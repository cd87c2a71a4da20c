// Test and bench helpers: a throw-away redis-server (Debian's `redis-server`) on a free loopback
// port in a temporary directory, without persistence, and a way to restart it on the same port
// (empty: what a Redis restart without AOF leaves); `opd worker` child processes.

import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { OPD_BIN } from '../cli/opd-bin.ts';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Whether `redis-server` is installed (.ci/run installs it; tests skip with a reason otherwise). */
export const hasRedis = () => spawnSync('redis-server', ['--version']).status === 0;

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((ok) => s.listen(0, '127.0.0.1', ok));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((ok) => s.close(() => ok()));
  return port;
}

export interface LocalRedis {
  url: string;
  port: number;
  /** SIGKILL the server and start an empty one on the same port. */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

/** With `password`, the server requires it (requirepass) and `url` carries it. */
export async function startRedis(o: { password?: string } = {}): Promise<LocalRedis> {
  const dir = mkdtempSync(join(tmpdir(), 'opd-redis-'));
  const port = await freePort();
  let proc: ChildProcess;
  const launch = async () => {
    proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no', ...(o.password ? ['--requirepass', o.password] : [])], { stdio: ['ignore', 'pipe', 'pipe'] });
    await new Promise<void>((ok, fail) => {
      let out = '';
      proc.stdout!.on('data', (b: Buffer) => {
        out += b.toString();
        if (out.includes('Ready to accept connections')) ok();
      });
      proc.once('exit', (code) => fail(new Error(`redis-server on port ${port} exited (${code}): ${out.slice(-500)}`)));
    });
  };
  const kill = async (sig: NodeJS.Signals) => {
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    await new Promise<void>((ok) => {
      proc.once('exit', () => ok());
      proc.kill(sig);
    });
  };
  await launch();
  return {
    url: `redis://${o.password ? `:${encodeURIComponent(o.password)}@` : ''}127.0.0.1:${port}`,
    port,
    restart: async () => {
      await kill('SIGKILL');
      await launch();
    },
    stop: async () => {
      await kill('SIGTERM');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface WorkerProc {
  proc: ChildProcess;
  log: string[];
  active(): Promise<void>;
  /** Resolves when a log line matches `re`. */
  when(re: RegExp): Promise<void>;
  stop(): Promise<void>;
}

/** `opd worker --queue URL` in a child process, resolved once it says ready. */
export async function spawnWorker(url: string, env: Record<string, string> = {}, args: readonly string[] = []): Promise<WorkerProc> {
  const proc = spawn(process.execPath, [OPD_BIN, 'worker', '--queue', url, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
  const log: string[] = [];
  const waiters: Array<[RegExp, () => void]> = [];
  proc.stderr!.on('data', (b: Buffer) => {
    for (const line of b.toString().split('\n').filter(Boolean)) {
      log.push(line);
      for (const [re, ok] of waiters) if (re.test(line)) ok();
    }
  });
  const when = (re: RegExp) =>
    new Promise<void>((ok, fail) => {
      if (log.some((l) => re.test(l))) return ok();
      waiters.push([re, ok]);
      proc.once('exit', (code, sig) => fail(new Error(`worker exited (${code ?? sig}) before ${re}: ${log.join('\n')}`)));
    });
  await when(/^ready$/);
  return {
    proc,
    log,
    active: () => when(/^job \S+ active$/),
    when,
    stop: async () => {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      await new Promise<void>((ok) => {
        proc.once('exit', () => ok());
        proc.kill('SIGTERM');
      });
    },
  };
}

