// docs/reliability.md R7 for the three sources of non-finite values that reach the loop as errors
// (issue 13 item 3), each through the real loop on the tiny job:
// - a reward module returning NaN (NonFiniteRewardError),
// - an HTTP teacher answering NaN (Python's bare NaN, through the vLLM wire format),
// - a local teacher whose logits overflow (its log-probs come out NaN/-Infinity).
// Each skips its step (weights unchanged, counted, the reason in the metrics line) instead of
// stopping the job; K in a row still stop it; and a resume that replays a skipped step's shard
// skips it again and ends on the same bytes (exact resume, R6).

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { combine } from '../../data/rewards/index.ts';
import { tableToRollouts } from '../../data/schemas.ts';
import { readShard } from '../../data/store/shards.ts';
import { loadModelDir, saveModelDir } from '../../student/model/weights.ts';
import { startFakeServer } from '../../teacher/fake-servers.ts';
import { HttpTeacher } from '../../teacher/http.ts';
import { LocalTeacher } from '../../teacher/local.ts';
import { type Teacher, TeacherScoreError } from '../../teacher/types.ts';
import { openRunDir, readMetrics } from '../rundir.ts';
import type { OpdJob, OpdSettings } from './opd.ts';
import { runPersisted, shardName } from './persisted.ts';
import { TINY_SETTINGS, tinyJob, tinyModels } from './tiny-job.ts';

const models = mkdtempSync(join(tmpdir(), 'opd-skips-'));
const newRun = () => join(mkdtempSync(join(tmpdir(), 'opd-skips-run-')), 'run');
const ROLLOUTS_PER_STEP = TINY_SETTINGS.promptsPerStep * TINY_SETTINGS.sampling.groupSize;

async function run(dir: string, patch: (job: OpdJob) => Partial<OpdJob> | Promise<Partial<OpdJob>>, settings: OpdSettings = TINY_SETTINGS) {
  const { job, close, tokenizerFrom } = await tinyJob(models, settings);
  const skipped: boolean[] = [];
  await mkdir(dir, { recursive: true });
  try {
    const r = await runPersisted(await openRunDir(dir), { ...job, ...(await patch(job)) }, { checkpointEvery: 1, keepLast: 10, tokenizerFrom, onStep: (rec) => void skipped.push(rec.skipped) });
    await r.close();
    return { skipped, error: undefined as Error | undefined };
  } catch (e) {
    return { skipped, error: e as Error };
  } finally {
    await close();
  }
}
const ckpt = (dir: string, step: number, f = 'model/model.safetensors') => readFileSync(join(dir, 'checkpoints', `step-${String(step).padStart(6, '0')}`, f));
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const shardRows = (dir: string, step: number) => tableToRollouts(readShard(join(dir, 'shards'), `${shardName(step)}.arrow`));

test('R7: a reward module returning NaN skips the step and counts it; a resume replaying its shard skips it again, same bytes', { timeout: 240_000 }, async () => {
  const mdir = mkdtempSync(join(tmpdir(), 'opd-skips-mod-'));
  // NaN for a few of step 2's rollouts (calls reach the module's worker in rollout order)
  writeFileSync(join(mdir, 'r.mjs'), `let n = 0;\nexport default (_p, c, r) => { n++; if (n > ${ROLLOUTS_PER_STEP} && n <= ${2 * ROLLOUTS_PER_STEP} && n % 5 === 0) return NaN; return c.trim() === r.answer ? 1 : 0; };\n`);
  const reward = await combine([{ type: 'module', path: join(mdir, 'r.mjs') }]);
  const dir = newRun();
  const r = await run(dir, () => ({ reward }));
  assert.equal(r.error, undefined, 'a NaN reward does not stop the job');
  assert.deepEqual(r.skipped, [false, true, false, false, false, false]);
  const m = readMetrics(dir);
  assert.match(String(m[1]!.skip_reason), /reward module .*r\.mjs \(export "default"\) returned NaN for record \S+; a reward must be a finite number \(and 2 more\)/);
  assert.equal(m[5]!.skipped_total, 1);
  assert.equal(sha(ckpt(dir, 1)), sha(ckpt(dir, 2)), 'the skipped step left the weights as they were');
  assert.notEqual(sha(ckpt(dir, 2)), sha(ckpt(dir, 3)), 'the next step trains');
  const rewards = shardRows(dir, 2).map((x) => x.reward);
  assert.deepEqual(rewards.map((x, i) => (Number.isNaN(x) ? i : -1)).filter((i) => i >= 0), [3, 8, 13], 'the shard holds NaN, not a made-up reward, where the reward was missing');

  // a kill after step 6's rollouts, before any checkpoint after step 1: the resume replays steps 2-6
  const crashed = newRun();
  cpSync(dir, crashed, { recursive: true });
  for (let s = 2; s <= 6; s++) rmSync(join(crashed, 'checkpoints', `step-${String(s).padStart(6, '0')}`), { recursive: true });
  const never = await combine([{ type: 'module', path: join(mdir, 'r.mjs') }]); // a fresh worker: its count restarts
  const resumed = await run(crashed, () => ({ reward: never }));
  assert.equal(resumed.error, undefined);
  assert.deepEqual(resumed.skipped, [true, false, false, false, false], 'the replayed step 2 is skipped again');
  assert.match(String(readMetrics(crashed)[1]!.skip_reason), /rewards\[\d+\]\[\d+\] = NaN is not finite/);
  for (const f of ['model/model.safetensors', 'optimizer.safetensors']) assert.equal(sha(ckpt(crashed, 6, f)), sha(ckpt(dir, 6, f)), `${f} at step 6 equals the uninterrupted run's`);
});

