// The loop's optional modes on the tiny job: one-step-stale sampling (and its resume), a clean
// stop after a step (what SIGTERM triggers), the lr schedule, the held-out evaluation cadence, and
// multi-teacher routing by prompt tag.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { TaskRecord } from '../../data/tasks/registry.ts';
import type { Teacher, TeacherRequest } from '../../teacher/types.ts';
import { lrAt } from '../algo/schedule.ts';
import { openRunDir, readMetrics } from '../rundir.ts';
import type { OpdSettings } from './opd.ts';
import { runPersisted } from './persisted.ts';
import { scoreRouted } from './rollout-step.ts';
import { TINY_SETTINGS, tinyJob } from './tiny-job.ts';

const models = mkdtempSync(join(tmpdir(), 'opd-modes-'));

async function runTiny(settings: OpdSettings, opts: { stopAfter?: number; heldOut?: boolean } = {}, dir = join(mkdtempSync(join(tmpdir(), 'opd-modes-run-')), 'run')) {
  const { job, close, tokenizerFrom } = await tinyJob(models, settings);
  let evals = 0;
  if (opts.heldOut) job.heldOut = async () => ({ accuracy: ++evals / 100, reward: 0 });
  await mkdir(dir, { recursive: true });
  let steps = 0;
  const r = await runPersisted(await openRunDir(dir), job, {
    checkpointEvery: 100, keepLast: 2, tokenizerFrom,
    onStep: () => void steps++,
    shouldStop: () => opts.stopAfter !== undefined && steps >= opts.stopAfter,
  });
  await r.close();
  await close();
  return { dir, stopped: r.stopped, step: r.state.step };
}
const finalBytes = (dir: string, step: number) => ['model/model.safetensors', 'optimizer.safetensors', 'state.json'].map((f) => readFileSync(join(dir, 'checkpoints', `step-${String(step).padStart(6, '0')}`, f)));
const samples = (dir: string) => readMetrics(dir).map((m) => m.teacher_kl);

test('one-step-stale: samples with the previous weights, and a stop + resume ends on the same bytes', { timeout: 180_000 }, async () => {
  const stale = { ...TINY_SETTINGS, oneStepStale: true };
  const ref = await runTiny(stale);
  const fresh = await runTiny(TINY_SETTINGS);
  const [a, b] = [readMetrics(ref.dir), readMetrics(fresh.dir)];
  assert.equal(a[0]!.teacher_kl, b[0]!.teacher_kl, 'step 1 samples the initial weights in both modes');
  assert.notDeepEqual(samples(ref.dir).slice(1), samples(fresh.dir).slice(1), 'later steps sample other (staler) weights');

  // stop after step 3 (a committed checkpoint there, not on the cadence), then resume to the end
  const stopped = await runTiny(stale, { stopAfter: 3 });
  assert.equal(stopped.stopped, true);
  assert.equal(stopped.step, 3);
  finalBytes(stopped.dir, 3); // throws if the stop left no checkpoint at step 3
  const state = JSON.parse(readFileSync(join(stopped.dir, 'checkpoints', 'step-000003', 'state.json'), 'utf8')) as { shards: string[] };
  assert.ok(state.shards.includes('step-000004.rollouts.arrow'), 'step 4 (sampled with step-2 weights) was stored before checkpoint 3 committed, so a kill -9 cannot lose it');
  const resumed = await runTiny(stale, {}, stopped.dir);
  assert.equal(resumed.step, 6);
  finalBytes(resumed.dir, 6).forEach((buf, i) => assert.ok(buf.equals(finalBytes(ref.dir, 6)[i]!), `final checkpoint file ${i} equals the uninterrupted stale run`));
});

test('cosine lr schedule and the held-out evaluation cadence reach the metrics', { timeout: 120_000 }, async () => {
  const s = { ...TINY_SETTINGS, lrSchedule: 'cosine' as const, warmupSteps: 2, evalEvery: 4 };
  const r = await runTiny(s, { heldOut: true });
  const m = readMetrics(r.dir);
  m.forEach((line, i) => assert.ok(Math.abs((line.lr as number) - lrAt({ lr: s.lr, warmupSteps: 2, kind: 'cosine' }, i + 1, s.steps)) < 1e-12, `lr at step ${i + 1}`));
  assert.deepEqual(m.filter((l) => 'eval_accuracy' in l).map((l) => l.step), [4, 6], 'every evalEvery steps and after the last');
  assert.deepEqual(m.filter((l) => 'eval_accuracy' in l).map((l) => l.eval_accuracy), [0.01, 0.02]);
});

test('multi-teacher routing: each prompt group is scored by the teacher its tag names', async () => {
  const calls: Record<string, number> = {};
  const fake = (id: string, value: number): Teacher => ({
    identity: { modelId: id, tokenizerFingerprint: 'x', vocabSize: 10 },
    score: async (reqs: readonly TeacherRequest[]) => {
      calls[id] = (calls[id] ?? 0) + reqs.length;
      return reqs.map((q) => ({ logprobs: q.ids.slice(q.start).map(() => value) }));
    },
    close: async () => {},
  });
  const byId = new Map([['math', fake('math', -1)], ['chat', fake('chat', -2)]]);
  const recs = [{ tag: 'add' }, { tag: undefined }, { tag: 'talk' }] as unknown as TaskRecord[];
  const reqs = Array.from({ length: 6 }, (_, i) => ({ ids: [1, 2, 3].slice(0, 2 + (i % 2)), start: 1 }));
  const out = await scoreRouted({ byId, routes: { byTag: { add: 'math', talk: 'chat' }, defaultTeacher: 'math' } }, recs, 2, reqs);
  assert.deepEqual(out.map((s) => s.logprobs[0]), [-1, -1, -1, -1, -2, -2]);
  assert.deepEqual(out.map((s) => s.logprobs.length), reqs.map((q) => q.ids.length - 1), 'each score stays with its request');
  assert.deepEqual(calls, { math: 4, chat: 2 }, 'one batched call per teacher');
  await assert.rejects(scoreRouted({ byId, routes: { byTag: { add: 'math' } } }, [{ tag: 'sub' }] as unknown as TaskRecord[], 1, reqs.slice(0, 1)), /tag 'sub'.*known tags: add/);
});
