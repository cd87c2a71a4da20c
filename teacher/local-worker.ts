// The local teacher's worker thread: loads a model once and scores batches on request, so ONNX
// Runtime's blocking session.run never stalls the main thread (docs/design.md "Runtime facts").
//
// Two engines: an HF model directory runs the student's own Scorer (chunked log-softmax, weights as
// feeds kept in this thread's heap); a .onnx file runs OnnxLm (teacher/onnx-lm.ts). Temperature is
// a per-call value: OnnxLm takes 1/τ as a feed; Scorers are kept per τ (weights are feeds, so an
// extra Scorer costs one small session), at most MAX_SCORERS, least recently used dropped first.
//
// Protocol (structured clone, one request at a time in order): workerData = WorkerInit; the worker
// posts `ready` or `init-error`, then answers each `score` with `result` or `error` (same id);
// `close` releases the sessions and ends the thread. Uncaught failures surface as the Worker's
// 'error'/'exit' events, which teacher/local.ts turns into errors naming the model.

import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import type { Device } from '../engine/runtime/session.ts';
import { weightFeeds } from '../student/model/runner.ts';
import { type ScoreRequest, type ScoreResult, Scorer } from '../student/model/scorer.ts';
import { loadModelDir } from '../student/model/weights.ts';
import { ortClock } from '../engine/runtime/ort-clock.ts';
import { OnnxLm, skipEmpty } from './onnx-lm.ts';

export interface WorkerInit {
  kind: 'dir' | 'onnx';
  path: string;
  topK: number;
  batchTokens?: number;
  threads?: number;
  device?: Device;
  /** OnnxLm only: false forces the two-session path. */
  fuse?: boolean;
  /** Pack the sequences of a call into shared runs (up to batchTokens); default each runs alone (teacher/local.ts). */
  pack?: boolean;
}

export type ToWorker = { type: 'score'; id: number; reqs: ScoreRequest[]; temperature: number; /** report ORT busy intervals (engine/runtime/ort-clock.ts) */ clock?: boolean } | { type: 'close' };

export type FromWorker =
  | { type: 'ready'; vocabSize: number; maxSeqLen: number | null; mode: string }
  | { type: 'init-error'; message: string }
  | { type: 'result'; id: number; results: ScoreResult[]; ortBusy?: Array<[number, number]> }
  | { type: 'error'; id: number; message: string };

interface Engine {
  vocabSize: number;
  maxSeqLen: number | null;
  mode: string;
  score(reqs: ScoreRequest[], temperature: number): Promise<ScoreResult[]>;
  release(): Promise<void>;
}

const MAX_SCORERS = 4;

async function openDir(init: WorkerInit): Promise<Engine> {
  const model = await loadModelDir(init.path);
  const feeds = weightFeeds(model.config, model.weights);
  const scorers = new Map<number, Scorer>();
  const rt = { topK: init.topK, batchTokens: init.batchTokens, threads: init.threads, device: init.device, alone: !init.pack };
  const scorerFor = async (temperature: number): Promise<Scorer> => {
    let s = scorers.get(temperature);
    if (s) scorers.delete(temperature); // re-inserted below: Map order is recency order
    else {
      if (scorers.size >= MAX_SCORERS) {
        const [oldT, old] = scorers.entries().next().value!;
        scorers.delete(oldT);
        await old.release();
      }
      s = await Scorer.create(model.config, () => feeds, { ...rt, temperature });
    }
    scorers.set(temperature, s);
    return s;
  };
  await scorerFor(1); // compile once now, so a broken model fails at open rather than at first use
  return {
    vocabSize: model.config.vocabSize,
    maxSeqLen: model.config.maxPositionEmbeddings,
    mode: 'scorer',
    score: (reqs, temperature) => skipEmpty(reqs, init.topK, async (some) => (await scorerFor(temperature)).score(some)),
    release: async () => {
      for (const s of scorers.values()) await s.release();
    },
  };
}

async function openOnnx(init: WorkerInit): Promise<Engine> {
  const lm = await OnnxLm.open(init.path, { topK: init.topK, batchTokens: init.batchTokens, threads: init.threads, device: init.device, fuse: init.fuse, alone: !init.pack });
  return { vocabSize: lm.vocabSize, maxSeqLen: null, mode: lm.mode, score: (reqs, t) => lm.score(reqs, t), release: () => lm.release() };
}

async function serve(init: WorkerInit): Promise<void> {
  const port = parentPort!;
  const post = (m: FromWorker) => port.postMessage(m);
  let engine: Engine;
  try {
    engine = await (init.kind === 'dir' ? openDir(init) : openOnnx(init));
  } catch (e) {
    post({ type: 'init-error', message: (e as Error).message });
    return;
  }
  post({ type: 'ready', vocabSize: engine.vocabSize, maxSeqLen: engine.maxSeqLen, mode: engine.mode });
  // Requests are handled strictly one after another: the main thread already batches.
  let chain = Promise.resolve();
  port.on('message', (m: ToWorker) => {
    chain = chain.then(async () => {
      if (m.type === 'close') {
        await engine.release();
        port.close();
        return;
      }
      try {
        ortClock.enable(!!m.clock);
        const results = await engine.score(m.reqs, m.temperature);
        post({ type: 'result', id: m.id, results, ...(m.clock ? { ortBusy: ortClock.take() } : {}) });
      } catch (e) {
        post({ type: 'error', id: m.id, message: (e as Error).message });
      }
    });
  });
}

if (!isMainThread && parentPort) await serve(workerData as WorkerInit);
