// `opd worker --queue URL [--roles rollout,teacher:ID] [--concurrency N]`: pull a queued run's jobs
// (pipeline/queue/controller.ts) and run them. Workers join and leave at any time; a worker killed
// mid-job loses nothing (its job's lock expires and another worker takes it).
//
// Roles: `rollout` samples slices of prompts with the student at the weights the job names
// (fetched by content hash, the newest kept: weights.ts; a LoRA run's adapters, over the frozen
// base read from the run directory, which must be shared at the same path); `teacher:ID` scores rollouts with the
// teacher ID, opened from the config entry the job carries (its model path or server URL must be
// reachable from this machine); a bare `teacher` serves every teacher the controller announced.
// Default: `rollout,teacher`. Sampling runs one job at a time per process (one generator, one set
// of weights); --concurrency lets teacher jobs (an HTTP fleet) overlap.
//
// An error in a job is reported with this worker's name (host:pid), which the controller shows
// when the job has failed its last attempt.

import { existsSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'bullmq';
import { Rng } from '../../engine/rng.ts';
import { Generator } from '../../student/generate/generate.ts';
import { parseConfig } from '../../student/model/config.ts';
import { BASE_FILE, type FrozenBase } from '../../student/model/frozen.ts';
import type { LoraSpec } from '../../student/model/lora.ts';
import { loraModel } from '../../student/train/trainer.ts';
import { type OpenedTeacher, openTeacher } from '../../teacher/open.ts';
import { checkRedis, redactUrl, redisOptions } from './connection.ts';
import { TEACHER_IDS_KEY } from './controller.ts';
import { WeightsCache } from './weights.ts';
import { type JobData, type JobResult, ROLLOUT_QUEUE, type RolloutJobData, type TeacherJobData, completionsResult, teacherQueue, teacherResult } from './wire.ts';

export const WORKER_ID = `${hostname()}:${process.pid}`;

export interface WorkerOptions {
  url: string;
  /** `rollout`, `teacher` (every announced teacher) and/or `teacher:ID`; default both. */
  roles?: readonly string[];
  /** Jobs in flight per queue (count); default 1. */
  concurrency?: number;
  /** Job lock (ms): a worker silent this long is taken for dead and its job handed on; default 30 000 (OPD_QUEUE_LOCK_MS). */
  lockMs?: number;
  log?: (m: string) => void;
}

export interface RunningWorker {
  /** Jobs this process finished, by queue. */
  done: Map<string, number>;
  close(): Promise<void>;
}

export async function startWorker(o: WorkerOptions): Promise<RunningWorker> {
  const conn = redisOptions(o.url);
  const roles = o.roles?.length ? o.roles : ['rollout', 'teacher'];
  for (const r of roles)
    if (r !== 'rollout' && r !== 'teacher' && !/^teacher:[\w.-]+$/.test(r)) throw new Error(`--roles ${roles.join(',')}: "${r}" is not rollout, teacher or teacher:ID`);
  await checkRedis(o.url, conn);
  const lockMs = o.lockMs ?? (Number(process.env.OPD_QUEUE_LOCK_MS) || 30_000);
  const log = o.log ?? (() => {});
  const weights = new WeightsCache();
  const exec = new Executors(weights);
  const workers = new Map<string, Worker>();
  const done = new Map<string, number>();
  const serve = (queue: string) => {
    if (workers.has(queue)) return;
    const w = new Worker<JobData, JobResult>(
      queue,
      async (job) => {
        log(`job ${job.id} active`);
        // test hook: hold each job this long first, so a test can kill -9 a worker mid-job
        const stall = Number(process.env.OPD_WORKER_TEST_STALL_MS) || 0;
        if (stall) await new Promise((ok) => setTimeout(ok, stall));
        try {
          return job.data.kind === 'rollout' ? await exec.rollout(job.data) : await exec.teacher(job.data);
        } catch (e) {
          throw new Error(`worker ${WORKER_ID}: ${(e as Error).message}`);
        }
      },
      { connection: conn, concurrency: o.concurrency ?? 1, lockDuration: lockMs, stalledInterval: Math.max(500, lockMs / 2), maxStalledCount: 5 },
    );
    w.on('error', () => {}); // connection loss: ioredis reconnects, the worker resumes
    w.on('completed', () => done.set(queue, (done.get(queue) ?? 0) + 1));
    w.on('failed', (job, e) => log(`job ${job?.id} failed: ${e.message}`));
    workers.set(queue, w);
    log(`serving ${queue}`);
  };
  if (roles.includes('rollout')) serve(ROLLOUT_QUEUE);
  for (const r of roles) if (r.startsWith('teacher:')) serve(teacherQueue(r.slice(8)));
  let discover: NodeJS.Timeout | undefined;
  if (roles.includes('teacher')) {
    const { default: IORedis } = await import('ioredis');
    const client = new IORedis(conn);
    client.on('error', () => {});
    const poll = async () => {
      try {
        for (const id of await client.smembers(TEACHER_IDS_KEY)) serve(teacherQueue(id));
      } catch {
        /* Redis away: try again on the next tick */
      }
    };
    await poll();
    discover = setInterval(poll, 2000);
    workers.set('(discovery)', { close: async () => void client.disconnect() } as unknown as Worker);
  }
  log(`worker ${WORKER_ID} on ${redactUrl(o.url)}: roles ${roles.join(',')}`);
  return {
    done,
    close: async () => {
      clearInterval(discover);
      await Promise.all([...workers.values()].map((w) => w.close()));
      await exec.close();
    },
  };
}

/** The models a worker process holds: one generator (reused while the model and runtime stay the same) and opened teachers. */
class Executors {
  private gen: { key: string; generator: Generator; views: Record<string, import('../../engine/runtime/host.ts').HostTensor> } | null = null;
  private chain: Promise<unknown> = Promise.resolve();
  private readonly teachers = new Map<string, Promise<OpenedTeacher>>();

  constructor(private readonly weights: WeightsCache) {}

  /** One rollout job: the job's weights, its prompts, an Rng from its seed. Runs one at a time. */
  rollout(d: RolloutJobData): Promise<JobResult> {
    const run = this.chain.then(async () => {
      const t0 = performance.now();
      const views = await this.weights.get(d.weights);
      const key = JSON.stringify([d.model, d.runtime, d.lora ?? null]);
      if (this.gen?.key !== key) {
        await this.gen?.generator.release();
        const holder = { key, views, generator: null as unknown as Generator };
        holder.generator = await Generator.create(parseConfig(d.model, 'the job\'s model config'), () => holder.views, { ...d.runtime, ...loraModel(frozenBaseOf(d.lora)) });
        this.gen = holder;
      }
      this.gen.views = views;
      const c = await this.gen.generator.generate(d.prompts, { ...d.opts, rng: new Rng(d.seed) });
      return completionsResult(c, WORKER_ID, (performance.now() - t0) / 1e3);
    });
    this.chain = run.catch(() => {});
    return run;
  }

  async teacher(d: TeacherJobData): Promise<JobResult> {
    const t0 = performance.now();
    const key = JSON.stringify([d.teacherId, d.spec, d.runtime]);
    let t = this.teachers.get(key);
    if (!t) {
      t = openTeacher(d.spec, { threads: d.runtime.threads, device: d.runtime.device, defaultTokenizer: d.runtime.defaultTokenizer });
      t.catch(() => this.teachers.delete(key));
      this.teachers.set(key, t);
    }
    const teacher = (await t).teacher;
    return teacherResult(() => teacher.score(d.requests, d.topK ? { topK: d.topK } : undefined), WORKER_ID, t0);
  }

  async close(): Promise<void> {
    await this.chain;
    await this.gen?.generator.release();
    await Promise.allSettled([...this.teachers.values()].map(async (t) => (await t).teacher.close()));
  }
}

/** A LoRA job's frozen base, checked to be readable here (it is not sent: the run directory must be shared). */
function frozenBaseOf(l: RolloutJobData['lora']): { spec: LoraSpec; base: FrozenBase } | undefined {
  if (!l) return undefined;
  const file = join(l.base.dir, BASE_FILE);
  if (!existsSync(file)) throw new Error(`LoRA job: the frozen base ${file} is not on this machine; share the run directory's lora-base/ with rollout workers at the same path (docs/deploy.md)`);
  return { spec: l.spec, base: { dir: l.base.dir, entries: new Map(l.base.entries), headRows: l.base.headRows } };
}
