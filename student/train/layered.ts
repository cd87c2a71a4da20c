// The layered train step: the student's forward, backward and AdamW run as a chain of small
// sessions (layered-graphs.ts) over one host copy of the state, so full fine-tuning needs about
// the 16 bytes per parameter of fp32 AdamW (weights, gradients, two moments) plus activations:
//
//   forward   h0 = E[ids] -> layer.fwd × L (keeping each layer's input) -> head.fwd -> loss
//   backward  head.bwd per vocab chunk -> norm.bwd -> layer.bwd × L (recomputing the layer) ->
//             rows of dh0 added into dE
//   update    ChunkedAdamW: ‖g‖² over all gradients, then AdamW chunk by chunk, in place
//
// Versus the fused step (engine/train/trainer.ts): no second copy of the state, no gradient of a
// whole-vocabulary matrix per chunk, one compiled layer for all layers (start-up in seconds), at
// the price of recomputing each layer's forward in its backward (≈ +33 % FLOPs). Same loss,
// same AdamW formulas and guard; results agree with the fused step to float rounding (test).
//
// Micro-batches: the first writes the gradient buffers, later ones add into them. The trainer
// adopts the weight arrays it is given when `adopt` is set (no copy) and updates them in place.

import { type Batch, type ParamValues, type StepResult, combineMetrics } from '../../engine/train/trainer.ts';
import type { ParamSpec } from '../../engine/train/graph.ts';
import type { AdamWConfig } from '../../engine/optim/adamw.ts';
import { ChunkedAdamW, type FloatArray } from '../../engine/optim/chunked.ts';
import { compile } from '../../engine/exec.ts';
import { type HostTensor, addInto, hostTensor } from '../../engine/runtime/host.ts';
import type { RuntimeOptions, Session } from '../../engine/runtime/session.ts';
import { type ModelConfig, decays, tensorShapes } from '../model/config.ts';
import { type Combine, HostTrainer, LogsumexpFold, TopkFold } from './host-trainer.ts';
import { type FullDObjective, fullBackwardChunkGraph, fullForwardChunkGraph, fullLossGraph, teacherForwardChunkGraph } from './layered-full.ts';
import type { FullDivergenceName } from './divergences.ts';
import { EMBED, type LogprobObjective, NORM, embedGraph, headBackwardGraph, headForwardChunkGraph, headNormGraph, layerBackwardGraph, layerForwardGraph, layerSuffixes, lossGraph, normBackwardGraph } from './layered-graphs.ts';

export interface LayeredOptions {
  dtype?: 'float32' | 'float64';
  weightDecay?: number;
  adamw?: Partial<AdamWConfig>;
  /** Vocabulary rows per head chunk; default chosen per batch so [tokens × rows] ≤ 1M floats (1024..32768 rows). */
  vocabChunk?: number;
  /** Elements per optimizer graph run (default 1M). */
  optimizerChunk?: number;
  /** Take ownership of the initial weight arrays instead of copying them. */
  adopt?: boolean;
  /** k of a top-k divergence in the objective: the head graphs also compute log π_θ at teacher_top_ids (layered-graphs.ts). */
  topK?: number;
  /**
   * A full-vocabulary divergence (layered-full.ts): its per-chunk graphs run beside the head's and
   * `objective` (taking the per-token divergence) replaces the create() objective's loss graph.
   */
  full?: { name: FullDivergenceName; beta: number; objective: FullDObjective };
  runtime?: RuntimeOptions;
}

/** Floats per [tokens × rows] head buffer when the chunk size is automatic (4 MB in float32). */
const HEAD_CHUNK_ELEMENTS = 1024 * 1024;

const MODEL_FEEDS = new Set(['input_ids', 'attention_mask', 'position_ids', 'inv_temperature']);

interface Sessions {
  embed: Session;
  layerFwd: Session;
  layerBwd: Session;
  headNorm: Session;
  headFwd: Session;
  headBwd: Session;
  normBwd: Session;
  loss: Session;
  /** A full-vocabulary divergence's chunk sessions (layered-full.ts). */
  full?: { teacherFwd: Session; fwd: Session; bwd: Session };
}