test('R7: an HTTP teacher answering NaN skips the step; K such steps in a row stop the job with the usual message', { timeout: 240_000 }, async () => {
  const { job, close } = await tinyJob(models);
  const lens = new Set(job.prompts.map((p) => job.student.tokenizer.encode(p.prompt).length));
  await close();
  assert.equal(lens.size, 1, 'every tiny prompt has the same length, so position P is the first completion token of every request');
  const P = [...lens][0]!;
  const http = async (nanAt: (n: number) => boolean) => {
    const server = await startFakeServer({ flavor: 'vllm', behaviour: { faults: (n) => (nanAt(n) ? { type: 'nan', position: P, as: 'NaN' } : undefined) } });
    const teacher = new HttpTeacher({ url: server.url, model: 'fake-teacher', flavor: 'vllm', retries: 0, identity: { tokenizerFingerprint: 'fake', vocabSize: 1000 } });
    return { teacher, close: async () => (await teacher.close(), await server.close()) };
  };
  // scoring requests 17..32 are step 2's (one request per rollout, steps one after another)
  const one = await http((n) => n === ROLLOUTS_PER_STEP + 5);
  const dir = newRun();
  const r = await run(dir, () => ({ teacher: one.teacher }));
  await one.close();
  assert.equal(r.error, undefined, 'a NaN from the server does not stop the job');
  assert.deepEqual(r.skipped, [false, true, false, false, false, false]);
  const m = readMetrics(dir);
  assert.match(String(m[1]!.skip_reason), new RegExp(`^teacher http:fake-teacher: http://127\\.0\\.0\\.1:\\d+/v1/completions request \\d+: position ${P}: log-prob NaN is not a finite number ≤ 0$`));
  assert.equal(sha(ckpt(dir, 1)), sha(ckpt(dir, 2)), 'the skipped step left the weights as they were');
  assert.ok(shardRows(dir, 2).every((x) => x.teacherLogprobs.length === x.completionIds.length && x.teacherLogprobs.every(Number.isNaN)), 'the shard claims no teacher score for the failed call');
  assert.ok(shardRows(dir, 3).every((x) => x.teacherLogprobs.every(Number.isFinite)));

  const all = await http((n) => n > ROLLOUTS_PER_STEP);
  const stop = await run(newRun(), () => ({ teacher: all.teacher }), { ...TINY_SETTINGS, maxConsecutiveSkips: 3 });
  await all.close();
  assert.match(stop.error?.message ?? '', /^stopping: 3 consecutive steps skipped \(last: teacher http:fake-teacher: .*log-prob NaN is not a finite number ≤ 0\); check the teacher, the rewards and the learning rate$/);
  assert.deepEqual(stop.skipped, [false, true, true]);
});

test('R7: a local teacher whose logits overflow skips the step instead of stopping the job', { timeout: 240_000 }, async () => {
  const { teacher: good } = await tinyModels(models);
  // the same teacher with its final norm scaled to 1e38: the logits overflow to ±Infinity
  const bad = join(mkdtempSync(join(tmpdir(), 'opd-skips-overflow-')), 'teacher');
  const m = await loadModelDir(good);
  m.weights.set('model.norm.weight', m.weights.get('model.norm.weight')!.map(() => 1e38));
  await saveModelDir(bad, m, { tokenizerFrom: good });
  const overflow = await LocalTeacher.open(bad, {});
  try {
    await assert.rejects(overflow.score([{ ids: [257, 49, 43, 50, 61, 51], start: 4 }]), (e: Error) => e instanceof TeacherScoreError && e.nonFinite && /is (NaN|-?Infinity) \(must be a finite number ≤ 0\)/.test(e.message));
    const dir = newRun();
    // step 2's call goes to the overflowing teacher, every other to the good one
    const r = await run(dir, (job) => {
      let calls = 0;
      const t: Teacher = { identity: job.teacher!.identity, score: (reqs, o) => (++calls === 2 ? overflow : job.teacher!).score(reqs, o), close: async () => {} };
      return { teacher: t };
    });
    assert.equal(r.error, undefined, 'overflowing log-probs do not stop the job');
    assert.deepEqual(r.skipped, [false, true, false, false, false, false]);
    assert.match(String(readMetrics(dir)[1]!.skip_reason), /^teacher local:[0-9a-f]+: teacher score for request \d+: log-prob at completion position \d+ is (NaN|-?Infinity) \(must be a finite number ≤ 0\)/);
    assert.equal(sha(ckpt(dir, 1)), sha(ckpt(dir, 2)));
  } finally {
    await overflow.close();
  }
});
