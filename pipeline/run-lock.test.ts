// docs/reliability.md "run lock": one process per run directory. A second `opd run` of the same run is
// refused at once naming the holder (pid, host, since) and changes nothing; a lock left by a process
// that is gone is taken over; the lock goes when its holder exits, by a signal too.

import assert from 'node:assert/strict';
import { type ChildProcess, execFile, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { initModelDir, tinyConfig } from '../student/model/init.ts';
import { OPD_BIN, opd } from './cli/opd-bin.ts';
import { tinyRunConfig } from './recipes/tiny-job.ts';
import { LOCK_FILE, RunLockedError, lockRunDir } from './run-lock.ts';
import { readMetrics } from './rundir.ts';

let root: string;
let models: { teacher: string; student: string };

before(async () => {
  root = mkdtempSync(join(tmpdir(), 'opd-lock-'));
  models = { teacher: join(root, 'models', 'teacher'), student: join(root, 'models', 'student') };
  await initModelDir(models.teacher, tinyConfig(), 1);
  await initModelDir(models.student, tinyConfig({ hidden_size: 32, intermediate_size: 64 }), 2);
});

const exited = (p: ChildProcess) => new Promise<number | null>((res) => (p.exitCode !== null ? res(p.exitCode) : p.once('exit', (code) => res(code))));

/** opd ARGS in a child, killed after `ms` (then code is null). */
const opdWithin = (ms: number, ...args: string[]) =>
  new Promise<{ code: number | null; stderr: string }>((res) => {
    execFile(process.execPath, [OPD_BIN, ...args], { timeout: ms, killSignal: 'SIGKILL' }, (err, _out, stderr) => res({ code: err ? (typeof err.code === 'number' ? err.code : null) : 0, stderr }));
  });

/** A pid that was just used and is gone. */
const deadPid = () => spawnSync(process.execPath, ['-e', '']).pid!;

async function until(what: string, ok: () => boolean, ms = 400_000) {
  for (const t0 = Date.now(); !ok(); await sleep(50)) if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
}

test('a held lock refuses a second taker naming pid, host and since; once its holder is killed it is taken over', { timeout: 300_000 }, async (t) => {
  const dir = join(root, 'unit');
  mkdirSync(dir, { recursive: true });
  const holder = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e',
    `import { lockRunDir } from ${JSON.stringify(new URL('./run-lock.ts', import.meta.url).href)}; lockRunDir(process.argv[1]); console.log('locked'); setInterval(() => {}, 1000);`, dir],
  { stdio: ['ignore', 'pipe', 'inherit'] });
  t.after(() => void (holder.exitCode === null && holder.kill('SIGKILL'))); // a failed assertion must not leave it running
  let out = '';
  holder.stdout!.on('data', (d) => (out += d));
  await until('the holder to take the lock', () => out.includes('locked'));

  assert.throws(() => lockRunDir(dir), (e: unknown) => {
    assert.ok(e instanceof RunLockedError, String(e));
    assert.equal(e.holder.pid, holder.pid);
    assert.match(e.message, new RegExp(`pid ${holder.pid} on host ${hostname()}, since \\d{4}-\\d\\d-\\d\\dT`));
    return true;
  });
  assert.equal(JSON.parse(readFileSync(join(dir, LOCK_FILE), 'utf8')).pid, holder.pid, 'the refused taker left the lock alone');

  holder.kill('SIGKILL'); // no exit handler runs: the lock stays behind, stale
  await exited(holder);
  assert.ok(existsSync(join(dir, LOCK_FILE)));
  const warnings: string[] = [];
  const lock = lockRunDir(dir, (m) => warnings.push(m));
  assert.equal(JSON.parse(readFileSync(join(dir, LOCK_FILE), 'utf8')).pid, process.pid, 'taken over');
  assert.match(warnings.join('\n'), new RegExp(`took over the stale lock .* of pid ${holder.pid}`));
  const again = lockRunDir(dir); // the same process (prepareRunDir, then runJob) holds it twice
  lock.release();
  assert.ok(existsSync(join(dir, LOCK_FILE)), 'held until the last release');
  again.release();
  assert.ok(!existsSync(join(dir, LOCK_FILE)), 'released');

  // a holder that exits from a signal handler (what opd does during start-up) removes its lock on the way out
  const quitter = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e',
    `import { lockRunDir } from ${JSON.stringify(new URL('./run-lock.ts', import.meta.url).href)}; lockRunDir(process.argv[1]); process.on('SIGTERM', () => process.exit(143)); console.log('locked'); setInterval(() => {}, 1000);`, dir],
  { stdio: ['ignore', 'pipe', 'inherit'] });
  t.after(() => void (quitter.exitCode === null && quitter.kill('SIGKILL')));
  let qout = '';
  quitter.stdout!.on('data', (d) => (qout += d));
  await until('the second holder to take the lock', () => qout.includes('locked'));
  assert.equal(JSON.parse(readFileSync(join(dir, LOCK_FILE), 'utf8')).pid, quitter.pid);
  quitter.kill('SIGTERM');
  assert.equal(await exited(quitter), 143);
  assert.ok(!existsSync(join(dir, LOCK_FILE)), 'removed on process exit');
});

