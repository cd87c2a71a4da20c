// docs/reliability.md habit 1 and R2, the part a crash test cannot see: durability against a power cut.
// A SIGKILL leaves the page cache intact, so the kill tests pass even with every fsync removed;
// here the file-system calls are traced instead, and their order is checked:
//   atomic write  fsync(temp file) -> rename(temp -> target) -> fsync(target's directory)
//   checkpoint    every file fsync'd before its rename, each directory fsync'd after its last
//                 entry, COMMITTED renamed last, then rename(.tmp-step-N -> step-N) and fsync(checkpoints/)

import assert from 'node:assert/strict';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, mock, test } from 'node:test';
import { saveByteTokenizer } from '../data/tokenizer/byte.ts';
import { atomicWriteFile, atomicWriteFileSync } from '../engine/io/atomic.ts';
import { parseConfig } from '../student/model/config.ts';
import { initWeights, tinyConfig } from '../student/model/init.ts';
import { COMMITTED, saveCheckpoint } from './checkpoint.ts';

const roots: string[] = [];
after(() => roots.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));
const tmp = () => {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'opd-durable-'));
  roots.push(d);
  return d;
};

interface Ev {
  op: 'fsync' | 'rename';
  path: string;
  to?: string;
}

/** Records completed fsync and rename calls (sync and promise APIs) while `fn` runs. */
async function traced(fn: () => Promise<unknown>): Promise<Ev[]> {
  const events: Ev[] = [];
  const fdPath = new Map<number, string>();
  const handlePath = new WeakMap<object, string>();
  const probe = await fsp.open(os.tmpdir(), 'r');
  const handleProto = Object.getPrototypeOf(probe) as { sync(): Promise<void> };
  await probe.close();
  const real = { openSync: fs.openSync, fsyncSync: fs.fsyncSync, renameSync: fs.renameSync, open: fsp.open, rename: fsp.rename, sync: handleProto.sync };
  mock.method(fs, 'openSync', (...a: Parameters<typeof fs.openSync>) => {
    const fd = real.openSync(...a);
    fdPath.set(fd, String(a[0]));
    return fd;
  });
  mock.method(fs, 'fsyncSync', (fd: number) => {
    real.fsyncSync(fd);
    events.push({ op: 'fsync', path: fdPath.get(fd) ?? `fd ${fd}` });
  });
  mock.method(fs, 'renameSync', (a: fs.PathLike, b: fs.PathLike) => {
    real.renameSync(a, b);
    events.push({ op: 'rename', path: String(a), to: String(b) });
  });
  mock.method(fsp, 'open', async (...a: Parameters<typeof fsp.open>) => {
    const h = await real.open(...a);
    handlePath.set(h, String(a[0]));
    return h;
  });
  mock.method(fsp, 'rename', async (a: fs.PathLike, b: fs.PathLike) => {
    await real.rename(a, b);
    events.push({ op: 'rename', path: String(a), to: String(b) });
  });
  mock.method(handleProto, 'sync', async function (this: object) {
    await real.sync.call(this);
    events.push({ op: 'fsync', path: handlePath.get(this) ?? 'unknown handle' });
  });
  try {
    await fn();
  } finally {
    mock.restoreAll();
  }
  return events;
}

const show = (evs: readonly Ev[], root: string) => evs.map((e) => `${e.op} ${path.relative(root, e.path)}${e.to ? ` -> ${path.relative(root, e.to)}` : ''}`);

