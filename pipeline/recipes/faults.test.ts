// docs/reliability.md R6, R7 (in the loop), R4 (resume in epoch 1) and R17 on the tiny job:
// R6  a run whose rollout shards outlive its newest checkpoint replays them on resume: no teacher
//     call, no generation, and the same final bytes as the run that wrote them; the checkpoint it
//     resumes from sits mid-epoch 1, so a resumed data cursor that lost its epoch fails here (R4);
// R7  NaN teacher log-probs, or a NaN gradient inside the train step, skip the step (weights
//     unchanged, counter, reason in the metrics line) and K in a row stop the job;
// R17 the same job twice gives identical weight hashes after every step (another seed does not).

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { cpSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { hostTensor } from '../../engine/runtime/host.ts';
import { type Batch, Trainer } from '../../engine/train/trainer.ts';
import type { Teacher } from '../../teacher/types.ts';
import { openRunDir, readMetrics } from '../rundir.ts';
import type { OpdSettings } from './opd.ts';
import { runPersisted } from './persisted.ts';
import { TINY_SETTINGS, tinyJob, tinyModels } from './tiny-job.ts';

const models = mkdtempSync(join(tmpdir(), 'opd-faults-'));
const newRun = () => join(mkdtempSync(join(tmpdir(), 'opd-faults-run-')), 'run');

/** Counts teacher calls and lets a test corrupt scores. */
function wrap(t: Teacher, corrupt?: (call: number) => boolean): Teacher & { calls: number } {
  const w = {
    identity: t.identity,
    calls: 0,
    score: async (reqs: Parameters<Teacher['score']>[0]) => {
      const out = await t.score(reqs);
      w.calls++;
      return corrupt?.(w.calls) ? out.map((s) => ({ ...s, logprobs: s.logprobs.map((v, i) => (i === 0 ? NaN : v)) })) : out;
    },
    close: () => t.close(),
  };
  return w;
}

async function run(dir: string, settings: OpdSettings, o: { checkpointEvery?: number; corrupt?: (call: number) => boolean } = {}) {
  const { job, close, tokenizerFrom } = await tinyJob(models, settings);
  const teacher = wrap(job.teacher!, o.corrupt);
  const skipped: boolean[] = [];
  await mkdir(dir, { recursive: true });
  try {
    const r = await runPersisted(await openRunDir(dir), { ...job, teacher }, {
      checkpointEvery: o.checkpointEvery ?? 100, keepLast: 10, tokenizerFrom,
      onStep: (rec) => void skipped.push(rec.skipped),
    });
    await r.close();
    return { teacherCalls: teacher.calls, skipped, error: undefined as Error | undefined };
  } catch (e) {
    return { teacherCalls: teacher.calls, skipped, error: e as Error };
  } finally {
    await close();
  }
}
const ckptFiles = (dir: string, step: number) => ['model/model.safetensors', 'optimizer.safetensors', 'state.json'].map((f) => readFileSync(join(dir, 'checkpoints', `step-${String(step).padStart(6, '0')}`, f)));
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

test('R6: resume replays committed rollout shards: no teacher call, no generation, same final bytes', { timeout: 180_000 }, async () => {
  const ref = newRun();
  const full = await run(ref, TINY_SETTINGS, { checkpointEvery: 3 });
  assert.equal(full.teacherCalls, 6, 'one batched teacher call per step');
  // the state a kill -9 leaves after steps 4-6 stored their rollouts but before checkpoint 6 committed
  const resumeFrom = JSON.parse(ckptFiles(ref, 3)[2]!.toString()) as { cursor: { cursor: { epoch: number; index: number } } };
  assert.deepEqual(resumeFrom.cursor.cursor, { epoch: 1, index: 2 }, 'R4: the resume starts mid-epoch 1 (10 prompts, 4 per step)');
  const crashed = newRun();
  cpSync(ref, crashed, { recursive: true });
  rmSync(join(crashed, 'checkpoints', 'step-000006'), { recursive: true });
  const resumed = await run(crashed, TINY_SETTINGS, { checkpointEvery: 3 });
  assert.equal(resumed.error, undefined);
  assert.equal(resumed.teacherCalls, 0, 'steps 4-6 come from their shards: the teacher is not asked again');
  const m = readMetrics(crashed);
  assert.deepEqual(m.map((l) => l.step), [1, 2, 3, 4, 5, 6]);
  for (const l of m.slice(3)) assert.equal(l.generate_s, 0, `step ${l.step} was not regenerated`);
  ckptFiles(crashed, 6).forEach((b, i) => assert.equal(sha(b), sha(ckptFiles(ref, 6)[i]!), `final checkpoint file ${i} matches the uninterrupted run`));
});

test('R7: NaN teacher log-probs skip the step with weights unchanged; K in a row stop the job', { timeout: 120_000 }, async () => {
  // steps 2 and 3 get a NaN; K = 3 is not reached, the job finishes with 2 skips
  const dir = newRun();
  const r = await run(dir, TINY_SETTINGS, { checkpointEvery: 1, corrupt: (call) => call === 2 || call === 3 });
  assert.equal(r.error, undefined);
  assert.deepEqual(r.skipped, [false, true, true, false, false, false]);
  const m = readMetrics(dir);
  assert.match(String(m[1]!.skip_reason), /teacher log-probs/);
  assert.equal(m[5]!.skipped_total, 2);
  assert.equal(sha(ckptFiles(dir, 1)[0]!), sha(ckptFiles(dir, 3)[0]!), 'weights after two skipped steps equal those before them');
  assert.notEqual(sha(ckptFiles(dir, 3)[0]!), sha(ckptFiles(dir, 4)[0]!), 'a good step trains again');
  const state = JSON.parse(ckptFiles(dir, 3)[2]!.toString()) as { counters: { skipped: number; skippedTotal: number } };
  assert.deepEqual(state.counters, { skipped: 2, skippedTotal: 2 }, 'the counters are checkpointed');

  const stop = await run(newRun(), { ...TINY_SETTINGS, maxConsecutiveSkips: 3 }, { corrupt: (call) => call >= 2 });
  assert.match(stop.error?.message ?? '', /stopping: 3 consecutive steps skipped \(last: teacher log-probs/);
  assert.deepEqual(stop.skipped, [false, true, true], 'two skips recorded, the third stops the job');
});

/** Feeds of the policy step with every advantage NaN: the real graph then computes a NaN loss and gradient. */
const poisoned = (b: Batch): Batch => ({ ...b, advantages: hostTensor(b.advantages!.dtype, b.advantages!.dims, new Float32Array(b.advantages!.data.length).fill(NaN)) });

/** Run `fn` with Trainer.step poisoning the feeds of the calls `poison` picks (1-based). */
async function withNaNGradients<T>(poison: (call: number) => boolean, fn: () => Promise<T>): Promise<T> {
  const real = Trainer.prototype.step;
  let calls = 0;
  Trainer.prototype.step = function (batch, lr) {
    calls++;
    if (!poison(calls)) return real.call(this, batch, lr);
    return real.call(this, Array.isArray(batch) ? batch.map(poisoned) : poisoned(batch as Batch), lr);
  };
  try {
    return await fn();
  } finally {
    Trainer.prototype.step = real;
  }
}

test('R7: a NaN gradient in the train step skips the step with weights unchanged; K in a row stop the job', { timeout: 120_000 }, async () => {
  await tinyModels(models); // built (SFT) before Trainer.step is patched
  const dir = newRun();
  const r = await withNaNGradients((call) => call === 2 || call === 3, () => run(dir, TINY_SETTINGS, { checkpointEvery: 1 }));
  assert.equal(r.error, undefined);
  assert.deepEqual(r.skipped, [false, true, true, false, false, false]);
  const m = readMetrics(dir);
  assert.match(String(m[1]!.skip_reason), /non-finite loss or gradient/);
  assert.equal(m[5]!.skipped_total, 2);
  assert.equal(sha(ckptFiles(dir, 1)[0]!), sha(ckptFiles(dir, 3)[0]!), 'weights after two NaN-gradient steps equal those before them');
  assert.equal(sha(ckptFiles(dir, 1)[1]!), sha(ckptFiles(dir, 3)[1]!), 'AdamW moments unchanged too');
  assert.notEqual(sha(ckptFiles(dir, 3)[0]!), sha(ckptFiles(dir, 4)[0]!), 'a good step trains again');
  const state = JSON.parse(ckptFiles(dir, 3)[2]!.toString()) as { t: number; counters: { skipped: number; skippedTotal: number } };
  assert.deepEqual(state.counters, { skipped: 2, skippedTotal: 2 });
  assert.equal(state.t, 1, "AdamW's step counter counts applied updates only");

  const stop = await withNaNGradients((call) => call >= 2, () => run(newRun(), { ...TINY_SETTINGS, maxConsecutiveSkips: 3 }));
  assert.match(stop.error?.message ?? '', /stopping: 3 consecutive steps skipped \(last: non-finite loss or gradient/);
  assert.deepEqual(stop.skipped, [false, true, true]);
});

test('R17: the same job twice gives identical weights after every step; another seed does not', { timeout: 180_000 }, async () => {
  const perStep = async (settings: OpdSettings) => {
    const dir = newRun();
    await run(dir, settings, { checkpointEvery: 1 });
    return [1, 2, 3, 4, 5, 6].map((s) => sha(ckptFiles(dir, s)[0]!));
  };
  const [a, b] = [await perStep(TINY_SETTINGS), await perStep(TINY_SETTINGS)];
  assert.deepEqual(a, b);
  assert.equal(new Set(a).size, 6, 'every step changed the weights');
  const c = await perStep({ ...TINY_SETTINGS, seed: 1 });
  assert.notEqual(c[0], a[0], 'a different seed samples different rollouts');
});
