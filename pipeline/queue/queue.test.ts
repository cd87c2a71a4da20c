// The queued run (issue 14) on the tiny job, against a throw-away redis-server on loopback:
// - a controller with 3 `opd worker` processes ends on the same checkpoint bytes as the in-process
//   run of the same config (4 slices per step: several workers share every step);
// - the same with one worker kill -9'd while it holds a job (its job runs again elsewhere);
// - the same with Redis killed and restarted empty mid-run (the controller adds the lost jobs again);
// - a job that fails every attempt fails the step with a message naming the job, the worker, the error.
// Skips (with the reason) where redis-server is not installed; .ci/run installs it.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { openRunDir } from '../rundir.ts';
import type { OpdSettings, StepRecord } from '../recipes/opd.ts';
import { runPersisted } from '../recipes/persisted.ts';
import { TINY_SETTINGS, tinyJob, tinyModels } from '../recipes/tiny-job.ts';
import type { LoraSpec } from '../../student/model/lora.ts';
import { prepareLoraStudent } from '../recipes/lora.ts';
import { checkRedis } from './connection.ts';
import { openTeacher } from '../../teacher/open.ts';
import { QueueController, queueJob } from './controller.ts';
import { type LocalRedis, type WorkerProc, hasRedis, spawnWorker, startRedis } from './redis-server.ts';

const skip = hasRedis() ? false : 'redis-server is not installed (apt-get install redis-server; .ci/run does)';
const models = mkdtempSync(join(tmpdir(), 'opd-queue-'));
const SETTINGS: OpdSettings = { ...TINY_SETTINGS, steps: 3, sampling: { ...TINY_SETTINGS.sampling, slicePrompts: 1 } };
const LOCK_MS = 1500;

let redis: LocalRedis;
before(async () => {
  if (skip) return;
  redis = await startRedis();
  await tinyModels(models);
});
after(async () => {
  await redis?.stop();
});

const newRun = () => join(mkdtempSync(join(tmpdir(), 'opd-queue-run-')), 'run');
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
/** Every file of the final checkpoint and every rollout shard, by name → sha256. */
function runBytes(dir: string, step: number) {
  const ck = join(dir, 'checkpoints', `step-${String(step).padStart(6, '0')}`);
  const weights = existsSync(join(ck, 'adapter')) ? 'adapter/adapter_model.safetensors' : 'model/model.safetensors'; // a LoRA run's checkpoint holds its adapters
  const files = [weights, 'optimizer.safetensors', 'state.json'].map((f) => [f, sha(readFileSync(join(ck, f)))]);
  const shards = readdirSync(join(dir, 'shards')).filter((f) => f.endsWith('.arrow')).sort().map((f) => [f, sha(readFileSync(join(dir, 'shards', f)))]);
  return Object.fromEntries([...files, ...shards]);
}

/** The tiny job in `dir`, in-process or as the controller of `queue`; `onStep` sees each step. */
async function run(dir: string, queue?: string, onStep?: (rec: StepRecord) => Promise<void> | void, lora?: LoraSpec, crashInStep2?: Promise<void>) {
  const { job, close, tokenizerFrom } = await tinyJob(models, SETTINGS);
  const dirs = await tinyModels(models);
  if (lora) job.student = { ...job.student, lora: await prepareLoraStudent(dir, { dir: dirs.student, config: job.student.config, weights: job.student.weights }, lora, 0) };
  const ctl = queue ? await queueJob(job, [{ id: 't', spec: { id: 't', kind: 'local', path: dirs.teacher }, teacher: job.teacher! }], { url: queue }) : null;
  if (crashInStep2) {
    // the controller dies while step 2's rollout jobs are queued or running: they stay in Redis
    const real = job.remoteSampler!;
    job.remoteSampler = (w, step) => {
      const sample = real(w, step);
      return step !== 2 ? sample : async (...a) => {
        sample(...a).catch(() => {});
        await crashInStep2;
        throw new Error('controller crashed');
      };
    };
  }
  await mkdir(dir, { recursive: true });
  try {
    const r = await runPersisted(await openRunDir(dir), job, { checkpointEvery: 1, keepLast: 5, tokenizerFrom, onStep: (rec) => onStep?.(rec) });
    await r.close();
    return { timings: ctl?.timings ?? [], published: ctl?.publishedNames ?? [] };
  } finally {
    await ctl?.close();
    await close();
  }
}

const worker = (url: string) => spawnWorker(url, { OPD_QUEUE_LOCK_MS: String(LOCK_MS) });
const jobsDone = (w: WorkerProc) => w.log.filter((l) => /^job \S+ active$/.test(l)).length;

let reference: Record<string, string> | null = null;
async function referenceBytes() {
  if (!reference) {
    const dir = newRun();
    await run(dir);
    reference = runBytes(dir, SETTINGS.steps);
  }
  return reference;
}

