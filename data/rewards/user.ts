// User reward functions loaded from a JS/TS module: its default export, or a named one, called as
// (prompt, completion, record) => number | Promise<number>.
//
// Every failure names the module path and what is wrong: file missing, import failed, export
// missing (listing what the module does export), export not a function; at call time a throw or a
// result that is not a finite number raises an error naming the record id — never a silent 0. A
// NaN/±Inf result is a NonFiniteRewardError (the loop skips the step, R7); anything else stops.
// .ts modules are loaded through tsx's loader (registered in the worker).
//
// Time limit (docs/reliability.md "reward time limit"): the module runs in its own worker thread,
// so a call that busy-loops cannot freeze the job (the main thread keeps its timers and signal
// handlers). Each call has `timeoutMs` from the moment the worker starts it; a call that has not
// returned by then is an error naming the reward, the record id and the limit, and the worker is
// terminated (a later call starts a fresh one). Calls reach the worker in order and may overlap when
// the function is async. Arguments and results cross by structured clone: a module sees plain
// copies of the record, and its own module state lives in the worker, not in the caller's thread.
// The worker is unref'd while no call is pending, so a loaded reward never keeps a process alive.

import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { TaskRecord } from '../tasks/types.ts';
import { NonFiniteRewardError, type RewardFn } from './types.ts';

/** Default per-call time limit of a reward module (ms); the run config's rollout.rewardTimeoutMs sets it. */
export const DEFAULT_REWARD_TIMEOUT_MS = 30_000;

/** A short human description of any value, for error messages. */
export function describeValue(v: unknown): string {
  if (typeof v === 'number') return Number.isNaN(v) ? 'NaN' : String(v);
  if (typeof v === 'string') return `a string ${JSON.stringify(v.length > 40 ? v.slice(0, 40) + '…' : v)}`;
  if (v === null || v === undefined) return String(v);
  if (typeof v === 'function') return 'a function';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'object') return v instanceof Promise ? 'a Promise' : 'an object';
  return `a ${typeof v} (${String(v)})`;
}

export interface LoadUserRewardOptions {
  /** The export to use; default "default". */
  exportName?: string;
  /** Directory a relative path resolves against; default the current directory. */
  baseDir?: string;
  /** Per-call time limit in ms (> 0); default 30000. */
  timeoutMs?: number;
}

type FromWorker =
  | { type: 'ready' }
  | { type: 'init-error'; message: string }
  | { type: 'started'; id: number }
  | { type: 'result'; id: number; value: number }
  | { type: 'bad'; id: number; value: string }
  | { type: 'threw'; id: number; message: string };

/** The worker's code (CommonJS, evaluated): import the module, check the export, answer calls. */
const WORKER_CODE = `
const { parentPort, workerData } = require('node:worker_threads');
const describeValue = ${describeValue.toString()};
(async () => {
  const { href, exportName, tsx } = workerData;
  let mod;
  try {
    if (tsx) {
      // tsx's ESM and CommonJS hooks in this thread (a .ts file in a CommonJS package needs the latter)
      (await import(tsx.esm)).register();
      (await import(tsx.cjs)).register();
    }
    mod = await import(href);
  } catch (e) {
    parentPort.postMessage({ type: 'init-error', message: 'failed to import: ' + (e && e.message !== undefined ? e.message : String(e)) });
    return;
  }
  // a .ts file in a CommonJS package arrives compiled to CommonJS: its exports sit under "default"
  const inner = mod.default;
  if (inner && typeof inner === 'object' && inner.__esModule && typeof mod[exportName] !== 'function') mod = inner;
  if (!(exportName in mod)) {
    const names = Object.keys(mod).join(', ') || 'nothing';
    parentPort.postMessage({ type: 'init-error', message: 'no export named "' + exportName + '" (it exports: ' + names + ')' });
    return;
  }
  const fn = mod[exportName];
  if (typeof fn !== 'function') {
    parentPort.postMessage({ type: 'init-error', message: 'export "' + exportName + '" is ' + describeValue(fn) + ', not a function (prompt, completion, record) => number' });
    return;
  }
  parentPort.on('message', async ({ id, args }) => {
    parentPort.postMessage({ type: 'started', id });
    let v;
    try {
      v = await fn(...args);
    } catch (e) {
      parentPort.postMessage({ type: 'threw', id, message: e && e.message !== undefined ? e.message : String(e) });
      return;
    }
    if (typeof v === 'number') parentPort.postMessage({ type: 'result', id, value: v });
    else parentPort.postMessage({ type: 'bad', id, value: describeValue(v) });
  });
  parentPort.postMessage({ type: 'ready' });
})();
`;

interface Pending {
  record: string;
  resolve(v: number): void;
  reject(e: Error): void;
  timer?: NodeJS.Timeout;
}

/** One module export behind a worker thread, with a per-call time limit. */
class RewardWorker {
  private worker: Worker | null = null;
  private ready: Promise<void> | null = null;
  private readonly pending = new Map<number, Pending>();
  private nextId = 0;

  constructor(
    private readonly path: string,
    private readonly href: string,
    private readonly exportName: string,
    private readonly timeoutMs: number,
    private readonly tsx: { esm: string; cjs: string } | null,
  ) {}

