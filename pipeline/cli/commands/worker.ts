// `opd worker --queue URL [--roles rollout,teacher:ID] [--concurrency N]`: a queue worker
// (pipeline/queue/worker.ts) until SIGTERM/SIGINT, which finishes the jobs in hand and exits.
// Also the queue flags `opd run` / `opd resume` take to become a controller (docs/deploy.md).

import { num, str } from '../args.ts';
import { type Command, UsageError, type Values } from '../command.ts';
import type { QueueRunOptions } from '../../queue/controller.ts';

export const QUEUE_USAGE = '[--queue redis://HOST:PORT [--weights-dir DIR | --weights-listen HOST:PORT [--weights-url URL]]]';

export const QUEUE_OPTIONS = {
  queue: { type: 'string' },
  'weights-dir': { type: 'string' },
  'weights-listen': { type: 'string' },
  'weights-url': { type: 'string' },
} as const;

/** The controller's queue options from `opd run` flags; undefined without --queue (in-process). */
export function queueOptions(v: Values): QueueRunOptions | undefined {
  const url = str(v, 'queue', null);
  const dir = str(v, 'weights-dir', null);
  const listen = str(v, 'weights-listen', null);
  const advertise = str(v, 'weights-url', null);
  if (!url) {
    if (dir || listen || advertise) throw new UsageError('--weights-dir / --weights-listen / --weights-url need --queue');
    return undefined;
  }
  if (dir && (listen || advertise)) throw new UsageError('give --weights-dir (a directory every worker reads) or --weights-listen (the controller serves them), not both');
  const m = listen ? /^(.*):(\d+)$/.exec(listen) : null;
  if (listen && !m) throw new UsageError(`--weights-listen ${listen}: give HOST:PORT, e.g. 0.0.0.0:8910`);
  return { url, publish: dir ? { dir } : { ...(m ? { host: m[1], port: Number(m[2]) } : {}), ...(advertise ? { advertise } : {}) } };
}

export const worker: Command = {
  name: 'worker',
  summary: 'run rollout and teacher jobs of queued runs (opd run --queue) until stopped',
  usage: 'worker --queue redis://HOST:PORT [--roles rollout,teacher:ID] [--concurrency N]',
  options: { queue: { type: 'string' }, roles: { type: 'string' }, concurrency: { type: 'string' } },
  async run({ values }) {
    const url = str(values, 'queue');
    const roles = str(values, 'roles', null)?.split(',').map((r) => r.trim()).filter(Boolean);
    const concurrency = num(values, 'concurrency', 1, { int: true, min: 1 });
    const { startWorker } = await import('../../queue/worker.ts');
    const w = await startWorker({ url, roles, concurrency, log: (m) => console.error(m) });
    console.error('ready'); // tests and scripts wait for this line
    const sig = await new Promise<NodeJS.Signals>((ok) => {
      for (const s of ['SIGTERM', 'SIGINT'] as const) process.once(s, () => ok(s));
    });
    console.error(`${sig}: finishing the jobs in hand`);
    await w.close();
    return 0;
  },
};
