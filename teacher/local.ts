// The local teacher: a model on this machine, scored in a worker thread (teacher/local-worker.ts),
// behind the Teacher interface. `path` is an HF model directory (config.json + safetensors, scored
// by the student's Scorer) or an ONNX causal-LM file (teacher/onnx-lm.ts; tokenizer files beside it
// or in `tokenizer`).
//
// Contracts:
// - Requests are checked here (start, integer ids inside the vocabulary, length) before the worker
//   sees them, and every score passes validateScore before it is returned.
// - Worker failures are errors naming the model path: a score that fails, a worker that crashes or
//   exits, a model that does not load. A dead worker fails pending and later calls at once; nothing
//   waits on it. The worker is unref'd while idle, so an open teacher never keeps a process alive.
// - identity.modelId = 'local:' + sha256 over config.json and, per weight file, its name, size and
//   64 evenly spaced 4 KiB blocks: cheap (≤ 256 KiB read per file) and stable across copies and
//   moves. Two checkpoints of one architecture differ in nearly every block, so they get different
//   ids; a change confined to bytes between the sampled blocks would not (accepted: not a realistic
//   training outcome).
// - A sequence's score does not depend on the other sequences of a call, nor on how calls were
//   grouped (the teacher server's batches, the score cache's misses): each sequence runs alone in
//   ONNX Runtime, shape [1, its length] (docs/reliability.md R18). `pack: true` trades that for
//   fewer, larger runs: scores may then differ in the last bit with the neighbours.

