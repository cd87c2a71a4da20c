// The teacher server's batching: score jobs that arrive within `windowMs` of the first, or while the
// teacher is busy, go to the teacher in one score() call of at most `maxSequences` sequences (jobs of
// one temperature per call); a failed call is retried job by job, so one bad job fails only itself.
// The local teacher scores each sequence alone, so a score does not depend on its batch
// (docs/reliability.md R18).

import type { ServedTeacher } from './server.ts';
import type { TeacherRequest, TeacherScore } from './types.ts';

interface Job {
  reqs: TeacherRequest[];
  k: number;
  temperature: number | undefined;
  resolve: (s: TeacherScore[]) => void;
  reject: (e: unknown) => void;
}

/** Collects score jobs and hands them to the teacher together (see the header). */
export class Batcher {
  /** teacher.score calls made. */
  runs = 0;
  private queue: Job[] = [];
  private busy = false;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly teacher: ServedTeacher,
    private readonly windowMs: number,
    private readonly maxSequences: number,
  ) {}

  submit(reqs: TeacherRequest[], k: number, temperature: number | undefined): Promise<TeacherScore[]> {
    return new Promise((resolve, reject) => {
      this.queue.push({ reqs, k, temperature, resolve, reject });
      if (!this.busy && !this.timer) this.timer = setTimeout(() => void this.drain(), this.windowMs);
    });
  }

  /** Refuse every job not yet given to the teacher (a call in progress finishes). */
  abort(reason: Error): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const queued = this.queue;
    this.queue = [];
    for (const j of queued) j.reject(reason);
  }

  /** Run batches until the queue is empty; jobs queued meanwhile join the next batch at once. */
  private async drain(): Promise<void> {
    this.timer = null;
    this.busy = true;
    try {
      while (this.queue.length) {
        const t = this.queue[0]!.temperature;
        const [batch, rest]: [Job[], Job[]] = [[], []];
        let n = 0;
        for (const j of this.queue) {
          const fits = j.temperature === t && (n === 0 || n + j.reqs.length <= this.maxSequences);
          (fits ? batch : rest).push(j);
          if (fits) n += j.reqs.length;
        }
        this.queue = rest;
        await this.run(batch);
      }
    } finally {
      this.busy = false;
    }
  }

  /** One teacher call for the batch; if it fails, each job alone, so one bad job fails only itself. */
  private async run(batch: Job[]): Promise<void> {
    const k = Math.max(...batch.map((j) => j.k));
    try {
      this.runs++;
      const scores = await this.teacher.score(batch.flatMap((j) => j.reqs), { topK: k, temperature: batch[0]!.temperature });
      let at = 0;
      for (const j of batch) {
        const mine = scores.slice(at, (at += j.reqs.length));
        j.resolve(j.k === k ? mine : mine.map((s) => ({ ...s, topIds: s.topIds?.map((r) => r.slice(0, j.k)), topLogprobs: s.topLogprobs?.map((r) => r.slice(0, j.k)) })));
      }
    } catch (e) {
      if (batch.length === 1 || this.teacher.failure) batch.forEach((j) => j.reject(e));
      else for (const j of batch) await this.run([j]);
    }
  }
}