test('a controller with 3 workers ends on the in-process run\'s checkpoint and shard bytes', { skip, timeout: 300_000 }, async () => {
  const ref = await referenceBytes();
  // one samples only, one scores only (teacher t), one does both (the default roles)
  const env = { OPD_QUEUE_LOCK_MS: String(LOCK_MS) };
  const workers = await Promise.all([spawnWorker(redis.url, env, ['--roles', 'rollout']), spawnWorker(redis.url, env, ['--roles', 'teacher:t', '--concurrency', '2']), worker(redis.url)]);
  try {
    const dir = newRun();
    const { timings } = await run(dir, redis.url);
    const kinds = (w: WorkerProc) => new Set(w.log.flatMap((l) => /^job (rollout|teacher)-/.exec(l)?.[1] ?? []));
    assert.deepEqual([...kinds(workers[0]!)], ['rollout'], 'the rollout-only worker took rollout jobs only');
    assert.ok(!kinds(workers[1]!).has('rollout'), 'the teacher-only worker took no rollout job');
    assert.deepEqual(runBytes(dir, SETTINGS.steps), ref);
    assert.equal(timings.length, SETTINGS.steps * 4 * 2, 'one rollout and one teacher job per slice (4 slices of 1 prompt) per step');
    assert.ok(workers.filter((w) => jobsDone(w) > 0).length >= 2, `jobs were shared between workers: ${workers.map(jobsDone)}`);
  } finally {
    await Promise.all(workers.map((w) => w.stop()));
  }
});

test('a worker kill -9\'d mid-job: its job runs again elsewhere and the run ends on the same bytes', { skip, timeout: 300_000 }, async () => {
  const ref = await referenceBytes();
  await redis.restart(); // empty: job ids are content hashes, and the first test's results would be read, not rerun
  // the victim holds every job for 60 s, so when it is killed it holds one for sure
  const victim = await spawnWorker(redis.url, { OPD_QUEUE_LOCK_MS: String(LOCK_MS), OPD_WORKER_TEST_STALL_MS: '60000' });
  const others = await Promise.all([worker(redis.url), worker(redis.url)]);
  let killedHolding = false;
  void victim.active().then(() => {
    killedHolding = true;
    victim.proc.kill('SIGKILL');
  });
  try {
    const dir = newRun();
    await run(dir, redis.url);
    assert.ok(killedHolding, 'the victim was killed while it held a job');
    assert.equal(victim.proc.signalCode, 'SIGKILL');
    assert.deepEqual(runBytes(dir, SETTINGS.steps), ref);
  } finally {
    await Promise.all([...others, victim].map((w) => w.stop()));
  }
});

test('Redis killed and restarted empty mid-run: the controller adds the lost jobs again, same bytes', { skip, timeout: 300_000 }, async () => {
  const ref = await referenceBytes();
  await redis.restart();
  // every job is held 2 s, so step 2's jobs are queued or running when Redis goes
  const workers = await Promise.all([0, 1].map(() => spawnWorker(redis.url, { OPD_QUEUE_LOCK_MS: String(LOCK_MS), OPD_WORKER_TEST_STALL_MS: '2000' })));
  let restarted = 0;
  const midStep2 = Promise.race(workers.map((w) => w.when(/^job rollout-2-\S+ active$/))).then(async () => {
    await redis.restart();
    restarted++;
  });
  midStep2.catch(() => {});
  try {
    const dir = newRun();
    await run(dir, redis.url);
    await midStep2;
    assert.equal(restarted, 1, 'Redis was restarted while step 2 ran');
    assert.deepEqual(runBytes(dir, SETTINGS.steps), ref);
  } finally {
    await Promise.all(workers.map((w) => w.stop()));
  }
});

test('a controller restarted mid-step resumes from its checkpoint and reads the jobs it had added, same bytes', { skip, timeout: 300_000 }, async () => {
  const ref = await referenceBytes();
  await redis.restart();
  const workers = await Promise.all([0, 1].map(() => spawnWorker(redis.url, { OPD_QUEUE_LOCK_MS: String(LOCK_MS), OPD_WORKER_TEST_STALL_MS: '1000' })));
  try {
    const dir = newRun();
    const step2 = Promise.race(workers.map((w) => w.when(/^job rollout-2-\S+ active$/)));
    await assert.rejects(run(dir, redis.url, undefined, undefined, step2), /controller crashed/);
    assert.ok(existsSync(join(dir, 'checkpoints', 'step-000001')) && !existsSync(join(dir, 'checkpoints', 'step-000002')), 'the first controller died in step 2');
    await run(dir, redis.url);
    assert.deepEqual(runBytes(dir, SETTINGS.steps), ref);
    const step2Ids = new Set(workers.flatMap((w) => w.log.flatMap((l) => /^job (rollout-2-\S+) active$/.exec(l)?.[1] ?? [])));
    assert.equal(step2Ids.size, 4, 'both controllers added the same 4 rollout jobs of step 2 (one per slice), not new ones');
  } finally {
    await Promise.all(workers.map((w) => w.stop()));
  }
});