import { createHash } from 'node:crypto';
import { closeSync, openSync, readdirSync, readFileSync, readSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { loadTokenizer } from '../data/tokenizer/hf.ts';
import type { Tokenizer } from '../data/tokenizer/types.ts';
import type { Device } from '../engine/runtime/session.ts';
import type { FromWorker, ToWorker, WorkerInit } from './local-worker.ts';
import { ortClock } from '../engine/runtime/ort-clock.ts';
import { type Teacher, type TeacherIdentity, type TeacherRequest, type TeacherScore, validateScore } from './types.ts';

export interface LocalTeacherOptions {
  /** Top-k alternatives computed per scored position (the most any call may ask for); default 0. */
  topK?: number;
  /** Default sampling temperature τ: log-probs are of softmax(logits / τ); default 1. */
  temperature?: number;
  /** ONNX Runtime intra-op threads of the worker's sessions. */
  threads?: number;
  device?: Device;
  /** Max tokens (rows × padded length) per ONNX Runtime run; used only with pack. */
  batchTokens?: number;
  /** Pack several sequences per run (faster; scores then depend on their neighbours in the last bit). Default false. */
  pack?: boolean;
  /** Tokenizer directory; default the model directory, or the .onnx file's directory. */
  tokenizer?: string;
  /** ONNX files only: false runs the LM and the log-prob graph as two sessions (see onnx-lm.ts). */
  fuse?: boolean;
}

export interface LocalScoreOptions {
  topK?: number;
  /** This call's temperature; default the teacher's. */
  temperature?: number;
}

type Pending = { resolve: (m: FromWorker) => void; reject: (e: Error) => void };

export class LocalTeacher implements Teacher {
  private pending = new Map<number, Pending>();
  private nextId = 1;
  private dead: Error | null = null;
  private closing = false;

  private constructor(
    readonly path: string,
    readonly identity: TeacherIdentity,
    readonly tokenizer: Tokenizer,
    /** Longest sequence the model takes (max_position_embeddings), or null when the model does not say. */
    readonly maxSeqLen: number | null,
    readonly topK: number,
    readonly temperature: number,
    /** How scores are computed: 'scorer' (HF directory), 'fused' or 'two-session' (ONNX file). */
    readonly mode: string,
    private readonly worker: Worker,
  ) {}

  static async open(path: string, opts: LocalTeacherOptions = {}): Promise<LocalTeacher> {
    const fail = (detail: string) => new Error(`local teacher ${path}: ${detail}`);
    const kind = path.endsWith('.onnx') ? 'onnx' : 'dir';
    const topK = opts.topK ?? 0;
    const temperature = opts.temperature ?? 1;
    if (!Number.isInteger(topK) || topK < 0) throw fail(`topK must be an integer >= 0, got ${topK}`);
    if (!(temperature > 0 && Number.isFinite(temperature))) throw fail(`temperature must be a finite number > 0, got ${temperature}`);
    const init: WorkerInit = { kind, path, topK, batchTokens: opts.batchTokens, threads: opts.threads, device: opts.device, fuse: opts.fuse, pack: opts.pack };
    const tokDir = opts.tokenizer ?? (kind === 'onnx' ? dirname(path) : path);
    const tokenizer = loadTokenizer(tokDir).catch((e: Error) => {
      throw fail(`cannot load a tokenizer from ${tokDir} (${e.message})${kind === 'onnx' ? '; pass the tokenizer directory' : ''}`);
    });
    const worker = spawnWorker(init);
    let loaded = false;
    const ready = new Promise<Extract<FromWorker, { type: 'ready' }>>((resolve, reject) => {
      const onExit = (code: number) => reject(fail(`worker exited (code ${code}) while loading the model`));
      worker.once('error', (e) => reject(fail(`worker crashed while loading the model: ${e.message}`)));
      worker.once('exit', onExit);
      worker.once('message', (m: FromWorker) => {
        worker.off('exit', onExit);
        if (m.type === 'ready') {
          loaded = true;
          resolve(m);
        } else reject(fail(m.type === 'init-error' ? m.message : `unexpected first message ${m.type}`));
      });
    });
    try {
      // Both run at once; when both fail, the model's error is the one worth reading.
      const [rs, ts] = await Promise.allSettled([ready, tokenizer]);
      if (rs.status === 'rejected') throw rs.reason;
      if (ts.status === 'rejected') throw ts.reason;
      const [r, tok] = [rs.value, ts.value];
      const identity = { modelId: modelIdOf(path, kind), tokenizerFingerprint: tok.fingerprint(), vocabSize: r.vocabSize };
      return new LocalTeacher(path, identity, tok, r.maxSeqLen, topK, temperature, r.mode, worker).listen();
    } catch (e) {
      // The worker has settled (ready, init-error or gone): a loaded one is closed politely, since
      // terminating it inside ORT's release would abort the process; any other is idle or gone.
      if (loaded) {
        const exited = new Promise((resolve) => worker.once('exit', resolve));
        worker.postMessage({ type: 'close' } satisfies ToWorker);
        await exited;
      } else await worker.terminate();
      throw e instanceof Error && e.message.startsWith('local teacher') ? e : fail((e as Error).message);
    }
  }

  /** The error that stopped the worker, or null while it is alive. */
  get failure(): Error | null {
    return this.dead;
  }

  async score(reqs: readonly TeacherRequest[], opts: LocalScoreOptions = {}): Promise<TeacherScore[]> {
    const k = opts.topK ?? 0;
    const temperature = opts.temperature ?? this.temperature;
    if (!Number.isInteger(k) || k < 0 || k > this.topK) throw this.error(`top-${k} asked, but the teacher was opened with topK ${this.topK}`);
    if (!(temperature > 0 && Number.isFinite(temperature))) throw this.error(`temperature must be a finite number > 0, got ${temperature}`);
    reqs.forEach((r, i) => this.check(r, i));
    if (reqs.length === 0) return [];
    const m = await this.call({ type: 'score', id: this.nextId++, reqs: reqs.map((r) => ({ ids: [...r.ids], start: r.start })), temperature, clock: ortClock.enabled });
    if (m.type === 'result' && m.ortBusy) ortClock.merge(m.ortBusy);
    if (m.type !== 'result' || m.results.length !== reqs.length) throw this.error(`worker answered ${reqs.length} requests with ${m.type === 'result' ? m.results.length : m.type}`);
    return m.results.map((res, i) => {
      const s: TeacherScore = { logprobs: res.logprobs };
      if (k) [s.topIds, s.topLogprobs] = [res.topIds!.map((row) => row.slice(0, k)), res.topLogprobs!.map((row) => row.slice(0, k))];
      validateScore(reqs[i]!, s, i, k);
      return s;
    });
  }

  async close(): Promise<void> {
    if (this.dead || this.closing) return;
    this.closing = true;
    const exited = new Promise<void>((resolve) => this.worker.once('exit', () => resolve()));
    this.worker.ref();
    // Queued behind any scoring in flight. Never worker.terminate() here: terminating a worker
    // inside an onnxruntime-node call aborts the whole process (measured with ORT 1.30).
    this.worker.postMessage({ type: 'close' } satisfies ToWorker);
    await exited;
  }

  private check(r: TeacherRequest, i: number): void {
    const n = r.ids.length;
    if (!Number.isInteger(r.start) || r.start < 1 || r.start > n) throw this.error(`request ${i}: start ${r.start} outside 1..${n}`);
    const bad = r.ids.findIndex((t) => !Number.isInteger(t) || t < 0 || t >= this.identity.vocabSize);
    if (bad >= 0) throw this.error(`request ${i}: token id ${r.ids[bad]} at position ${bad} is outside the vocabulary 0..${this.identity.vocabSize - 1}`);
    if (this.maxSeqLen !== null && n > this.maxSeqLen) throw this.error(`request ${i}: ${n} tokens, more than the model's ${this.maxSeqLen}`);
  }

  private error(detail: string): Error {
    return new Error(`local teacher ${this.path}: ${detail}`);
  }

  private call(msg: Extract<ToWorker, { type: 'score' }>): Promise<FromWorker> {
    if (this.dead) return Promise.reject(this.dead);
    if (this.closing) return Promise.reject(this.error('score() after close()'));
    return new Promise<FromWorker>((resolve, reject) => {
      this.pending.set(msg.id, { resolve, reject });
      this.worker.ref();
      this.worker.postMessage(msg);
    }).then((m) => {
      if (m.type === 'error') throw this.error(m.message);
      return m;
    });
  }

  private settle(id: number): Pending | undefined {
    const p = this.pending.get(id);
    this.pending.delete(id);
    // Unref only a healthy idle worker: after a reported crash it may still be inside ORT, and a
    // process that exits under a worker's ORT call aborts.
    if (this.pending.size === 0 && !this.closing && !this.dead) this.worker.unref();
    return p;
  }

  private listen(): this {
    this.worker.on('message', (m: FromWorker) => {
      if (m.type === 'result' || m.type === 'error') this.settle(m.id)?.resolve(m);
    });
    const die = (e: Error) => {
      this.dead ??= e;
      for (const id of [...this.pending.keys()]) this.settle(id)!.reject(this.dead);
    };
    this.worker.on('error', (e) => die(this.error(`worker crashed: ${e.message}`)));
    this.worker.on('messageerror', (e) => die(this.error(`worker message could not be read: ${e.message}`)));
    this.worker.on('exit', (code) => die(this.error(this.closing ? 'closed' : `worker exited unexpectedly (code ${code})`)));
    this.worker.unref();
    return this;
  }
}

/**
 * The worker runs TypeScript: it registers tsx's loader itself (tsx/esm/api), then imports
 * local-worker.ts. Under Node 20 neither an inherited `--import tsx` nor `execArgv: ['--import',
 * 'tsx']` makes a Worker's entry .ts file loadable; this works under `node --import tsx` and bin/opd.
 */
function spawnWorker(init: WorkerInit): Worker {
  const api = import.meta.resolve('tsx/esm/api');
  const entry = new URL('./local-worker.ts', import.meta.url).href;
  const code = `import(${JSON.stringify(api)}).then((m) => { m.register(); return import(${JSON.stringify(entry)}); });`;
  return new Worker(code, { eval: true, workerData: init, execArgv: [], name: `opd teacher ${basename(init.path)}` });
}

/** 'local:' + sha256 of the model's defining files, sampled (see the file header). */
export function modelIdOf(path: string, kind: 'dir' | 'onnx'): string {
  const h = createHash('sha256');
  let files: string[];
  if (kind === 'onnx') {
    const dir = dirname(path);
    const stem = basename(path);
    files = [path, ...readdirSync(dir).filter((f) => f !== stem && f.startsWith(stem)).sort().map((f) => join(dir, f))]; // model.onnx_data etc.
  } else {
    h.update(readFileSync(join(path, 'config.json')));
    files = readdirSync(path).filter((f) => f.endsWith('.safetensors') || f.endsWith('.safetensors.index.json')).sort().map((f) => join(path, f));
  }
  for (const f of files) sampleFile(h, f);
  return `local:${h.digest('hex')}`;
}

function sampleFile(h: ReturnType<typeof createHash>, file: string, blocks = 64, block = 4096): void {
  const size = statSync(file).size;
  h.update(`${basename(file)}\0${size}\0`);
  const fd = openSync(file, 'r');
  try {
    const buf = Buffer.alloc(block);
    const step = size <= blocks * block ? block : Math.floor((size - block) / (blocks - 1));
    for (let at = 0; at < size; at += step) {
      const n = readSync(fd, buf, 0, block, at);
      h.update(buf.subarray(0, n));
    }
  } finally {
    closeSync(fd);
  }
}