const TEACHER_FEEDS = ['teacher_hidden', 'teacher_head', 'teacher_inv_temperature'] as const;

export class LayeredTrainer extends HostTrainer {
  private readonly scratch = new Map<string, FloatArray>();
  /** Seconds of the last step by phase (forward, head / layer backward, optimizer), summed over micro-batches. */
  timings: Record<string, number> = {};
  private lapAt = 0;
  /** [HF suffix, shape] of one layer's weights, and each weight's shape by name. */
  private readonly suffixes: Array<[string, number[]]>;
  private readonly shapes: Map<string, readonly number[]>;

  private constructor(
    private readonly c: ModelConfig,
    paramSpecs: readonly ParamSpec[],
    w: Map<string, FloatArray>,
    private readonly s: Sessions,
    private readonly opt: ChunkedAdamW,
    private readonly loss: { metrics: string[]; combine: Combine },
    dtype: 'float32' | 'float64',
    /** Fixed head chunk rows, or null: chosen per batch so tokens × rows ≤ HEAD_CHUNK_ELEMENTS. */
    private readonly vocabChunk: number | null,
    private readonly topK: number | null,
  ) {
    super(paramSpecs, w, dtype);
    this.suffixes = layerSuffixes(c);
    this.shapes = new Map(paramSpecs.map((p) => [p.name, p.shape]));
  }

  static async create(c: ModelConfig, objective: LogprobObjective, init: ParamValues, o: LayeredOptions = {}): Promise<LayeredTrainer> {
    const dtype = o.dtype ?? 'float32';
    const rt = o.runtime ?? {};
    const specs: ParamSpec[] = tensorShapes(c).map(([name, shape]) => ({ name, shape, dtype, weightDecay: decays(name) ? (o.weightDecay ?? 0) : 0 }));
    const w = new Map<string, FloatArray>();
    for (const p of specs) {
      const data = init[p.name];
      if (!data) throw new Error(`LayeredTrainer: no initial value for parameter "${p.name}" ${JSON.stringify(p.shape)}`);
      if ((dtype === 'float64') !== data instanceof Float64Array) throw new Error(`LayeredTrainer: parameter "${p.name}" is a ${data.constructor.name}, the step computes in ${dtype}`);
      w.set(p.name, o.adopt ? data : data.slice());
    }
    const lg = o.full ? fullLossGraph(o.full.objective, dtype) : lossGraph(objective, dtype, o.topK);
    const [embed, layerFwd, layerBwd, headNorm, headFwd, headBwd, normBwd, loss, opt] = await Promise.all([
      compile(embedGraph(c, dtype), rt),
      compile(layerForwardGraph(c, dtype), rt),
      compile(layerBackwardGraph(c, dtype), rt),
      compile(headNormGraph(c, dtype), rt),
      compile(headForwardChunkGraph(c, dtype, undefined, o.topK), rt),
      compile(headBackwardGraph(c, dtype, undefined, o.topK), rt),
      compile(normBackwardGraph(c, dtype), rt),
      compile(lg.graph, rt),
      ChunkedAdamW.create(o.adamw, { ...rt, dtype, chunk: o.optimizerChunk }),
    ]);
    const full = o.full
      ? { teacherFwd: await compile(teacherForwardChunkGraph(dtype), rt), fwd: await compile(fullForwardChunkGraph(c, dtype, o.full.name, o.full.beta), rt), bwd: await compile(fullBackwardChunkGraph(c, dtype, o.full.name, o.full.beta), rt) }
      : undefined;
    const sessions: Sessions = { embed, layerFwd, layerBwd, headNorm, headFwd, headBwd, normBwd, loss, full };
    return new LayeredTrainer(c, specs, w, sessions, opt, lg, dtype, o.vocabChunk ?? null, o.topK ?? null);
  }

  async step(batch: Batch | readonly Batch[], lr: number): Promise<StepResult> {
    const batches = Array.isArray(batch) ? batch : [batch as Batch];
    if (batches.length === 0) throw new Error('LayeredTrainer.step: no micro-batches');
    this.timings = {};
    this.lapAt = performance.now();
    const per: Array<Record<string, number>> = [];
    for (let i = 0; i < batches.length; i++) per.push(await this.backward(batches[i]!, i === 0));
    const combined = combineMetrics(per, this.loss.combine);
    const slots = this.slots();
    const update = await this.opt.step(slots, lr, this.t + 1, await this.opt.gradNormSq(slots), Number.isFinite(combined.loss!));
    this.lap('optimizer_s');
    return this.finish(combined, this.loss.metrics, update);
  }