test('two opd run of one config at once: the second is refused naming the first; metrics stay in order; a stale lock is taken over', { timeout: 900_000 }, async (t) => {
  const cfg = (name: string, steps: number) => {
    const file = join(root, `${name}.json`);
    writeFileSync(file, JSON.stringify(tinyRunConfig(root, models, { run: { name, steps, checkpointEvery: 1, evalPrompts: 2 } })));
    return file;
  };
  const long = cfg('twice', 5000); // stopped by SIGTERM long before the end
  const dir = join(root, 'runs', 'twice');
  const a = spawn(process.execPath, [OPD_BIN, 'run', long], { stdio: ['ignore', 'ignore', 'pipe'] });
  let aErr = '';
  a.stderr!.on('data', (d) => (aErr += d));
  t.after(() => void (a.exitCode === null && a.kill('SIGKILL'))); // a failed assertion must not leave it running
  await until('the first run to finish a step', () => readMetrics(dir).length >= 1 || a.exitCode !== null);
  assert.equal(a.exitCode, null, `the first run is still running: ${aErr}`);

  const b = await opdWithin(240_000, 'run', long); // refused at once; without the lock it would run (or fail) alongside
  assert.equal(b.code, 1, b.stderr);
  assert.match(b.stderr, new RegExp(`in use by another opd process: pid ${a.pid} on host ${hostname()}, since \\d{4}-`));
  const c = await opdWithin(240_000, 'resume', dir);
  assert.equal(c.code, 1, c.stderr);
  assert.match(c.stderr, new RegExp(`pid ${a.pid}`));

  a.kill('SIGTERM');
  assert.equal(await exited(a), 143, aErr);
  const steps = readMetrics(dir).map((r) => r.step);
  assert.deepEqual(steps, Array.from({ length: steps.length }, (_, i) => i + 1), 'one line per step, in order, none twice');
  assert.ok(!existsSync(join(dir, LOCK_FILE)), 'the lock goes with its holder, stopped by a signal');

  // a lock left by a process that is gone (kill -9, reboot): the next run takes it over and runs
  const short = cfg('stale', 2);
  const sdir = join(root, 'runs', 'stale');
  mkdirSync(sdir, { recursive: true });
  const dead = deadPid();
  writeFileSync(join(sdir, LOCK_FILE), JSON.stringify({ pid: dead, host: hostname(), since: '2026-01-01T00:00:00.000Z', command: 'opd run x' }) + '\n');
  const s = await opd('run', short);
  assert.equal(s.code, 0, s.stderr);
  assert.match(s.stderr, new RegExp(`took over the stale lock .* of pid ${dead}`));
  assert.deepEqual(readMetrics(sdir).map((r) => r.step), [1, 2]);
  assert.ok(!existsSync(join(sdir, LOCK_FILE)));
});
