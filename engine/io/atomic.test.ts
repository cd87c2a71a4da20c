// atomicWriteFile / atomicWriteFileSync: content lands whole, a failure at any point leaves the old
// file intact and no temp file behind (R2), and short writes are continued, not dropped.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, mock, test } from 'node:test';
import { atomicWriteFile, atomicWriteFileSync, fsyncDir, fsyncDirSync, tempPathFor } from './atomic.ts';

const dirs: string[] = [];
const tmp = () => {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'opd-atomic-'));
  dirs.push(d);
  return d;
};
after(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));
const bytes = (s: string) => new TextEncoder().encode(s);

/** Yields the given chunks, then throws: a producer that dies mid-file (e.g. a failed conversion). */
function* failingAfter(chunks: string[]): Iterable<Uint8Array> {
  for (const c of chunks) yield bytes(c);
  throw new Error('producer failed');
}

const variants = [
  { name: 'async', write: (p: string, c: Iterable<Uint8Array> | Uint8Array) => atomicWriteFile(p, c) },
  { name: 'sync', write: async (p: string, c: Iterable<Uint8Array> | Uint8Array) => atomicWriteFileSync(p, c) },
];

for (const { name, write } of variants) {
  test(`${name}: writes a buffer or chunks, replaces the old file, leaves no temp file`, async () => {
    const dir = tmp();
    const file = path.join(dir, 'ckpt.bin');
    await write(file, bytes('first version'));
    assert.equal(fs.readFileSync(file, 'utf8'), 'first version');
    await write(file, [bytes('sec'), new Uint8Array(0), bytes('ond'), bytes(' version')]);
    assert.equal(fs.readFileSync(file, 'utf8'), 'second version');
    await write(file, []);
    assert.equal(fs.readFileSync(file, 'utf8'), '');
    assert.deepEqual(fs.readdirSync(dir), ['ckpt.bin']);
  });

  test(`${name}: a producer that throws midway leaves the old content and no temp file`, async () => {
    const dir = tmp();
    const file = path.join(dir, 'model.safetensors');
    fs.writeFileSync(file, 'old, complete');
    await assert.rejects(write(file, failingAfter(['new ', 'half'])), /producer failed/);
    assert.equal(fs.readFileSync(file, 'utf8'), 'old, complete');
    assert.deepEqual(fs.readdirSync(dir), ['model.safetensors']);
  });

  test(`${name}: with no old file, a failed write creates nothing`, async () => {
    const dir = tmp();
    await assert.rejects(write(path.join(dir, 'new.bin'), failingAfter(['x'])), /producer failed/);
    assert.deepEqual(fs.readdirSync(dir), []);
  });

  test(`${name}: a failed rename (target is a non-empty directory) removes the temp file`, async () => {
    const dir = tmp();
    const target = path.join(dir, 'occupied');
    fs.mkdirSync(target);
    fs.writeFileSync(path.join(target, 'keep'), 'x');
    await assert.rejects(write(target, bytes('data')), (e: NodeJS.ErrnoException) => typeof e.code === 'string');
    assert.deepEqual(fs.readdirSync(dir), ['occupied']);
  });

  test(`${name}: a missing directory is an ENOENT error`, async () => {
    const dir = tmp();
    await assert.rejects(write(path.join(dir, 'no', 'such', 'f'), bytes('x')), { code: 'ENOENT' });
    assert.deepEqual(fs.readdirSync(dir), []);
  });
}

test('sync: short writes are continued until every byte is written', () => {
  const dir = tmp();
  const file = path.join(dir, 'short.bin');
  const real = fs.writeSync;
  const calls: number[] = [];
  // fs.writeSync(fd, buffer, offset, length, position) may write fewer than `length` bytes.
  const m = mock.method(fs, 'writeSync', (fd: number, buf: Uint8Array, off: number, len: number, pos: number) => {
    calls.push(len);
    return real(fd, buf, off, Math.min(len, 3), pos);
  });
  try {
    atomicWriteFileSync(file, [bytes('abcdefgh'), bytes('ij'), bytes('klmnopq')]);
  } finally {
    m.mock.restore();
  }
  assert.equal(fs.readFileSync(file, 'utf8'), 'abcdefghijklmnopq');
  assert.deepEqual(calls, [8, 5, 2, 2, 7, 4, 1]);
});

test('async: short writes are continued until every byte is written', async () => {
  const dir = tmp();
  const file = path.join(dir, 'short.bin');
  const probe = await fsp.open(path.join(dir, 'probe'), 'w');
  const proto = Object.getPrototypeOf(probe) as { write: (...a: unknown[]) => Promise<{ bytesWritten: number }> };
  await probe.close();
  fs.rmSync(path.join(dir, 'probe'));
  const real = proto.write;
  const calls: number[] = [];
  const m = mock.method(proto, 'write', function (this: unknown, buf: Uint8Array, off: number, len: number, pos: number) {
    calls.push(len);
    return real.call(this, buf, off, Math.min(len, 4), pos);
  });
  try {
    await atomicWriteFile(file, [bytes('0123456789'), bytes('ab')]);
  } finally {
    m.mock.restore();
  }
  assert.equal(fs.readFileSync(file, 'utf8'), '0123456789ab');
  assert.deepEqual(calls, [10, 6, 2, 2]);
});

test('a write that makes no progress is an error, not an endless loop', () => {
  const dir = tmp();
  const file = path.join(dir, 'stuck.bin');
  fs.writeFileSync(file, 'old');
  const m = mock.method(fs, 'writeSync', () => 0);
  try {
    assert.throws(() => atomicWriteFileSync(file, bytes('new')), /no progress/);
  } finally {
    m.mock.restore();
  }
  assert.equal(fs.readFileSync(file, 'utf8'), 'old');
  assert.deepEqual(fs.readdirSync(dir), ['stuck.bin']);
});

test('concurrent writers to one target each land whole; one of them wins', async () => {
  const dir = tmp();
  const file = path.join(dir, 'race.bin');
  const payloads = ['a', 'b', 'c', 'd'].map((c) => c.repeat(100_000));
  await Promise.all(payloads.map((p) => atomicWriteFile(file, [bytes(p.slice(0, 50_000)), bytes(p.slice(50_000))])));
  assert.ok(payloads.includes(fs.readFileSync(file, 'utf8')));
  assert.deepEqual(fs.readdirSync(dir), ['race.bin']);
});

test('temp names sit beside the target, are hidden, unique, and carry the pid', () => {
  const a = tempPathFor('/x/y/model.safetensors');
  const b = tempPathFor('/x/y/model.safetensors');
  assert.notEqual(a, b);
  assert.equal(path.dirname(a), '/x/y');
  assert.match(path.basename(a), new RegExp(`^\\.model\\.safetensors\\.tmp-${process.pid}-[0-9a-f]{12}$`));
});

test('fsyncDir and fsyncDirSync accept a directory and reject a missing one', async () => {
  const dir = tmp();
  await fsyncDir(dir);
  fsyncDirSync(dir);
  await assert.rejects(fsyncDir(path.join(dir, 'missing')), { code: 'ENOENT' });
  assert.throws(() => fsyncDirSync(path.join(dir, 'missing')), { code: 'ENOENT' });
});