  async release(): Promise<void> {
    const { full, ...rest } = this.s;
    await Promise.all([...Object.values(rest).map((x: Session) => x.release()), ...Object.values(full ?? {}).map((x: Session) => x.release()), this.opt.release()]);
  }

  /** Forward and backward of one micro-batch into the gradient buffers; returns its loss and metrics. */
  private async backward(batch: Batch, first: boolean): Promise<Record<string, number>> {
    const c = this.c;
    const model: Batch = {};
    const lossFeeds: Batch = {};
    for (const [k, v] of Object.entries(batch)) (MODEL_FEEDS.has(k) ? model : lossFeeds)[k] = v;
    const { input_ids: ids, attention_mask: mask, position_ids: positions, inv_temperature: invTemp } = model;
    if (!ids || !mask || !positions || !invTemp) throw new Error('LayeredTrainer: a batch needs input_ids, attention_mask, position_ids and inv_temperature');
    const seq = { attention_mask: mask, position_ids: positions };

    // forward, keeping each layer's input
    const hs: HostTensor[] = [(await this.s.embed.run({ [EMBED]: this.view(EMBED), input_ids: ids })).h!];
    for (let i = 0; i < c.numLayers; i++) hs.push((await this.s.layerFwd.run({ ...this.layerFeeds(i), h: hs[i]!, ...seq }))['h.next']!);
    const headName = c.tieWordEmbeddings ? EMBED : 'lm_head.weight';
    const hn = (await this.s.headNorm.run({ h: hs[c.numLayers]!, [NORM]: this.view(NORM) })).hn!;
    const fold = new LogsumexpFold(ids.dims as [number, number]);
    // a top-k divergence: z at the teacher's ids, summed over chunks (each id lies in one), then − lse
    const top = this.topK ? new TopkFold(this.topK, lossFeeds.teacher_top_ids) : null;
    const topFeed: Batch = top ? { teacher_top_ids: lossFeeds.teacher_top_ids! } : {};
    for (const k of this.headChunks(headName, ids.data.length)) {
      const r = await this.s.headFwd.run({ hn, head_chunk: k.w, input_ids: ids, inv_temperature: invTemp, chunk_start: k.start, ...topFeed });
      fold.add(r);
      top?.add(r);
    }
    const head = fold.finish(this.dtype);
    const topAt: Batch = top ? { student_top_ids: top.ownIds(ids.dims), top_at: top.finish(head.lse, this.dtype) } : {};
    // a full-vocabulary divergence: the teacher's lse (pass 1), then D and ā per position (pass 2), chunk by chunk
    const full = this.s.full ? await this.fullForward(headName, hn, head.lse, invTemp, ids, lossFeeds) : null;
    const out = await this.s.loss.run({ logprobs: head.logprobs, ...topAt, ...(full ? { full_d: full.d } : {}), ...lossFeeds });

    this.lap('forward_s');
    // backward
    const dtop: Batch = top ? { 'd.top_at': out['d.top_at']!, ...topFeed } : {};
    const dhn = await this.headBackward(headName, { hn, lse: head.lse }, out['d.logprobs']!, ids, invTemp, first, dtop);
    if (full) await this.fullBackward(headName, full.feeds, out['d.full_d']!, full.abar, ids.data.length, dhn);
    this.lap('head_backward_s');
    const norm = await this.s.normBwd.run({ h: hs[c.numLayers]!, [NORM]: this.view(NORM), dhn });
    this.write(NORM, norm[`d.${NORM}`]!.data as FloatArray, first);
    let dh = norm.dh!;
    for (let i = c.numLayers - 1; i >= 0; i--) dh = await this.layerBackward(i, hs[i]!, seq, dh, first);
    this.lap('layers_backward_s');
    const dE = this.g.get(EMBED)!;
    if (first && !c.tieWordEmbeddings) dE.fill(0);
    addRows(dE, ids.data as BigInt64Array, dh.data as FloatArray, c.hiddenSize);

    const metrics: Record<string, number> = { loss: Number(out.loss!.data[0]) };
    for (const n of this.loss.metrics) metrics[n] = Number(out[n]!.data[0]);
    return metrics;
  }