for (const [name, write] of [
  ['atomicWriteFile', (f: string, b: Uint8Array) => atomicWriteFile(f, b)],
  ['atomicWriteFileSync', async (f: string, b: Uint8Array) => atomicWriteFileSync(f, b)],
] as const) {
  test(`${name}: fsync(temp file), then rename over the target, then fsync(directory)`, async () => {
    const dir = tmp();
    const target = path.join(dir, 'weights.bin');
    fs.writeFileSync(target, 'old');
    const evs = await traced(() => write(target, new TextEncoder().encode('new')));
    assert.equal(fs.readFileSync(target, 'utf8'), 'new');
    assert.equal(evs.length, 3, show(evs, dir).join('\n'));
    const [syncFile, rename, syncDir] = evs as [Ev, Ev, Ev];
    assert.equal(rename.op, 'rename');
    assert.equal(rename.to, target);
    assert.match(path.basename(rename.path), /^\.weights\.bin\.tmp-/);
    assert.deepEqual(syncFile, { op: 'fsync', path: rename.path }, 'the temp file is fsync\'d before the rename');
    assert.deepEqual(syncDir, { op: 'fsync', path: dir }, 'the directory is fsync\'d after the rename');
  });
}

test('saveCheckpoint: every file durable before COMMITTED, COMMITTED before the rename, checkpoints/ fsync\'d after it', async () => {
  const run = tmp();
  const tok = path.join(run, 'tok');
  await saveByteTokenizer(tok);
  const config = parseConfig(tinyConfig({ hidden_size: 16, intermediate_size: 32 }));
  const weights = initWeights(config, 1);
  const tensors = Object.fromEntries([...weights].flatMap(([n, w]) => [[`m.${n}`, new Float32Array(w.length)], [`v.${n}`, new Float32Array(w.length)]]));
  const state = { config, weights, optimizer: { t: 1, tensors }, rng: {}, cursor: { epoch: 0, index: 0 }, shards: [], counters: {}, tokenizerFrom: tok };
  const root = path.join(run, 'checkpoints');
  const evs = await traced(() => saveCheckpoint(run, 1, state));
  const trace = show(evs, run).join('\n');

  const dir = path.join(root, 'step-000001');
  const commit = evs.findIndex((e) => e.op === 'rename' && e.to === dir);
  assert.ok(commit > 0, `the checkpoint is committed by renaming its temp directory\n${trace}`);
  const tmpDir = evs[commit]!.path;
  assert.match(path.basename(tmpDir), /^\.tmp-step-000001-/);
  const before = evs.slice(0, commit);
  const into = (d: string) => before.filter((e) => e.op === 'rename' && path.dirname(e.to!) === d);

  // every file COMMITTED lists arrived by an fsync'd temp file and a rename
  const listed = (JSON.parse(fs.readFileSync(path.join(dir, COMMITTED), 'utf8')) as { files: { path: string }[] }).files.map((f) => f.path);
  assert.ok(listed.includes('model/model.safetensors') && listed.includes('optimizer.safetensors') && listed.includes('state.json'));
  for (const f of [...listed, COMMITTED]) {
    const r = before.findIndex((e) => e.op === 'rename' && e.to === path.join(tmpDir, f));
    assert.ok(r >= 0, `${f} is written by a rename inside the temp directory\n${trace}`);
    const synced = before.findIndex((e) => e.op === 'fsync' && e.path === before[r]!.path);
    assert.ok(synced >= 0 && synced < r, `${f}'s temp file is fsync'd before its rename\n${trace}`);
  }
  // COMMITTED is the last file to land, and each directory is fsync'd after its last entry
  const last = into(tmpDir).at(-1)!;
  assert.equal(last.to, path.join(tmpDir, COMMITTED), `COMMITTED is written last\n${trace}`);
  for (const d of [tmpDir, path.join(tmpDir, 'model')]) {
    const lastEntry = before.lastIndexOf(into(d).at(-1)!);
    assert.ok(before.some((e, i) => i > lastEntry && e.op === 'fsync' && e.path === d), `${path.relative(run, d)} is fsync'd after its last entry, before the commit\n${trace}`);
  }
  assert.ok(evs.slice(commit + 1).some((e) => e.op === 'fsync' && e.path === root), `checkpoints/ is fsync'd after the commit rename\n${trace}`);
});
