// A full disk under opd's own writes (docs/reliability.md "disk full"), with ENOSPC injected into the
// write calls: the error names the file and the filesystem to free and says `opd resume`; the old
// file is intact and no temp file is left (atomic writes); a metrics line cut short is taken back,
// so metrics.jsonl keeps whole lines and the next append works.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { mock, test } from 'node:test';
import { appendMetrics, readMetrics } from '../../pipeline/rundir.ts';
import { atomicWriteFile, atomicWriteFileSync } from './atomic.ts';
import { DiskWriteError, describeFailure, mountPointOf, writeError } from './disk-errors.ts';

const enospc = () => Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', errno: -28, syscall: 'write' });
const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'opd-diskfull-'));
/** The mount point as df reports it: an independent answer to mountPointOf. */
const dfMount = (p: string) => execFileSync('df', ['--output=target', p], { encoding: 'utf8' }).trim().split('\n').at(-1)!;
const mustSay = (file: string) =>
  new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: no space left on the device \\(ENOSPC\\) while writing it\\. Free space on the filesystem mounted at ${dfMount(path.dirname(file)).replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}, then continue with \`opd resume RUN_DIR\``);

/** fsp.open, with every FileHandle.write of the handles it returns failing once `budget` bytes were written. */
function fullAfter(budget: number) {
  const real = fsp.open;
  return mock.method(fsp, 'open', async (...args: Parameters<typeof fsp.open>) => {
    const fh = await real(...args);
    const write = fh.write.bind(fh) as (b: Uint8Array, off?: number, len?: number, pos?: number) => Promise<{ bytesWritten: number }>;
    (fh as unknown as { write: unknown }).write = async (b: Uint8Array, off = 0, len = b.length - off, pos?: number) => {
      if (budget <= 0) throw enospc();
      const n = Math.min(len, budget);
      budget -= n;
      return write(b, off, n, pos);
    };
    return fh;
  });
}

test('mountPointOf agrees with df', () => {
  for (const p of [os.tmpdir(), process.cwd(), '/', path.join(tmp(), 'not', 'yet', 'there')]) assert.equal(mountPointOf(p), dfMount(fs.existsSync(p) ? p : path.dirname(path.dirname(path.dirname(p)))), p);
});

test('atomicWriteFile on a full disk: DiskWriteError naming the file and what to do; old file intact, no temp file', async () => {
  const dir = tmp();
  const file = path.join(dir, 'state.json');
  fs.writeFileSync(file, 'old');
  const m = fullAfter(3);
  try {
    await assert.rejects(atomicWriteFile(file, Buffer.from('new contents')), (e: Error) => e instanceof DiskWriteError && mustSay(file).test(e.message) && (e.cause as NodeJS.ErrnoException).code === 'ENOSPC');
  } finally {
    m.mock.restore();
  }
  assert.equal(fs.readFileSync(file, 'utf8'), 'old');
  assert.deepEqual(fs.readdirSync(dir), ['state.json']);
});

test('atomicWriteFileSync on a full disk: the same', () => {
  const dir = tmp();
  const file = path.join(dir, 'COMMITTED');
  fs.writeFileSync(file, 'old');
  const m = mock.method(fs, 'writeSync', () => {
    throw enospc();
  });
  try {
    assert.throws(() => atomicWriteFileSync(file, Buffer.from('new')), (e: Error) => e instanceof DiskWriteError && mustSay(file).test(e.message));
  } finally {
    m.mock.restore();
  }
  assert.equal(fs.readFileSync(file, 'utf8'), 'old');
  assert.deepEqual(fs.readdirSync(dir), ['COMMITTED']);
});

test('appendMetrics on a full disk: the cut line is taken back, the error names metrics.jsonl, the next append works', async () => {
  const dir = tmp();
  await appendMetrics(dir, { step: 1, loss: 0.5 });
  const before = fs.readFileSync(path.join(dir, 'metrics.jsonl'), 'utf8');
  const m = fullAfter(7); // part of the line reaches the file, then the disk is full
  try {
    await assert.rejects(appendMetrics(dir, { step: 2, loss: 0.25 }), (e: Error) => e instanceof DiskWriteError && mustSay(path.join(dir, 'metrics.jsonl')).test(e.message));
  } finally {
    m.mock.restore();
  }
  assert.equal(fs.readFileSync(path.join(dir, 'metrics.jsonl'), 'utf8'), before, 'no partial line left behind');
  await appendMetrics(dir, { step: 2, loss: 0.25 });
  assert.deepEqual(readMetrics(dir).map((r) => r.step), [1, 2]);
});

test('writeError passes other errors through unchanged', () => {
  const e = Object.assign(new Error('EACCES: permission denied'), { code: 'EACCES' });
  assert.equal(writeError(e, '/x'), e);
  const eio = writeError(Object.assign(new Error('EIO'), { code: 'EIO' }), '/tmp/x') as Error;
  assert.match(eio.message, /^\/tmp\/x: I\/O error \(a failing disk or a lost network mount\) \(EIO\) while writing it\. Check the filesystem mounted at /);
});

test('describeFailure: a disk error no writer named still says what to do; others are unchanged', () => {
  const dir = tmp();
  const e = Object.assign(new Error(`ENOSPC: no space left on device, mkdir '${dir}/x'`), { code: 'ENOSPC', path: `${dir}/x` });
  assert.equal(describeFailure(e), `ENOSPC: no space left on device, mkdir '${dir}/x' (${dir}/x, on the filesystem mounted at ${dfMount(dir)}): no space left on the device. Free space or fix the disk, then continue with \`opd resume RUN_DIR\`: committed checkpoints, rollout shards and metrics lines are intact.`);
  const named = writeError(enospc(), path.join(dir, 'f')) as Error;
  assert.equal(describeFailure(named), named.message);
  assert.equal(describeFailure(new Error('other')), 'other');
});