  private get where(): string {
    return `reward module ${this.path} (export "${this.exportName}")`;
  }

  /** The running worker, started (and its module imported and checked) on first use. */
  start(): Promise<void> {
    if (this.ready) return this.ready;
    const w = new Worker(WORKER_CODE, { eval: true, execArgv: [], workerData: { href: this.href, exportName: this.exportName, tsx: this.tsx }, name: `opd reward ${this.path}` });
    this.worker = w;
    this.ready = new Promise<void>((resolveReady, rejectReady) => {
      let isReady = false;
      const lost = (why: string) => {
        if (this.worker !== w) return; // already replaced (a time-out terminated it)
        this.worker = null;
        this.ready = null;
        const e = new Error(`${this.where}: ${why}`);
        if (!isReady) rejectReady(new Error(`reward module ${this.path}: ${why}`));
        this.failAll(e);
      };
      w.on('message', (m: FromWorker) => {
        if (m.type === 'ready') {
          isReady = true;
          this.idle();
          return resolveReady();
        }
        if (m.type === 'init-error') {
          this.worker = null;
          this.ready = null;
          void w.terminate();
          const hint = /^failed to import/.test(m.message) && this.tsx === null && /\.[cm]?ts$/.test(this.href) ? ' (a .ts module needs a TypeScript loader such as tsx)' : '';
          return rejectReady(new Error(`reward module ${this.path}: ${m.message}${hint}`));
        }
        const p = this.pending.get(m.id);
        if (!p) return;
        if (m.type === 'started') {
          p.timer = setTimeout(() => this.timedOut(m.id), this.timeoutMs);
          return;
        }
        this.settle(m.id);
        if (m.type === 'result') {
          if (Number.isFinite(m.value)) p.resolve(m.value);
          else p.reject(new NonFiniteRewardError(`${this.where} returned ${describeValue(m.value)} for record ${p.record}; a reward must be a finite number`));
        } else if (m.type === 'bad') p.reject(new Error(`${this.where} returned ${m.value} for record ${p.record}; a reward must be a finite number`));
        else p.reject(new Error(`${this.where} threw on record ${p.record}: ${m.message}`));
      });
      w.on('error', (e) => lost(`the worker failed: ${e.message}`));
      w.on('exit', (code) => lost(`the worker exited (code ${code})`));
    });
    this.ready.catch(() => {}); // observed by the caller; this only keeps a restart failure from being unhandled
    return this.ready;
  }

  async call(prompt: string, completion: string, record: TaskRecord): Promise<number> {
    await this.start();
    const w = this.worker!;
    const id = this.nextId++;
    return new Promise<number>((resolveCall, rejectCall) => {
      this.pending.set(id, { record: record.id, resolve: resolveCall, reject: rejectCall });
      w.ref(); // a pending call keeps the process alive until it settles or times out
      try {
        w.postMessage({ id, args: [prompt, completion, record] });
      } catch (e) {
        this.settle(id);
        rejectCall(new Error(`${this.where}: cannot pass record ${record.id} to the worker: ${(e as Error).message}`));
      }
    });
  }

  private settle(id: number): void {
    const p = this.pending.get(id);
    if (p?.timer) clearTimeout(p.timer);
    this.pending.delete(id);
    this.idle();
  }

  private idle(): void {
    if (this.pending.size === 0) this.worker?.unref();
  }

  private timedOut(id: number): void {
    const p = this.pending.get(id);
    if (!p) return;
    const w = this.worker;
    this.worker = null;
    this.ready = null;
    this.settle(id);
    const ms = this.timeoutMs;
    p.reject(new Error(`${this.where} did not return within ${ms} ms for record ${p.record} (the reward time limit, rollout.rewardTimeoutMs = ${ms}); it was stopped. Make the reward faster or raise the limit`));
    this.failAll(new Error(`${this.where}: stopped after another call exceeded the ${ms} ms time limit`));
    void w?.terminate();
  }

  private failAll(e: Error): void {
    for (const [id, p] of [...this.pending]) {
      this.settle(id);
      p.reject(new Error(`${e.message} (record ${p.record})`));
    }
  }
}

/** Load and check a user reward; the returned function validates every result. */
export async function loadUserReward(path: string, opts: LoadUserRewardOptions = {}): Promise<RewardFn> {
  const name = opts.exportName ?? 'default';
  const timeoutMs = opts.timeoutMs ?? DEFAULT_REWARD_TIMEOUT_MS;
  if (!(timeoutMs > 0 && Number.isFinite(timeoutMs))) throw new Error(`reward module ${path}: the time limit must be a finite number of ms > 0, got ${timeoutMs}`);
  const abs = resolve(opts.baseDir ?? process.cwd(), path);
  if (!existsSync(abs)) throw new Error(`reward module ${path}: file not found (resolved to ${abs})`);
  const tsx = /\.[cm]?ts$/.test(abs) ? { esm: import.meta.resolve('tsx/esm/api'), cjs: import.meta.resolve('tsx/cjs/api') } : null;
  const w = new RewardWorker(path, pathToFileURL(abs).href, name, timeoutMs, tsx);
  await w.start(); // import and export checks now: a bad module fails at start-up, not mid-run
  return (prompt, completion, record) => w.call(prompt, completion, record);
}