  /**
   * Passes 1 and 2 of a full-vocabulary divergence (layered-full.ts). Takes the teacher feeds out of
   * `lossFeeds` (the loss graph reads only D); the teacher's states are zeroed off the completion
   * mask first, so padding (even NaN) reaches no sum and no gradient.
   */
  private async fullForward(headName: string, hn: HostTensor, lse: HostTensor, invTemp: HostTensor, ids: HostTensor, lossFeeds: Batch) {
    const [th, tw, tinv] = TEACHER_FEEDS.map((n) => lossFeeds[n]);
    for (const n of TEACHER_FEEDS) delete lossFeeds[n];
    const mask = lossFeeds.loss_mask;
    if (!th || !tw || !tinv || !mask) throw new Error(`LayeredTrainer: a full-vocabulary divergence needs the feeds ${TEACHER_FEEDS.join(', ')} and loss_mask (teacher/full-vocab.ts)`);
    const dt = tw.dims[1]!;
    const hidden = this.zeros(th.data.length);
    for (let j = 0; j < mask.data.length; j++) if (mask.data[j]) hidden.set((th.data as FloatArray).subarray(j * dt, (j + 1) * dt), j * dt);
    const teacherHidden = this.tensor(hidden, th.dims);
    const twChunk = (at: number, rows: number) => this.tensor((tw.data as FloatArray).subarray(at * dt, (at + rows) * dt), [rows, dt]);
    const tfold = new LogsumexpFold(ids.dims as [number, number]);
    for (const k of this.headChunks(headName, ids.data.length)) tfold.add(await this.s.full!.teacherFwd.run({ teacher_hidden: teacherHidden, teacher_head_chunk: twChunk(k.at, k.rows), teacher_inv_temperature: tinv }));
    const teacherLse = tfold.finish(this.dtype).lse;
    const n = ids.data.length;
    const [d, abar] = [new Float64Array(n), new Float64Array(n)];
    const feeds = (k: { at: number; rows: number; w: HostTensor }) => ({ hn, head_chunk: k.w, inv_temperature: invTemp, lse, teacher_hidden: teacherHidden, teacher_head_chunk: twChunk(k.at, k.rows), teacher_inv_temperature: tinv, teacher_lse: teacherLse });
    for (const k of this.headChunks(headName, n)) {
      const r = await this.s.full!.fwd.run(feeds(k));
      const [dp, ap] = [r.d_part!.data as FloatArray, r.abar_part!.data as FloatArray];
      for (let j = 0; j < n; j++) [d[j], abar[j]] = [d[j]! + dp[j]!, abar[j]! + ap[j]!];
    }
    const as = (x: Float64Array) => this.tensor(this.dtype === 'float64' ? x : Float32Array.from(x), ids.dims);
    return { d: as(d), abar: as(abar), feeds };
  }

  /** The divergence's share of the head gradient and of dhn, chunk by chunk (added to head.bwd's). */
  private async fullBackward(headName: string, feeds: (k: { at: number; rows: number; w: HostTensor }) => Batch, dd: HostTensor, abar: HostTensor, tokens: number, dhn: HostTensor): Promise<void> {
    const D = this.c.hiddenSize;
    const dW = this.g.get(headName)!;
    for (const k of this.headChunks(headName, tokens)) {
      const r = await this.s.full!.bwd.run({ ...feeds(k), 'd.full_d': dd, full_abar: abar });
      addInto(dW.subarray(k.at * D, (k.at + k.rows) * D), r['d.head_chunk']!.data as FloatArray);
      addInto(dhn.data as FloatArray, r.dhn!.data as FloatArray);
    }
  }

