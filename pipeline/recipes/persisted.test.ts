// The job on disk: every artifact of a short run, and kill -9 at seeded moments followed by a
// restart ending with the same bytes as a run that was never stopped (docs/reliability.md R1/R4/R5).

import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { Rng } from '../../engine/rng.ts';
import { listShards, readShard } from '../../data/store/shards.ts';
import { tableToRollouts } from '../../data/schemas.ts';
import { readMetrics } from '../rundir.ts';
import { tinyModels } from './tiny-job.ts';

const script = new URL('./tiny-job.ts', import.meta.url).pathname;
const models = mkdtempSync(join(tmpdir(), 'opd-models-'));

function start(runDir: string): ChildProcess {
  return spawn(process.execPath, ['--import', 'tsx', script, runDir, models], { stdio: ['ignore', 'ignore', 'pipe'] });
}
const exited = (p: ChildProcess) =>
  new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    let err = '';
    p.stderr!.on('data', (d) => (err += d));
    p.on('exit', (code, signal) => {
      if (code !== 0 && signal !== 'SIGKILL') console.error(err);
      resolve({ code, signal });
    });
  });
const finished = async (p: ChildProcess) => (await exited(p)).code;
const linesIn = (f: string) => (existsSync(f) ? readFileSync(f, 'utf8').split('\n').filter(Boolean).length : 0);

/** SIGKILL `p` once `after` steps have been recorded, plus a few random ms into the next one. */
async function killDuring(p: ChildProcess, runDir: string, after: number, extraMs: number) {
  const done = exited(p);
  let over = false;
  void done.then(() => (over = true));
  while (!over && linesIn(join(runDir, 'metrics.jsonl')) < after) await new Promise((r) => setTimeout(r, 5));
  await new Promise((r) => setTimeout(r, extraMs));
  p.kill('SIGKILL');
  return done;
}
const finalBytes = (runDir: string) => ['model/model.safetensors', 'optimizer.safetensors', 'state.json'].map((f) => readFileSync(join(runDir, 'checkpoints', 'step-000006', f)));
const stripTimes = (m: Record<string, unknown>) => Object.fromEntries(Object.entries(m).filter(([k]) => !/_s$|tokens_per_s/.test(k)));

test('a short run writes shards, metrics and committed checkpoints; kill -9 and restart give identical bytes', { timeout: 240_000 }, async () => {
  await tinyModels(models);
  const ref = join(mkdtempSync(join(tmpdir(), 'opd-run-')), 'run');
  assert.equal(await finished(start(ref)), 0);
  const shards = listShards(join(ref, 'shards'));
  assert.equal(shards.length, 6);
  const rows = tableToRollouts(readShard(join(ref, 'shards'), shards[0]!.file));
  assert.equal(rows.length, 16, '4 prompts × G = 4 rollouts');
  assert.ok(rows.every((r) => r.teacherLogprobs.length === r.completionIds.length && r.samplerLogprobs.length === r.completionIds.length));
  const metrics = readMetrics(ref);
  assert.deepEqual(metrics.map((m) => m.step), [1, 2, 3, 4, 5, 6]);
  for (const key of ['reward_mean', 'teacher_kl', 'loss', 'grad_norm', 'clip_fraction', 'generate_s', 'teacher_s', 'train_s']) assert.ok(key in metrics[0]!, `metric ${key}`);
  assert.ok(existsSync(join(ref, 'checkpoints', 'step-000006', 'COMMITTED')));
  assert.ok(!existsSync(join(ref, 'checkpoints', 'step-000004')), 'keepLast 2 pruned older checkpoints');

  const rng = new Rng(Number(process.env.OPD_KILL_SEED ?? 7));
  const kills = Number(process.env.OPD_KILL_ITERATIONS ?? 3);
  for (let k = 0; k < kills; k++) {
    const run = join(mkdtempSync(join(tmpdir(), 'opd-run-')), 'run');
    // after 0..5 recorded steps, then 0..120 ms into the next: rollout, scoring, train or checkpoint
    // the first kill always lands after step 3 was recorded (past a checkpoint and, with the tiny
    // job's 10 prompts at 4 per step, across an epoch boundary: R4); the rest at seeded moments
    const [after, extra] = [k === 0 ? 3 : rng.int(6), rng.int(120)];
    const delay = `step ${after} + ${extra} ms`;
    const killed = await killDuring(start(run), run, after, extra);
    if (killed.signal === 'SIGKILL') assert.equal(await finished(start(run)), 0, `restart after a kill at ${delay} finishes`);
    // On a busy machine the poller can wake after the job has ended: then there is nothing to
    // resume, and the bytes below must still match.
    else assert.equal(killed.code, 0, `${delay}: the job ended by itself, but not cleanly`);
    finalBytes(run).forEach((b, i) => assert.ok(b.equals(finalBytes(ref)[i]!), `kill at ${delay}: final checkpoint file ${i} differs from the uninterrupted run`));
    assert.deepEqual(readMetrics(run).map(stripTimes), metrics.map(stripTimes), `kill at ${delay}: per-step metrics match`);
  }
});