test('a LoRA run: only the adapters travel, workers read the frozen base from the run directory; same bytes as in-process', { skip, timeout: 300_000 }, async () => {
  const lora: LoraSpec = { rank: 2, alpha: 4, targets: ['q_proj', 'v_proj', 'up_proj', 'down_proj'] };
  const local = newRun();
  await run(local, undefined, undefined, lora);
  await redis.restart();
  const workers = await Promise.all([worker(redis.url), worker(redis.url)]);
  try {
    const dir = newRun();
    const { published } = await run(dir, redis.url, undefined, lora);
    assert.ok(published.length > 0 && published.every((n) => /lora/i.test(n)), `only adapters were published: ${published.join(', ')}`);
    const [a, b] = [runBytes(local, SETTINGS.steps), runBytes(dir, SETTINGS.steps)];
    assert.ok('adapter/adapter_model.safetensors' in a, 'a LoRA checkpoint');
    assert.deepEqual(b, a);
  } finally {
    await Promise.all(workers.map((w) => w.stop()));
  }
});

test('a Redis that requires a password: the password in the URL reaches controller and workers, same bytes', { skip, timeout: 300_000 }, async () => {
  const ref = await referenceBytes();
  const locked = await startRedis({ password: 'p@ss word' });
  let w: WorkerProc | undefined;
  try {
    w = await worker(locked.url);
    assert.match(locked.url, /^redis:\/\/:p%40ss%20word@127\.0\.0\.1:\d+$/);
    // a wrong or missing password is an error at start-up naming the URL (without the password), not a hang
    const bad = locked.url.replace('p%40ss%20word', 'nope');
    await assert.rejects(checkRedis(bad), /--queue redis:\/\/:\*\*\*@127\.0\.0\.1:\d+: WRONGPASS.*check the address, the password/);
    await assert.rejects(checkRedis(`redis://127.0.0.1:${locked.port}`), /NOAUTH/);
    const dir = newRun();
    await run(dir, locked.url);
    assert.deepEqual(runBytes(dir, SETTINGS.steps), ref);
    assert.ok(jobsDone(w) > 0, 'the worker authenticated and ran jobs');
  } finally {
    await w?.stop();
    await locked.stop();
  }
});

test('teacher jobs with top-k: the worker\'s top-k ids and log-probs equal the local teacher\'s (at float32)', { skip, timeout: 120_000 }, async () => {
  const dirs = await tinyModels(models);
  const spec = { id: 't', kind: 'local' as const, path: dirs.teacher, topK: 3 };
  const local = (await openTeacher(spec, { threads: 1 })).teacher;
  const w = await worker(redis.url);
  const ctl = await QueueController.open({ url: redis.url, model: (await tinyJob(models, SETTINGS)).job.student.config, runtime: { threads: 1 }, teachers: [{ id: 't', spec, identity: local.identity }] });
  try {
    const reqs = [{ ids: [257, 50, 43, 51, 61, 52, 258], start: 5 }, { ids: [257, 49, 43, 49, 61], start: 3 }];
    const want = await local.score(reqs, { topK: 3 });
    const got = await ctl.teacher('t').score(reqs, { topK: 3 });
    const f32 = (x: number[][]) => x.map((r) => r.map(Math.fround));
    assert.deepEqual(got.map((s) => s.topIds), want.map((s) => s.topIds));
    assert.deepEqual(got.map((s) => s.topLogprobs), want.map((s) => f32(s.topLogprobs!)));
    assert.deepEqual(got.map((s) => s.logprobs), want.map((s) => s.logprobs.map(Math.fround)));
    assert.equal(got[0]!.topIds!.length, 2, 'one top-k row per scored position');
  } finally {
    await ctl.close();
    await local.close();
    await w.stop();
  }
});

test('a job failing every attempt fails the step naming the job, the worker and the error', { skip, timeout: 120_000 }, async () => {
  const w = await worker(redis.url);
  const { job, close, tokenizerFrom } = await tinyJob(models, SETTINGS);
  const ctl = await queueJob(job, [{ id: 't', spec: { id: 't', kind: 'local', path: join(models, 'no-such-teacher') }, teacher: job.teacher! }], { url: redis.url, attempts: 2 });
  const dir = newRun();
  await mkdir(dir, { recursive: true });
  try {
    await assert.rejects(
      runPersisted(await openRunDir(dir), job, { checkpointEvery: 1, keepLast: 5, tokenizerFrom }),
      (e: Error) => {
        assert.match(e.message, /queue job teacher-0-[0-9a-f]+ \(teacher, step 0\) failed after 2 attempt\(s\): worker [^:]+:\d+: .*no-such-teacher/);
        return true;
      },
    );
  } finally {
    await ctl.close();
    await close();
    await w.stop();
  }
});
