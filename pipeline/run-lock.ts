// One process per run directory (docs/reliability.md "run lock"): `<run>/run.lock` holds the
// holder's {pid, host, since, command}. It is created whole or not at all: the record is written to
// a temp file and hard-linked to run.lock, which fails if run.lock exists (link(2) is atomic, like
// O_EXCL, and the file never exists empty). A second process is refused at once with a
// RunLockedError naming the holder. A lock whose pid is gone on this host (the holder was killed
// with -9, or the machine rebooted) is stale and taken over, with a warning: it is renamed aside
// (only one taker's rename can win), and the taker checks that what it moved is the stale record it
// read; if another taker got there first, it puts that one back and tries again. Released when the
// holder is done, and on process exit (process.exit from a signal handler included).
// Leaves out: a lock held on another host (a shared filesystem) is never taken over, because its
// pid cannot be checked from here (the message says how to remove it); a dead holder's pid reused
// by another process keeps the lock (the message names the pid, so it can be checked and removed).
//
// Why not proper-lockfile: it judges staleness by an mtime the holder must refresh from a timer,
// and a long synchronous ONNX call delays that timer, so a live run could be taken over; and it
// does not record who holds the lock, which the refusal message must name.

import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';
import { tempPathFor } from '../engine/io/atomic.ts';

export const LOCK_FILE = 'run.lock';

export interface LockHolder {
  pid: number;
  host: string;
  /** ISO time the lock was taken. */
  since: string;
  command: string;
}

export class RunLockedError extends Error {
  override name = 'RunLockedError';
  constructor(readonly file: string, readonly holder: LockHolder, why: string) {
    super(`${path.dirname(file)} is in use by another opd process: pid ${holder.pid} on host ${holder.host}, since ${holder.since} (${holder.command}). ${why}`);
  }
}

export interface RunLock {
  file: string;
  /** Give the lock up (once per lockRunDir call; the file goes with the last). */
  release(): void;
}

/** Locks held by this process: file → how many holders (prepareRunDir, then runJob, in one process). */
const held = new Map<string, number>();
let exitHook = false;

/** Take `<dir>/run.lock` for this process, or throw RunLockedError naming its holder; see the header. */
export function lockRunDir(dir: string, warn: (message: string) => void = () => {}): RunLock {
  const file = path.join(path.resolve(dir), LOCK_FILE);
  const handle = (): RunLock => {
    let released = false;
    return {
      file,
      release: () => {
        if (released) return;
        released = true;
        const n = (held.get(file) ?? 1) - 1;
        if (n > 0) held.set(file, n);
        else {
          held.delete(file);
          removeIfOurs(file);
        }
      },
    };
  };
  if (held.has(file)) {
    held.set(file, held.get(file)! + 1);
    return handle();
  }
  const me: LockHolder = { pid: process.pid, host: hostname(), since: new Date().toISOString(), command: commandLine() };
  const text = JSON.stringify(me) + '\n';
  for (let attempt = 0; attempt < 8; attempt++) {
    if (tryCreate(file, text)) {
      held.set(file, 1);
      if (!exitHook) {
        exitHook = true;
        process.on('exit', () => held.forEach((_n, f) => removeIfOurs(f)));
      }
      return handle();
    }
    const raw = readOrNull(file);
    if (raw === null) continue; // released meanwhile: try again
    const holder = parseHolder(raw);
    if (!holder) throw new Error(`${file} is not a lock record ({pid, host, since, command}): if no opd process runs on ${path.dirname(file)}, delete ${file} and start again`);
    if (holder.host !== me.host) throw new RunLockedError(file, holder, `It runs on another host, so whether it is alive cannot be checked from here: if it is not, delete ${file} and start again`);
    if (holder.pid !== process.pid && pidAlive(holder.pid)) throw new RunLockedError(file, holder, `Wait for it to finish or stop it (kill -TERM ${holder.pid}: it commits a checkpoint), then resume; if pid ${holder.pid} is not an opd process, delete ${file}`);
    // stale: its process is gone (or it is this pid, reused after a reboot, and not held by us)
    const aside = `${file}.stale-${process.pid}-${randomBytes(4).toString('hex')}`;
    try {
      fs.renameSync(file, aside);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw e;
    }
    const moved = readOrNull(aside);
    if (moved !== raw) {
      // another process took the stale lock over between our read and our rename: give its lock back
      try {
        fs.linkSync(aside, file);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      }
      fs.rmSync(aside, { force: true });
      continue;
    }
    fs.rmSync(aside, { force: true });
    warn(`took over the stale lock ${file} of pid ${holder.pid} (host ${holder.host}, since ${holder.since}): that process is gone`);
  }
  throw new Error(`could not take ${file}: other processes kept taking it; try again`);
}

function tryCreate(file: string, text: string): boolean {
  const tmp = tempPathFor(file);
  fs.writeFileSync(tmp, text, { flag: 'wx' });
  try {
    fs.linkSync(tmp, file);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw new Error(`cannot create the run lock ${file}: ${(e as Error).message}`);
  } finally {
    fs.rmSync(tmp, { force: true });
  }
}

function readOrNull(file: string): string | null {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}

function parseHolder(raw: string): LockHolder | null {
  try {
    const v = JSON.parse(raw) as LockHolder;
    return Number.isSafeInteger(v?.pid) && v.pid > 0 && typeof v.host === 'string' && typeof v.since === 'string' ? { ...v, command: String(v.command ?? '?') } : null;
  } catch {
    return null;
  }
}

/** Whether `pid` runs on this host (EPERM: it runs, as another user). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Remove `file` if it is still this process's lock (never one a taker wrote after ours went stale). */
function removeIfOurs(file: string): void {
  try {
    const h = parseHolder(fs.readFileSync(file, 'utf8'));
    if (h?.pid === process.pid && h.host === hostname()) fs.rmSync(file, { force: true });
  } catch {
    // already gone, or unreadable: nothing of ours to remove
  }
}

const commandLine = () => ['opd', ...process.argv.slice(2)].join(' ').slice(0, 300);