  /** The head's vocabulary chunks for a batch of `tokens` positions: row range, weight view, start feed. */
  private *headChunks(headName: string, tokens: number): Generator<{ at: number; rows: number; w: HostTensor; start: HostTensor }> {
    const [D, V] = [this.c.hiddenSize, this.c.vocabSize];
    const W = this.w.get(headName)!;
    const chunk = Math.min(this.vocabChunk ?? Math.min(32768, Math.max(1024, Math.floor(HEAD_CHUNK_ELEMENTS / tokens))), V);
    for (let at = 0; at < V; at += chunk) {
      const rows = Math.min(chunk, V - at);
      yield { at, rows, w: this.tensor(W.subarray(at * D, (at + rows) * D), [rows, D]), start: hostTensor('int64', [], BigInt64Array.of(BigInt(at))) };
    }
  }

  /** head.bwd over every vocabulary chunk: writes (or adds) the head's gradient, returns dhn. */
  private async headBackward(headName: string, head: { hn: HostTensor; lse: HostTensor }, dlogp: HostTensor, ids: HostTensor, invTemp: HostTensor, first: boolean, top: Batch = {}): Promise<HostTensor> {
    const D = this.c.hiddenSize;
    const dW = this.g.get(headName)!;
    const dhn = this.tensor(this.zeros(head.hn.data.length), head.hn.dims);
    for (const k of this.headChunks(headName, ids.data.length)) {
      const rowsOfW = dW.subarray(k.at * D, (k.at + k.rows) * D);
      const target = first ? rowsOfW : this.scratchOf('head', k.rows * D);
      const feeds = { hn: head.hn, head_chunk: k.w, input_ids: ids, lse: head.lse, 'd.logprobs': dlogp, inv_temperature: invTemp, chunk_start: k.start, ...top };
      const r = await this.s.headBwd.run(feeds, { 'd.head_chunk': this.tensor(target, [k.rows, D]), dhn: null });
      if (!first) addInto(rowsOfW, target);
      addInto(dhn.data as FloatArray, r.dhn!.data as FloatArray);
    }
    return dhn;
  }

  private async layerBackward(i: number, h: HostTensor, seq: Batch, dhNext: HostTensor, first: boolean): Promise<HostTensor> {
    const fetches: Record<string, HostTensor | null> = { dh: null };
    const later: Array<[FloatArray, FloatArray]> = []; // [gradient, this micro-batch's part] to add
    for (const [s, shape] of this.suffixes) {
      const grad = this.g.get(`model.layers.${i}.${s}`)!;
      const target = first ? grad : this.scratchOf(s, grad.length);
      if (!first) later.push([grad, target]);
      fetches[`d.layer.${s}`] = this.tensor(target, shape);
    }
    const r = await this.s.layerBwd.run({ ...this.layerFeeds(i), h, ...seq, 'dh.next': dhNext }, fetches);
    for (const [grad, part] of later) addInto(grad, part);
    return r.dh!;
  }

  private lap(phase: string): void {
    const now = performance.now();
    this.timings[phase] = (this.timings[phase] ?? 0) + (now - this.lapAt) / 1e3;
    this.lapAt = now;
  }

  private layerFeeds(i: number): Record<string, HostTensor> {
    return Object.fromEntries(this.suffixes.map(([s, shape]) => [`layer.${s}`, this.tensor(this.w.get(`model.layers.${i}.${s}`)!, shape)]));
  }

  private write(name: string, d: FloatArray, first: boolean): void {
    const g = this.g.get(name)!;
    if (first) g.set(d);
    else addInto(g, d);
  }

  private view(name: string): HostTensor {
    return this.tensor(this.w.get(name)!, this.shapes.get(name)!);
  }

  private scratchOf(key: string, n: number): FloatArray {
    let s = this.scratch.get(key);
    if (!s || s.length < n) this.scratch.set(key, (s = this.zeros(n)));
    return s.subarray(0, n);
  }
}

/** dE[ids[n]] += dh[n] for every token n: the embedding lookup's backward. */
function addRows(dE: FloatArray, ids: BigInt64Array, dh: FloatArray, D: number): void {
  for (let n = 0; n < ids.length; n++) {
    const row = Number(ids[n]) * D;
    for (let d = 0; d < D; d++) dE[row + d]! += dh[n * D + d]!;
  }
}

