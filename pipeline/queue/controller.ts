// The controller side of a queued run (`opd run CONFIG --queue URL`): the trainer stays here, and
// each step's sampling slices and teacher scoring become BullMQ jobs that `opd worker`s anywhere
// run (pipeline/queue/worker.ts). The loop does not change: the controller hands it a slice
// sampler (OpdJob.remoteSampler) and teachers whose score() is a job, and rollout-step.ts cuts the
// step into the same slices, with the same seeds, as an in-process run, so the step's shard has
// the same bytes whatever the number of workers and the order jobs finish in.
//
// Faults (docs/reliability.md, the queue rows):
// - a worker killed mid-job: its lock expires and BullMQ's stalled-job check hands the job to
//   another worker (maxStalledCount times), the controller just keeps waiting;
// - duplicates: a job's id is the hash of its data (wire.ts), so adding it again is a no-op and a
//   second result is never read;
// - Redis restarted and empty: a waiter that finds its job gone adds it again (its data is here);
// - a controller restart resumes from the checkpoint (persisted.ts) and adds the missing step's
//   jobs again; those already done are read, not rerun;
// - a job failing `attempts` times fails the step: the error names the job, the worker, the error.
// A LoRA run publishes only its adapters each step; rollout workers read the frozen base from the
// run directory's lora-base/ at the same path (a shared directory).
// Leaves out: the score cache (teacher/cache.ts) for queued teacher jobs; shipping the frozen base itself to workers without a shared directory.

import { type Job as BullJob, Queue, QueueEvents } from 'bullmq';
import type { RuntimeOptions } from '../../engine/runtime/session.ts';
import type { ModelConfig } from '../../student/model/config.ts';
import type { FrozenBase } from '../../student/model/frozen.ts';
import type { LoraSpec } from '../../student/model/lora.ts';
import type { WeightSource } from '../../student/model/runner.ts';
import { keepAlignment } from '../../teacher/aligned.ts';
import type { TeacherSpec } from '../../teacher/open.ts';
import type { Teacher, TeacherIdentity, TeacherRequest } from '../../teacher/types.ts';
import type { SampleSlice } from '../recipes/rollout-step.ts';
import { type RedisOptions, checkRedis, redactUrl, redisOptions } from './connection.ts';
import { type PublisherOptions, WeightsPublisher } from './weights.ts';
import { type JobData, type JobResult, ROLLOUT_QUEUE, type RolloutJobData, type TeacherJobData, jobId, readCompletions, readScores, teacherQueue } from './wire.ts';

export interface ControllerOptions {
  url: string;
  model: ModelConfig;
  runtime: RuntimeOptions;
  /** A LoRA student: adapters travel each step, the frozen base is read by workers from its (shared) directory. */
  lora?: { spec: LoraSpec; base: FrozenBase };
  /** The run's teachers: each one's config entry and identity (opened here for preflight and evaluation). */
  teachers: ReadonlyArray<{ id: string; spec: TeacherSpec; identity: TeacherIdentity }>;
  /** Tokenizer directory for http teachers without one (the student's). */
  defaultTokenizer?: string;
  publish?: PublisherOptions;
  /** Tries per job before the step fails (count); default 3. */
  attempts?: number;
  /** Fallback poll of each waiting job (ms); completions wake waiters at once. Default 500. */
  pollMs?: number;
  log?: (m: string) => void;
}

/** Per job: seconds from add to result at the controller, and seconds of work at the worker. */
export interface JobTiming {
  id: string;
  roundTrip_s: number;
  work_s: number;
}

/** The Redis set of teacher ids a bare `--roles teacher` worker serves. */
export const TEACHER_IDS_KEY = 'opd:teacher-ids';

export class QueueController {
  readonly timings: JobTiming[] = [];
  /** Tensor names of the weights published last (the whole model, or a LoRA run's adapters). */
  publishedNames: string[] = [];
  private readonly queues = new Map<string, { queue: Queue; events: QueueEvents }>();
  private readonly waiters = new Map<string, () => void>();

  private constructor(
    private readonly o: ControllerOptions,
    private readonly conn: RedisOptions,
    private readonly publisher: WeightsPublisher,
  ) {}

  static async open(o: ControllerOptions): Promise<QueueController> {
    await checkRedis(o.url);
    const c = new QueueController(o, redisOptions(o.url), await WeightsPublisher.open(o.publish));
    await c.queue(ROLLOUT_QUEUE);
    for (const t of o.teachers) await c.queue(teacherQueue(t.id));
    if (o.teachers.length) {
      const client = (await c.queues.get(ROLLOUT_QUEUE)!.queue.client) as unknown as { sadd(key: string, ...members: string[]): Promise<number> };
      await client.sadd(TEACHER_IDS_KEY, ...o.teachers.map((t) => t.id));
    }
    o.log?.(`queue ${redactUrl(o.url)}: controller; weights ${c.publisher.url ?? `in ${o.publish?.dir}`}`);
    return c;
  }

  /** Step `step`'s slice sampler: publishes the weights `weights` reads once, then one job per slice. */
  sampler(weights: WeightSource, step: number): SampleSlice {
    let ref: ReturnType<WeightsPublisher['publish']> | null = null;
    return async (prompts, opts, seed) => {
      if (!ref) {
        const w = weights();
        this.publishedNames = Object.keys(w).sort();
        ref = this.publisher.publish(w);
      }
      const data: RolloutJobData = {
        kind: 'rollout', step, prompts: prompts.map((p) => [...p]), seed, model: this.o.model.raw as Record<string, unknown>, runtime: this.o.runtime, weights: await ref,
        ...(this.o.lora ? { lora: { spec: this.o.lora.spec, base: { dir: this.o.lora.base.dir, entries: [...this.o.lora.base.entries], headRows: this.o.lora.base.headRows } } } : {}),
        opts: { maxNewTokens: opts.maxNewTokens, temperature: opts.temperature, topK: opts.topK, topP: opts.topP, stopTokenIds: [...opts.stopTokenIds], padId: opts.padId },
      };
      const { id, result } = await this.run(ROLLOUT_QUEUE, data);
      return readCompletions(result, id, prompts.length);
    };
  }

