// Disk-full and I/O errors of opd's own writes, made actionable (docs/reliability.md "disk full").
//
// Node's write errors name no file ("ENOSPC: no space left on device, write"). Every writer of run
// state (atomic writes, the metrics append, the log file) passes its errors through `writeError`,
// which, for ENOSPC / EDQUOT / EIO / EROFS / EFBIG, returns a DiskWriteError naming the file, the
// filesystem (its mount point) and what to do: free space there, then `opd resume`. Nothing
// committed is lost by such a failure: atomic writes leave the old file (or none), and a resume
// drops a metrics line cut short. Other errors pass through unchanged.

import { statSync } from 'node:fs';
import path from 'node:path';

const REASONS: Record<string, string> = {
  ENOSPC: 'no space left on the device',
  EDQUOT: 'disk quota exceeded',
  EIO: 'I/O error (a failing disk or a lost network mount)',
  EROFS: 'the filesystem is read-only',
  EFBIG: 'the file is larger than the filesystem allows',
};

/** Whether `e` is an error of the disk itself (full, quota, I/O, read-only), not of the program. */
export function isDiskError(e: unknown): e is NodeJS.ErrnoException {
  const code = (e as NodeJS.ErrnoException | null)?.code;
  return typeof code === 'string' && Object.hasOwn(REASONS, code);
}

export class DiskWriteError extends Error {
  constructor(
    readonly file: string,
    readonly code: string,
    readonly mount: string,
    options?: { cause?: unknown },
  ) {
    super(
      `${file}: ${REASONS[code] ?? code} (${code}) while writing it. ` +
        `${code === 'ENOSPC' || code === 'EDQUOT' ? `Free space on the filesystem mounted at ${mount}` : `Check the filesystem mounted at ${mount}`}, ` +
        'then continue with `opd resume RUN_DIR`: committed checkpoints, rollout shards and metrics lines are intact.',
      options,
    );
    this.name = 'DiskWriteError';
  }
}

/** The mount point holding `p` (the nearest existing ancestor's filesystem): where to free space. */
export function mountPointOf(p: string): string {
  let dir = path.resolve(p);
  let dev: number | undefined;
  for (;;) {
    try {
      dev = statSync(dir).dev;
      break;
    } catch {
      const up = path.dirname(dir);
      if (up === dir) return dir;
      dir = up;
    }
  }
  for (;;) {
    const up = path.dirname(dir);
    if (up === dir) return dir;
    try {
      if (statSync(up).dev !== dev) return dir;
    } catch {
      return dir;
    }
    dir = up;
  }
}

/** `e` as thrown by a write of `file`: a DiskWriteError naming it when the disk is at fault, else `e`. */
export function writeError(e: unknown, file: string): unknown {
  if (e instanceof DiskWriteError || !isDiskError(e)) return e;
  return new DiskWriteError(file, e.code!, mountPointOf(file), { cause: e });
}

/**
 * The message of an error that reached the top of a command: a disk error that no writer named (a
 * mkdir, a rename, a report file) still says what to do; any other message is returned as it is.
 */
export function describeFailure(e: unknown): string {
  const msg = (e as Error)?.message ?? String(e);
  if (e instanceof DiskWriteError || !isDiskError(e)) return msg;
  const where = typeof e.path === 'string' ? ` (${e.path}, on the filesystem mounted at ${mountPointOf(e.path)})` : '';
  return `${msg}${where}: ${REASONS[e.code!]}. Free space or fix the disk, then continue with \`opd resume RUN_DIR\`: committed checkpoints, rollout shards and metrics lines are intact.`;
}
