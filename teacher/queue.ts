// The only module that imports p-queue: bounded concurrency for teacher requests (teacher/http.ts)
// and worker jobs. Callers get a small interface so a fake or another scheduler can stand in for tests.
// It lives in teacher/ so that teacher/ imports nothing from pipeline/.

import PQueue from 'p-queue';

export interface WorkQueue {
  /** Run `fn` when a slot is free; resolves with its result. */
  add<T>(fn: () => Promise<T>): Promise<T>;
  /** Resolves when nothing is queued or running. */
  onIdle(): Promise<void>;
  readonly pending: number;
  readonly size: number;
}

export function boundedQueue(concurrency: number): WorkQueue {
  if (!Number.isInteger(concurrency) || concurrency < 1) throw new Error(`queue concurrency must be a positive integer, got ${concurrency}`);
  const q = new PQueue({ concurrency });
  return {
    add: <T>(fn: () => Promise<T>) => q.add(fn) as Promise<T>,
    onIdle: () => q.onIdle(),
    get pending() {
      return q.pending;
    },
    get size() {
      return q.size;
    },
  };
}