  /** Teacher `id` as seen by the loop: every score() call is one job on that teacher's queue. */
  teacher(id: string): Teacher {
    const t = this.o.teachers.find((x) => x.id === id);
    if (!t) throw new Error(`queue: no teacher "${id}"; known: ${this.o.teachers.map((x) => x.id).join(', ')}`);
    return {
      identity: t.identity,
      score: async (reqs: readonly TeacherRequest[], opts?: { topK?: number }) => {
        const topK = opts?.topK ?? 0;
        const data: TeacherJobData = {
          kind: 'teacher', step: 0, teacherId: id, spec: t.spec, requests: reqs.map((r) => ({ ids: [...r.ids], start: r.start })),
          runtime: { threads: this.o.runtime.threads, device: this.o.runtime.device, defaultTokenizer: this.o.defaultTokenizer },
          ...(topK ? { topK } : {}),
        };
        const { id: jid, result } = await this.run(teacherQueue(id), data);
        return readScores(result, jid, reqs, topK);
      },
      close: async () => {},
    };
  }

  async close(): Promise<void> {
    for (const { queue, events } of this.queues.values()) {
      await events.close();
      await queue.close();
    }
    await this.publisher.close();
  }

  private async queue(name: string) {
    let q = this.queues.get(name);
    if (!q) {
      const events = new QueueEvents(name, { connection: this.conn });
      const wake = ({ jobId }: { jobId: string }) => this.waiters.get(jobId)?.();
      events.on('completed', wake);
      events.on('failed', wake);
      events.on('error', () => {}); // reconnects on its own (a Redis restart); waiters poll meanwhile
      q = { queue: new Queue(name, { connection: this.conn }), events };
      q.queue.on('error', () => {});
      await events.waitUntilReady();
      this.queues.set(name, q);
    }
    return q;
  }

  /** Add the job (a no-op when it exists) and wait for its result; see the header for the faults. */
  private async run(name: string, data: JobData): Promise<{ id: string; result: JobResult }> {
    const { queue } = (await this.queue(name))!;
    const id = jobId(data);
    const attempts = this.o.attempts ?? 3;
    const add = () => queue.add(data.kind, data, { jobId: id, attempts, backoff: { type: 'fixed', delay: 200 }, removeOnComplete: { count: 5000 }, removeOnFail: { count: 5000 } });
    const t0 = performance.now();
    const job: BullJob | undefined = await queue.getJob(id);
    if (!job) await add();
    else {
      // added by an earlier controller's life: done is read as it is; otherwise it gets this
      // controller's weights URL and token, and one that failed is tried again, not reported again
      const state = await job.getState();
      if (state !== 'completed') await job.updateData(data);
      if (state === 'failed') await job.retry('failed');
    }
    try {
      for (;;) {
        const woken = new Promise<void>((ok) => {
          this.waiters.set(id, ok);
          setTimeout(ok, this.o.pollMs ?? 500).unref();
        });
        // the state first: a job object fetched before it completed has no return value
        const state = await queue.getJobState(id);
        if (state === 'unknown') {
          this.o.log?.(`queue job ${id} is gone from Redis (restarted?): adding it again`);
          await add();
        } else if (state === 'completed' || state === 'failed') {
          const job = await queue.getJob(id);
          if (state === 'completed' && job) {
            const result = job.returnvalue as JobResult;
            this.timings.push({ id, roundTrip_s: (performance.now() - t0) / 1e3, work_s: result?.seconds ?? 0 });
            return { id, result };
          }
          if (job) throw new Error(`queue job ${id} (${data.kind}, step ${data.step}) failed after ${job.attemptsMade} attempt(s): ${job.failedReason}`);
        }
        await woken;
      }
    } finally {
      this.waiters.delete(id);
    }
  }
}

export interface QueueRunOptions {
  url: string;
  publish?: PublisherOptions;
  attempts?: number;
}

/**
 * Make `opd` (a job from pipeline/job.ts buildJob) a controller's job: its sampling and teacher
 * scoring go through the queue at `o.url`. Returns the controller (close it after the run).
 */
export async function queueJob(
  opd: import('../recipes/opd.ts').OpdJob,
  teachers: ReadonlyArray<{ id: string; spec: TeacherSpec; teacher: Teacher }>,
  o: QueueRunOptions & { studentDir?: string; log?: (m: string) => void },
): Promise<QueueController> {
  const lora = opd.student.lora;
  const ctl = await QueueController.open({
    url: o.url, model: opd.student.config, ...(lora ? { lora: { spec: lora.spec, base: lora.base } } : {}), runtime: opd.settings.runtime, publish: o.publish, attempts: o.attempts, log: o.log,
    teachers: teachers.map((t) => ({ id: t.id, spec: t.spec, identity: t.teacher.identity })), defaultTokenizer: o.studentDir,
  });
  opd.remoteSampler = (weights, step) => ctl.sampler(weights, step);
  // a teacher with another tokenizer keeps its alignment here (teacher/aligned.ts); its jobs carry the teacher's own ids
  if (opd.teachers) opd.teachers = { ...opd.teachers, byId: new Map([...opd.teachers.byId].map(([id, t]) => [id, keepAlignment(t, ctl.teacher(id))])) };
  else if (opd.teacher) opd.teacher = keepAlignment(opd.teacher, ctl.teacher(teachers[0]!.id));
  return ctl;
}
