// docs/reliability.md R13 (and SIGHUP): SIGTERM during `opd run` finishes the current step, commits a checkpoint at it,
// flushes the log and exits 143; `opd run` again resumes and ends on the same bytes as a run that
// was never stopped. A second signal (Ctrl-C twice) exits at once: the step is not finished and no
// checkpoint is written.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { tinyModels, tinyRunConfig } from '../recipes/tiny-job.ts';
import { signalExitCode } from './commands/run.ts';

const bin = new URL('../../bin/opd.mjs', import.meta.url).pathname;
const lines = (f: string) => (existsSync(f) ? readFileSync(f, 'utf8').split('\n').filter(Boolean) : []);

function opd(args: string[], onRunning?: (p: ReturnType<typeof spawn>) => void) {
  const p = spawn(process.execPath, [bin, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  p.stderr!.on('data', (d) => (stderr += d));
  onRunning?.(p);
  return new Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>((resolve) => p.on('exit', (code, signal) => resolve({ code, signal, stderr })));
}

/** An `onRunning` callback: once `dir` has recorded `n` steps, call `act` on the process (once). */
function afterSteps(dir: string, n: number, act: (p: ReturnType<typeof spawn>, steps: number) => void, everyMs = 5) {
  return (p: ReturnType<typeof spawn>) => {
    const poll = setInterval(() => {
      const steps = lines(join(dir, 'metrics.jsonl')).length;
      if (steps >= n) {
        clearInterval(poll);
        act(p, steps);
      }
    }, everyMs);
    p.on('exit', () => clearInterval(poll));
  };
}

test('SIGTERM mid-run: step finished, checkpoint committed, log flushed, exit 143; rerun ends on the same bytes', { timeout: 180_000 }, async () => {
  const root = mkdtempSync(join(tmpdir(), 'opd-sigterm-'));
  const m = await tinyModels(join(root, 'models'));
  const config = (name: string) => tinyRunConfig(root, m, { run: { name, steps: 30, checkpointEvery: 100, keepCheckpoints: 3, evalEvery: 0, evalPrompts: 4 } });

  for (const n of ['ref', 'stopped']) writeFileSync(join(root, `${n}.json`), JSON.stringify(config(n)));
  const ref = await opd(['run', join(root, 'ref.json')]);
  assert.equal(ref.code, 0, ref.stderr);

  const dir = join(root, 'runs', 'stopped');
  const stopped = await opd(['run', join(root, 'stopped.json')], afterSteps(dir, 4, (p) => p.kill('SIGTERM')));
  assert.equal(stopped.code, 143, `exit code 143 after SIGTERM\n${stopped.stderr}`);
  const steps = lines(join(dir, 'metrics.jsonl')).length;
  assert.ok(steps >= 4 && steps < 30, `stopped early, after step ${steps}`);
  const ck = join(dir, 'checkpoints', `step-${String(steps).padStart(6, '0')}`);
  assert.ok(existsSync(join(ck, 'COMMITTED')), 'a committed checkpoint at the last finished step (not on the cadence)');
  const log = lines(join(dir, 'log.jsonl')).map((l) => JSON.parse(l) as { message: string });
  assert.match(log.at(-1)!.message, new RegExp(`stopped by SIGTERM after step ${steps}/30; checkpoint committed`), 'the last log line is flushed');
  assert.ok(!existsSync(join(dir, 'summary.json')), 'an unfinished run writes no summary');

  const again = await opd(['run', join(root, 'stopped.json')]);
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stderr, new RegExp(`resuming from .*step-${String(steps).padStart(6, '0')}`));
  for (const f of ['model/model.safetensors', 'optimizer.safetensors'])
    assert.ok(readFileSync(join(dir, 'checkpoints', 'step-000030', f)).equals(readFileSync(join(root, 'runs', 'ref', 'checkpoints', 'step-000030', f))), `${f} equals the uninterrupted run`);
});

test('SIGHUP (terminal closed) stops the same way with exit 129', { timeout: 120_000 }, async () => {
  assert.deepEqual((['SIGHUP', 'SIGINT', 'SIGTERM'] as const).map(signalExitCode), [129, 130, 143]);
  const root = mkdtempSync(join(tmpdir(), 'opd-sighup-'));
  const m = await tinyModels(join(root, 'models'));
  writeFileSync(join(root, 'c.json'), JSON.stringify(tinyRunConfig(root, m, { run: { name: 'h', steps: 200, checkpointEvery: 1000, evalEvery: 0, evalPrompts: 4 } })));
  const dir = join(root, 'runs', 'h');
  const r = await opd(['run', join(root, 'c.json')], afterSteps(dir, 2, (p) => p.kill('SIGHUP')));
  assert.equal(r.code, 129, r.stderr);
  const steps = lines(join(dir, 'metrics.jsonl')).length;
  assert.ok(existsSync(join(dir, 'checkpoints', `step-${String(steps).padStart(6, '0')}`, 'COMMITTED')));
});

test('Ctrl-C twice: the first SIGINT asks to finish the step, the second exits at once with 130 and no checkpoint', { timeout: 120_000 }, async () => {
  const root = mkdtempSync(join(tmpdir(), 'opd-sigint2-'));
  const m = await tinyModels(join(root, 'models'));
  // long steps (8 prompts × G 16, up to 48 new tokens) so that the second signal lands inside the step the first asked to finish
  const config = tinyRunConfig(root, m, { run: { name: 'i', steps: 100, checkpointEvery: 1000, evalEvery: 0, evalPrompts: 4 }, rollout: { groupSize: 16, promptsPerStep: 8, maxNewTokens: 48 } });
  writeFileSync(join(root, 'c.json'), JSON.stringify(config));
  const dir = join(root, 'runs', 'i');
  let atFirst = -1;
  const r = await opd(['run', join(root, 'c.json')], (p) => {
    let err = '';
    p.stderr!.on('data', (d) => {
      err += d;
      if (atFirst >= 0 && /SIGINT: finishing the current step/.test(err) && !/second SIGINT/.test(err)) {
        err = 'sent';
        p.kill('SIGINT');
      }
    });
    afterSteps(dir, 1, (_, steps) => {
      atFirst = steps;
      p.kill('SIGINT');
    }, 2)(p);
  });
  assert.equal(r.code, 130, r.stderr);
  assert.match(r.stderr, /SIGINT: finishing the current step/, 'the first SIGINT is handled, not fatal');
  assert.match(r.stderr, /second SIGINT: exiting now without a checkpoint/);
  assert.doesNotMatch(r.stderr, /stopped by SIGINT/, 'the graceful stop did not run');
  assert.equal(lines(join(dir, 'metrics.jsonl')).length, atFirst, 'the step under way at the first signal was not finished');
  const ckpts = existsSync(join(dir, 'checkpoints')) ? readdirSync(join(dir, 'checkpoints')).filter((d) => d.startsWith('step-')) : [];
  assert.deepEqual(ckpts, [], 'no checkpoint was written on the way out');
});

test('SIGINT during start-up (the held-out evaluation before training): says what it interrupted and that nothing was committed, exits 130 at once', { timeout: 120_000 }, async () => {
  const root = mkdtempSync(join(tmpdir(), 'opd-sigint-startup-'));
  const m = await tinyModels(join(root, 'models'));
  // a long held-out evaluation before training: start-up lasts seconds
  const config = tinyRunConfig(root, m, { run: { name: 's', steps: 5, checkpointEvery: 1, evalEvery: 0, evalPrompts: 1000 }, data: { taskConfig: { digits: 3, ops: ['+'] }, testSize: 1000 }, rollout: { maxNewTokens: 48 } });
  writeFileSync(join(root, 'c.json'), JSON.stringify(config));
  const dir = join(root, 'runs', 's');
  let sentAt = 0;
  const r = await opd(['run', join(root, 'c.json')], (p) => {
    const poll = setInterval(() => {
      if (lines(join(dir, 'log.jsonl')).some((l) => l.includes('evaluating the student'))) {
        clearInterval(poll);
        sentAt = performance.now();
        p.kill('SIGINT');
      }
    }, 5);
    p.on('exit', () => clearInterval(poll));
  });
  const exitedAfter = performance.now() - sentAt;
  assert.ok(sentAt > 0, 'the signal was sent during the evaluation before training');
  assert.equal(r.code, 130, r.stderr);
  assert.match(r.stderr, /SIGINT during start-up of s \(the held-out evaluation before training\), before the first step: stopping now; nothing was committed/);
  assert.match(r.stderr, new RegExp(`start it again with: opd run ${join(root, 'c.json').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`, 'i'));
  assert.doesNotMatch(r.stderr, /finishing the current step/);
  // "at once" without a clock: the evaluation (1000 prompts) did not run to its end, which writes eval-before.json.
  assert.ok(!existsSync(join(dir, 'eval-before.json')), `the evaluation was finished before exiting (${exitedAfter.toFixed(0)} ms after the signal)`);
  assert.equal(lines(join(dir, 'metrics.jsonl')).length, 0, 'no step ran');
  const ckpts = existsSync(join(dir, 'checkpoints')) ? readdirSync(join(dir, 'checkpoints')).filter((d) => d.startsWith('step-')) : [];
  assert.deepEqual(ckpts, [], 'no checkpoint');
  assert.match(lines(join(dir, 'log.jsonl')).at(-1)!, /SIGINT during start-up/, 'the log file has the line too');
});

test('a stop signal before a job takes the signals over (while opd loads) exits with its code and a line saying so', { timeout: 60_000 }, async () => {
  // the guard `opd run` installs first thing, in a child that then idles as the heavy imports would
  const src = `import { guardStartup } from ${JSON.stringify(new URL('./startup-signals.ts', import.meta.url).pathname)};
guardStartup((sig) => 'opd run: ' + sig + ' during start-up (loading opd and onnxruntime), before the first step: nothing was committed');
process.stdout.write('ready\\n'); setInterval(() => {}, 1000);`;
  for (const [sig, code] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
    const p = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', src], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    p.stderr!.on('data', (d) => (err += d));
    p.stdout!.on('data', (d) => String(d).includes('ready') && p.kill(sig));
    const [exit] = await new Promise<[number | null]>((resolve) => p.on('exit', (c) => resolve([c])));
    assert.equal(exit, code, err);
    assert.match(err, new RegExp(`opd run: ${sig} during start-up \\(loading opd and onnxruntime\\), before the first step: nothing was committed`));
  }
});
