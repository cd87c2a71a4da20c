// The composition root (pipeline/job.ts) without the CLI, as a queue worker would use it: buildJob
// turns a config into the loop's job (settings from settingsOf, one teacher behind the score cache,
// or several by id with the config's routes, none for grpo), and
// runJob runs it to summary.json with no console, logger or signals.

import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, test } from 'node:test';
import { initModelDir, tinyConfig } from '../student/model/init.ts';
import { CachedTeacher } from '../teacher/cache.ts';
import { parseRunConfig } from './config.ts';
import { buildJob, prepareRunDir, runJob, settingsOf } from './job.ts';
import { tinyRunConfig } from './recipes/tiny-job.ts';
import { openRunDir, readMetrics } from './rundir.ts';

let root: string;
let models: { teacher: string; student: string };

before(async () => {
  root = mkdtempSync(join(tmpdir(), 'opd-job-'));
  models = { teacher: join(root, 'models', 'teacher'), student: join(root, 'models', 'student') };
  await initModelDir(models.teacher, tinyConfig(), 1);
  await initModelDir(models.student, tinyConfig({ hidden_size: 32, intermediate_size: 64 }), 2);
});

const config = (name: string, extra: Record<string, unknown> = {}) => {
  const raw = tinyRunConfig(root, models, { run: { name, steps: 2, checkpointEvery: 2, evalPrompts: 4 } });
  return parseRunConfig({ ...raw, ...extra }, `job test ${name}`);
};

async function dirFor(name: string) {
  const dir = join(root, 'runs', name);
  await mkdir(dir, { recursive: true });
  return openRunDir(dir);
}

test('buildJob: one teacher behind the score cache, the settings of settingsOf, train and held-out records', async () => {
  const c = config('one');
  const job = await buildJob(c, await dirFor('one'));
  try {
    assert.ok(job.opd.teacher instanceof CachedTeacher);
    assert.equal(job.opd.teachers, undefined);
    assert.deepEqual(job.opd.settings, settingsOf(c));
    assert.equal(job.opd.prompts.length, 40, 'data.trainSize');
    assert.equal(job.data.test.length, 4, 'run.evalPrompts');
    assert.ok(job.score && job.opd.heldOut);
    assert.deepEqual(job.persist, { checkpointEvery: 2, keepLast: c.run.keepCheckpoints, tokenizerFrom: models.student });
  } finally {
    await job.close();
  }
});

test('buildJob: several teachers by id with the config routes; grpo opens none', async () => {
  const routed = config('routed', {
    teachers: [{ id: 'adder', kind: 'local', path: models.teacher }, { id: 'other', kind: 'local', path: models.teacher }],
    routing: { byTag: { add: 'adder' }, defaultTeacher: 'other' },
  });
  const job = await buildJob(routed, await dirFor('routed'));
  try {
    assert.equal(job.opd.teacher, null);
    assert.deepEqual([...job.opd.teachers!.byId.keys()], ['adder', 'other']);
    assert.deepEqual(job.opd.teachers!.routes, { byTag: { add: 'adder' }, defaultTeacher: 'other' });
  } finally {
    await job.close();
  }
  const grpo = parseRunConfig({ ...tinyRunConfig(join(root, 'grpo'), models, { run: { name: 'g', steps: 2, evalPrompts: 4 } }), algo: { blend: { mode: 'grpo' } } }, 'job test grpo');
  const g = await buildJob(grpo, await dirFor('g'));
  assert.equal(g.opd.teacher, null);
  assert.equal(g.teachers.list.length, 0);
  await g.close();
});

test('runJob without the CLI: runs to summary.json; a stop request ends after one step with a checkpoint', async () => {
  const c = config('headless');
  const dir = await prepareRunDir(c);
  const lines: string[] = [];
  const stopped = await runJob(c, await openRunDir(dir), { log: { info: (m) => lines.push(m), warn: (m) => lines.push(m) }, shouldStop: () => true });
  assert.equal(stopped.stopped, true);
  assert.equal(stopped.summary.steps, 1);
  assert.ok(!existsSync(join(dir, 'summary.json')));
  const done = await runJob(c, await openRunDir(await prepareRunDir(c)));
  assert.equal(done.stopped, false);
  assert.equal(done.summary.steps, 2);
  assert.deepEqual(JSON.parse(readFileSync(join(dir, 'summary.json'), 'utf8')).steps, 2);
  assert.deepEqual(readMetrics(dir).map((m) => m.step), [1, 2]);
  assert.ok(lines.some((l) => l.startsWith(`run ${dir}: 2 steps`)));
});

test('wall_s after a resume is the total over every segment (elapsed.json), never stored in a checkpoint', async () => {
  const c = config('resumed');
  const dir = await prepareRunDir(c);
  // the first segment: pretend it started 100 s ago, and stop it after one step
  const first = await runJob(c, await openRunDir(dir), { shouldStop: () => true, startedAt: performance.now() - 100_000 });
  assert.equal(first.stopped, true);
  assert.ok(first.summary.wall_s >= 100);
  const done = await runJob(c, await openRunDir(dir));
  const written = JSON.parse(readFileSync(join(dir, 'summary.json'), 'utf8'));
  assert.ok(written.wall_s >= 100, `wall_s ${written.wall_s} covers the first segment too`);
  assert.deepEqual(first.summary.segments_s.length, 1);
  assert.equal(done.summary.segments_s.length, 2);
  assert.equal(done.summary.segments_s[0], first.summary.segments_s[0], 'the first segment as it was recorded');
  assert.equal(written.wall_s, written.segments_s[0] + written.segments_s[1]);
  assert.deepEqual(JSON.parse(readFileSync(join(dir, 'elapsed.json'), 'utf8')).segments_s, written.segments_s);
  for (const ck of readdirSync(join(dir, 'checkpoints')).filter((d) => d.startsWith('step-'))) {
    const state = readFileSync(join(dir, 'checkpoints', ck, 'state.json'), 'utf8');
    assert.doesNotMatch(state, /segments|wall|elapsed/, `${ck}/state.json holds no wall-clock time`);
  }
});

test('settingsOf: the Dr. GRPO normaliser defaults to rollout.maxNewTokens (a constant L_max), and an explicit loss.maxCompletionLen wins', () => {
  const base = { student: 's', data: { task: 'arithmetic' }, algo: { blend: { mode: 'grpo' } }, rollout: { maxNewTokens: 12 }, loss: { aggregation: 'seq_mean_token_sum_norm' } };
  assert.equal(settingsOf(parseRunConfig(base, 'c.json')).maxCompletionLen, 12);
  assert.equal(settingsOf(parseRunConfig({ ...base, loss: { ...base.loss, maxCompletionLen: 20 } }, 'c.json')).maxCompletionLen, 20);
});
