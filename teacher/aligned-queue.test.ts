// A teacher with another tokenizer under --queue (pipeline/queue/): the controller keeps the alignment
// (keepAlignment in queueJob), the worker scores the teacher's own ids, and the run ends on the same
// rollout-shard and checkpoint bytes as the in-process aligned run. Against a throw-away redis-server;
// skips (with the reason) where it is not installed.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { queueJob } from '../pipeline/queue/controller.ts';
import { type LocalRedis, hasRedis, spawnWorker, startRedis } from '../pipeline/queue/redis-server.ts';
import { runPersisted } from '../pipeline/recipes/persisted.ts';
import { tinyBpeTeacher } from '../pipeline/recipes/tiny-bpe-teacher.ts';
import { TINY_SETTINGS, tinyJob, tinyModels } from '../pipeline/recipes/tiny-job.ts';
import { openRunDir } from '../pipeline/rundir.ts';
import { AlignedTeacher } from './aligned.ts';
import { openTeacher } from './open.ts';

const skip = hasRedis() ? false : 'redis-server is not installed (apt-get install redis-server)';
const root = mkdtempSync(join(tmpdir(), 'opd-aligned-queue-'));
const models = join(root, 'models');
const settings = { ...TINY_SETTINGS, steps: 2 };
let redis: LocalRedis;
let bpe: string;

before(async () => {
  if (skip) return;
  redis = await startRedis();
  await tinyModels(models);
  bpe = await tinyBpeTeacher(join(models, 'teacher-bpe'));
});
after(async () => {
  await redis?.stop();
});

const sha = (f: string) => createHash('sha256').update(readFileSync(f)).digest('hex');
function runBytes(dir: string) {
  const ck = join(dir, 'checkpoints', `step-${String(settings.steps).padStart(6, '0')}`);
  const shards = readdirSync(join(dir, 'shards')).filter((f) => f.endsWith('.arrow')).sort();
  return Object.fromEntries([...['model/model.safetensors', 'optimizer.safetensors', 'state.json'].map((f) => [f, sha(join(ck, f))]), ...shards.map((f) => [f, sha(join(dir, 'shards', f))])]);
}

async function run(name: string, queue?: string) {
  const dir = join(root, name);
  const { job, close, tokenizerFrom } = await tinyJob(models, settings);
  const spec = { id: 't', kind: 'local' as const, path: bpe };
  const t = await openTeacher(spec, { threads: 1 });
  job.teacher = new AlignedTeacher(t.teacher, { student: job.student.tokenizer, teacher: t.tokenizer });
  const ctl = queue ? await queueJob(job, [{ id: 't', spec, teacher: job.teacher }], { url: queue }) : null;
  await mkdir(dir, { recursive: true });
  try {
    if (queue) assert.ok(job.teacher instanceof AlignedTeacher && job.teacher.inner !== t.teacher, 'the queue teacher sits inside the alignment');
    const r = await runPersisted(await openRunDir(dir), job, { checkpointEvery: 1, keepLast: 5, tokenizerFrom });
    await r.close();
  } finally {
    await ctl?.close();
    await t.teacher.close();
    await close();
  }
  return dir;
}

test('an aligned teacher under --queue ends on the in-process aligned run bytes', { skip, timeout: 300_000 }, async () => {
  const ref = runBytes(await run('in-process'));
  const w = await spawnWorker(redis.url, {});
  try {
    assert.deepEqual(runBytes(await run('queued', redis.url)), ref);
  } finally {
    await w.stop();
  }
});
