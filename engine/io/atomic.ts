// Crash-safe file replacement (docs/reliability.md habit 1): write a unique temp file in the target's
// directory, loop until every byte is written, fsync it, rename it over the target, fsync the
// directory. Readers see the old file or the new one, never a mix. On any error before the rename the
// temp file is removed and the error rethrown (a full disk or an I/O error as a DiskWriteError naming
// the target and what to do: engine/io/disk-errors.ts). Chunks are written one at a time, so multi-GB weights
// never need one contiguous buffer.
// Leaves out: keeping the old file's mode/owner (new files get 0o666 & ~umask); directory fsync on
// Windows (impossible there, skipped); sweeping temp files left by kill -9 (they are named
// `.<basename>.tmp-<pid>-<hex>` so a caller can find them).

import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { writeError } from './disk-errors.ts';

export type FileChunks = Iterable<Uint8Array> | Uint8Array;

/** Largest length passed to one write call: Node rejects lengths over 2^31-1 and Linux stops near 2 GiB. */
const MAX_WRITE = 1 << 30;

/** `.<basename>.tmp-<pid>-<random>` beside `target`: same filesystem, so the rename is atomic. */
export function tempPathFor(target: string): string {
  const suffix = `${process.pid}-${randomBytes(6).toString('hex')}`;
  return path.join(path.dirname(target), `.${path.basename(target)}.tmp-${suffix}`);
}

export async function atomicWriteFile(target: string, chunks: FileChunks): Promise<void> {
  const tmp = tempPathFor(target);
  let fh: fsp.FileHandle | null = null;
  let created = false;
  try {
    fh = await fsp.open(tmp, 'wx'); // 'x': never clobber a file we did not create
    created = true;
    let pos = 0;
    for (const chunk of chunksOf(chunks)) {
      for (let off = 0; off < chunk.length; ) {
        const len = Math.min(chunk.length - off, MAX_WRITE);
        const { bytesWritten } = await fh.write(chunk, off, len, pos + off);
        off += progress(bytesWritten, tmp);
      }
      pos += chunk.length;
    }
    await fh.sync();
    const h = fh;
    fh = null;
    await h.close();
    await fsp.rename(tmp, target);
  } catch (err) {
    if (fh !== null) await fh.close().catch(() => undefined);
    if (created) await fsp.rm(tmp, { force: true }).catch(() => undefined);
    throw writeError(err, target);
  }
  await fsyncDir(path.dirname(target)).catch((err: unknown) => {
    throw writeError(err, target);
  });
}

export function atomicWriteFileSync(target: string, chunks: FileChunks): void {
  const tmp = tempPathFor(target);
  let fd = -1;
  let created = false;
  try {
    fd = fs.openSync(tmp, 'wx');
    created = true;
    let pos = 0;
    for (const chunk of chunksOf(chunks)) {
      for (let off = 0; off < chunk.length; ) {
        const len = Math.min(chunk.length - off, MAX_WRITE);
        off += progress(fs.writeSync(fd, chunk, off, len, pos + off), tmp);
      }
      pos += chunk.length;
    }
    fs.fsyncSync(fd);
    const d = fd;
    fd = -1;
    fs.closeSync(d);
    fs.renameSync(tmp, target);
  } catch (err) {
    if (fd >= 0) ignoreErrors(() => fs.closeSync(fd));
    if (created) ignoreErrors(() => fs.rmSync(tmp, { force: true }));
    throw writeError(err, target);
  }
  try {
    fsyncDirSync(path.dirname(target));
  } catch (err) {
    throw writeError(err, target);
  }
}

/** fsync a directory so a rename or create inside it survives a power cut. */
export async function fsyncDir(dir: string): Promise<void> {
  if (process.platform === 'win32') return;
  const fh = await fsp.open(dir, 'r');
  try {
    await fh.sync();
  } catch (err) {
    if (!fsyncUnsupported(err)) throw err;
  } finally {
    await fh.close();
  }
}

export function fsyncDirSync(dir: string): void {
  if (process.platform === 'win32') return;
  const fd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(fd);
  } catch (err) {
    if (!fsyncUnsupported(err)) throw err;
  } finally {
    fs.closeSync(fd);
  }
}

function chunksOf(chunks: FileChunks): Iterable<Uint8Array> {
  return chunks instanceof Uint8Array ? [chunks] : chunks;
}

/** A write that reports no progress would loop forever; treat it as an I/O error. */
function progress(bytesWritten: number, tmp: string): number {
  if (!(bytesWritten > 0)) throw new Error(`write to ${tmp} made no progress (${bytesWritten} bytes)`);
  return bytesWritten;
}

/** Some filesystems (certain FUSE and network mounts) refuse fsync on a directory; nothing to be done. */
function fsyncUnsupported(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  return code === 'EINVAL' || code === 'ENOTSUP' || code === 'EISDIR';
}

function ignoreErrors(fn: () => void): void {
  try {
    fn();
  } catch {
    // cleanup after a failure: the original error is the one worth reporting
  }
}
