// The LoRA student's trainer. The frozen base lives in `<dir>/base.bin` (student/model/frozen.ts)
// and every session declares it as memory-mapped initializers, so per step only the adapters, the
// batch and [tokens × D] activations cross into ONNX Runtime. The step has the layered step's head
// (layered-graphs.ts), with the frozen head's rows as initializers, one session per chunk:
//
//   trunk   adapters; micro-batch i: ids, mask, positions, dhn; micro-batch i+1: next.ids, ...
//           -> ∂loss_i/∂adapters (the forward of i recomputed inside), hn of i+1 [B, T, D]
//   head.c  forward, per vocab chunk c: max, Σexp, z of the next token -> host folds lse, log p
//   loss    log p + the loss's inputs -> loss, metrics, d.logprobs
//   head.c  backward, per chunk: dhn += (onehot − softmax)·g/τ · W_c   (no gradient of the frozen head)
//   update  AdamW on the host (engine/optim/host.ts): the moments never cross
//
// One trunk run does micro-batch i's backward and i+1's forward (a one-token dummy fills the half that
// has none: the first run's backward, the last run's forward), so the adapters go in once per
// micro-batch plus once per step and their gradients come out once per micro-batch. One session serves
// both passes of the trunk and of each head chunk, so each base byte is mapped by one session: RSS
// counts a file page once per mapping, and with a forward and a backward session each it read about
// 2 × the base (8.5 GB at 0.6B, PSS 5.7). ORT runs every node of a graph whatever is fetched, so a
// head chunk's forward pass (its backward inputs at zero) also pays its backward's dz·W product
// (about 3 % of a step). No graph holds [tokens × V] logits and their autodiff (one graph over all
// chunks kept about 25 such buffers alive: 2.5 GB at 128 tokens on a 0.6B model). The mapped
// sessions run without an ORT arena: an arena keeps its peak, and with ORT's memory pattern the
// trunk's kept its first run's buffers beside the planned block (anonymous memory doubled on the
// second step). The trunk's backward recomputes one layer at a time from that layer's input (see
// trunkGraph), so its activations are the layer inputs plus one layer's autodiff. A batch is cut into
// micro-batches of ≤ `microTokens` positions (default 256). The first micro-batch writes the gradient
// buffers, later ones add. The freed buffers go back to the system only under the launcher's mmap
// threshold (bin/opd.mjs): 3.5 GB peak RSS at 0.6B with it, 4.7 GB without.

import { closeSync, openSync, readSync } from 'node:fs';
import path from 'node:path';
import { compile } from '../../engine/exec.ts';
import { type DType, Graph, type Tensor, grad, isFinite, rmsNorm, sumAll, where } from '../../engine/index.ts';
import type { AdamWConfig } from '../../engine/optim/adamw.ts';
import type { FloatArray } from '../../engine/optim/chunked.ts';
import { hostAdamW } from '../../engine/optim/host.ts';
import { type HostTensor, addInto, hostTensor } from '../../engine/runtime/host.ts';
import type { RuntimeOptions, Session } from '../../engine/runtime/session.ts';
import type { ParamSpec } from '../../engine/train/graph.ts';
import { type Batch, type ParamValues, type StepResult, combineMetrics } from '../../engine/train/trainer.ts';
import type { ModelConfig } from '../model/config.ts';
import { BASE_FILE, type FrozenBase, type FrozenChunk, frozenWeights, headChunkRefs } from '../model/frozen.ts';
import { attentionBias, concatAttend, layer, ropeTables } from '../model/lm.ts';
import { type LoraSpec, loraShapes } from '../model/lora.ts';
import { type Combine, HostTrainer, LogsumexpFold, TopkFold } from './host-trainer.ts';
import { type LogprobObjective, headChunkGraph, lossGraph } from './layered-graphs.ts';
import type { PolicyLossOptions } from './policy.ts';
import { policyLossOnLogprobs, sftLossOnLogprobs, splitMicroBatches } from './step.ts';

export interface LoraTrainerOptions {
  objective: 'policy' | 'sft';
  loss?: PolicyLossOptions;
  weightDecay?: number;
  adamw?: Partial<AdamWConfig>;
  /** Positions per micro-batch when a single batch is stepped (rows × padded width; default 256). */
  microTokens?: number;
  runtime?: RuntimeOptions;
}

const MODEL_FEEDS = new Set(['input_ids', 'attention_mask', 'position_ids', 'inv_temperature']);

/**
 * The decoder on a frozen base with adapters as inputs, twice over the same initializers and adapters:
 * the forward of one sequence batch (inputs `next.*` -> hn) and ∂⟨hn, dhn⟩/∂adapters of another
 * (inputs without prefix). One session maps the base's layers once, and one run does micro-batch i's
 * backward with micro-batch i+1's forward (a one-token dummy stands in for the missing half at either
 * end): ORT runs every node whatever is fetched, so a graph with only one sequence input would pay a
 * backward in every forward pass.
 *
 * The backward keeps one layer's activations at a time: a forward pass keeps only each layer's input
 * h_l, then from the top down layer l is recomputed from h_l and differentiated (dh_l and its adapters'
 * gradients from dh_{l+1}). The recomputation starts from Where(isFinite(Σ dh_{l+1}), h_l, h_l), equal
 * to h_l bit for bit, for two reasons: ORT's common-subexpression pass would otherwise merge the
 * recomputed nodes into the first forward's (keeping every layer's activations alive again), and the
 * condition makes layer l's recomputation wait for dh_{l+1}, so no two layers' activations coexist.
 * The condition is boolean, so no gradient flows through it.
 */
function trunkGraph(c: ModelConfig, base: FrozenBase, spec: LoraSpec): Graph {
  const g = new Graph('lora.trunk');
  const dtype: DType = 'float32';
  const p = frozenWeights(base, spec)(g, c, dtype);
  // the decoder from its input embeddings: the host reads the token rows from base.bin (pread), so no
  // session maps the embedding matrix for a gather (random rows fault in whole read-ahead windows,
  // counted again in RSS beside the head chunks' mapping of the same bytes)
  const forward = (prefix: string, b: string, t: string) => {
    let h = g.input(`${prefix}embeds`, [b, t, c.hiddenSize], dtype); // [B, T, D] = E[ids]
    const mask = g.input(`${prefix}attention_mask`, [b, t], 'int64');
    const positions = g.input(`${prefix}position_ids`, [b, t], 'int64');
    const rope = ropeTables(positions, c.invFreq, dtype);
    const bias = attentionBias(mask, t, t, dtype);
    const inputs: Tensor[] = [];
    for (let i = 0; i < c.numLayers; i++) {
      inputs.push(h);
      h = g.scope(`layers.${i}`, () => layer(c, p, `model.layers.${i}`, h, rope, bias, undefined, concatAttend)).h;
    }
    return { hn: rmsNorm(h, p['model.norm.weight']!, c.rmsNormEps), last: h, inputs, rope, bias }; // hn [B, T, D], normed
  };
  g.output('hn', forward(NEXT, 'Bn', 'Tn').hn);
  const f = forward('', 'B', 'T');
  const adapters = loraShapes(c, spec).map(([n]) => n);
  let [dh] = grad(f.hn, [f.last], { dy: g.input('dhn', ['B', 'T', c.hiddenSize], dtype) }); // through the final norm
  for (let i = c.numLayers - 1; i >= 0; i--) {
    const names = adapters.filter((n) => n.startsWith(`model.layers.${i}.`));
    if (!names.length && i === 0) break;
    const x = g.scope(`recompute.${i}`, () => where(isFinite(sumAll(dh!)), f.inputs[i]!, f.inputs[i]!));
    const y = g.scope(`recompute.layers.${i}`, () => layer(c, p, `model.layers.${i}`, x, f.rope, f.bias, undefined, concatAttend)).h;
    const wrt = [...(i > 0 ? [x] : []), ...names.map((n) => p[n] as Tensor)];
    const grads = grad(y, wrt, { dy: dh });
    if (i > 0) dh = grads.shift()!;
    names.forEach((n, k) => g.output(`grad.${n}`, grads[k]!));
  }
  return g;
}

const NEXT = 'next.';
/** A micro-batch's trunk inputs: E[ids] read on the host, the mask and the positions. */
type Seq = { embeds: HostTensor; attention_mask: HostTensor; position_ids: HostTensor };

export class LoraTrainer extends HostTrainer {
  private readonly scratch = new Map<string, FloatArray>();

  private constructor(
    paramSpecs: readonly ParamSpec[],
    w: Map<string, FloatArray>,
    private readonly s: { trunk: Session; head: Session[]; loss: Session },
    private readonly chunks: FrozenChunk[],
    private readonly adamw: Partial<AdamWConfig>,
    private readonly microTokens: number,
    private readonly loss: { metrics: string[]; combine: Combine },
    /** k of a top-k divergence in the objective (the head chunks then compute log π_θ at teacher_top_ids), or null. */
    private readonly topK: number | null,
    private readonly hidden: number,
    /** base.bin, open for reading embedding rows, and where the embedding starts in it. */
    private readonly embed: { fd: number; file: string; offset: number; vocab: number },
  ) {
    super(paramSpecs, w, 'float32');
    for (const p of paramSpecs) this.scratch.set(p.name, this.zeros(w.get(p.name)!.length));
  }

  static async create(c: ModelConfig, base: FrozenBase, spec: LoraSpec, adapters: ParamValues, o: LoraTrainerOptions): Promise<LoraTrainer> {
    const specs: ParamSpec[] = loraShapes(c, spec).map(([name, shape]) => ({ name, shape, dtype: 'float32', weightDecay: o.weightDecay ?? 0 }));
    const w = new Map<string, FloatArray>();
    for (const p of specs) {
      const a = adapters[p.name];
      if (!(a instanceof Float32Array)) throw new Error(`LoraTrainer: no float32 initial value for adapter "${p.name}" ${JSON.stringify(p.shape)}`);
      w.set(p.name, a.slice());
    }
    const mapped = { ...o.runtime, modelDir: base.dir, disablePrepacking: true };
    const chunks = headChunkRefs(c, base);
    const objective: LogprobObjective = o.objective === 'policy' ? policyLossOnLogprobs({ loss: o.loss }) : sftLossOnLogprobs({});
    const topK = o.objective === 'policy' ? o.loss?.distill?.divergence?.topK : undefined;
    const lg = lossGraph(objective, 'float32', topK);
    // no arenas on the mapped sessions: an arena keeps its peak, and with ORT's memory pattern it
    // kept the first run's buffers beside the planned block (the trunk's anonymous memory doubled)
    const [trunk, loss, head] = await Promise.all([
      compile(trunkGraph(c, base, spec), { ...mapped, memArena: false }),
      compile(lg.graph, o.runtime),
      Promise.all(chunks.map((k) => compile(headChunkGraph(c, 'float32', k, topK), { ...mapped, memArena: false }))),
    ]);
    return new LoraTrainer(specs, w, { trunk, head, loss }, chunks, o.adamw ?? {}, o.microTokens ?? 256, lg, topK ?? null, c.hiddenSize, {
      fd: openSync(path.join(base.dir, BASE_FILE), 'r'),
      file: path.join(base.dir, BASE_FILE),
      offset: base.entries.get('model.embed_tokens.weight')!.offset,
      vocab: c.vocabSize,
    });
  }

  async step(batch: Batch | readonly Batch[], lr: number): Promise<StepResult> {
    const batches = Array.isArray(batch) ? batch : this.split(batch as Batch);
    if (batches.length === 0) throw new Error('LoraTrainer.step: no micro-batches');
    const per: Array<Record<string, number>> = [];
    const adapters = this.paramViews();
    const seqs = batches.map((b) => this.seqOf(b));
    // micro-batch 0's forward (with a dummy backward), then each run: backward of i + forward of i+1
    let hn = (await this.s.trunk.run({ ...adapters, ...next(seqs[0]!), ...this.dummy, dhn: this.dummyDhn }, ['hn'])).hn!;
    for (let i = 0; i < batches.length; i++) {
      const r = await this.backward(batches[i]!, seqs[i]!, hn, adapters, i + 1 < seqs.length ? seqs[i + 1]! : null, i === 0);
      per.push(r.metrics);
      if (r.hnNext) hn = r.hnNext;
    }
    const combined = combineMetrics(per, this.loss.combine);
    return this.finish(combined, this.loss.metrics, hostAdamW(this.slots(), lr, this.t + 1, Number.isFinite(combined.loss!), this.adamw));
  }

  async release(): Promise<void> {
    await Promise.all([this.s.trunk, this.s.loss, ...this.s.head].map((x) => x.release()));
    if (this.embed.fd >= 0) closeSync(this.embed.fd);
    this.embed.fd = -1;
  }

  private split(batch: Batch): Batch[] {
    const [rows, width] = batch.input_ids!.dims as [number, number];
    return splitMicroBatches(batch, Math.min(rows, Math.max(1, Math.ceil((rows * width) / this.microTokens))));
  }

  private seqOf(batch: Batch): Seq {
    const { input_ids, attention_mask, position_ids, inv_temperature } = batch;
    if (!input_ids || !attention_mask || !position_ids || !inv_temperature) throw new Error('LoraTrainer: a batch needs input_ids, attention_mask, position_ids and inv_temperature');
    return { embeds: this.embedRows(input_ids), attention_mask, position_ids };
  }

  /** E[ids] [B, T, D], each row read from base.bin (the embedding is frozen; nothing maps it for this). */
  private embedRows(ids: HostTensor): HostTensor {
    const D = this.hidden;
    const out = new Float32Array(ids.data.length * D);
    const bytes = new Uint8Array(out.buffer);
    const { fd, file, offset, vocab } = this.embed;
    for (let n = 0; n < ids.data.length; n++) {
      const id = Number(ids.data[n]);
      if (!Number.isInteger(id) || id < 0 || id >= vocab) throw new Error(`LoraTrainer: input_ids[${Math.floor(n / ids.dims[1]!)}][${n % ids.dims[1]!}] = ${id} is outside the vocabulary [0, ${vocab}); the batch was packed for another tokenizer or model`);
      const got = readSync(fd, bytes, n * D * 4, D * 4, offset + id * D * 4);
      if (got !== D * 4) throw new Error(`${file}: short read of embedding row ${id} (${got} of ${D * 4} bytes); the frozen base is truncated, write it again`);
    }
    return this.tensor(out, [...ids.dims, D]);
  }

  /** One token of one row: the half of a trunk run that has no micro-batch (its outputs are dropped). */
  private get dummy(): Seq {
    const one = (v: bigint) => hostTensor('int64', [1, 1], BigInt64Array.of(v));
    return { embeds: this.tensor(this.zeros(this.hidden), [1, 1, this.hidden]), attention_mask: one(1n), position_ids: one(0n) };
  }

  private get dummyDhn(): HostTensor {
    return this.tensor(this.zeros(this.hidden), [1, 1, this.hidden]);
  }

  /**
   * Head, loss and the trunk's backward of one micro-batch whose hn is given; the same trunk run
   * returns the forward (hn) of `nextSeq` when there is one.
   */
  private async backward(batch: Batch, seq: Seq, hn: HostTensor, adapters: Record<string, HostTensor>, nextSeq: Seq | null, first: boolean): Promise<{ metrics: Record<string, number>; hnNext: HostTensor | null }> {
    const lossFeeds: Batch = {};
    for (const [k, x] of Object.entries(batch)) if (!MODEL_FEEDS.has(k)) lossFeeds[k] = x;
    const ids = batch.input_ids!;
    const invTemp = batch.inv_temperature!;
    const [B, T] = ids.dims as [number, number];
    // the head's forward passes: its backward inputs at zero, only the forward outputs fetched
    const starts = this.chunks.map((k) => hostTensor('int64', [], BigInt64Array.of(BigInt(k.start))));
    const fold = new LogsumexpFold(ids.dims as [number, number]);
    const top = this.topK ? new TopkFold(this.topK, lossFeeds.teacher_top_ids) : null;
    const topFeed: Batch = top ? { teacher_top_ids: lossFeeds.teacher_top_ids! } : {};
    const zeroBT = this.tensor(this.zeros(B * T), [B, T]);
    const idle: Batch = { lse: zeroBT, 'd.logprobs': zeroBT, ...(top ? { 'd.top_at': this.tensor(this.zeros(B * T * this.topK!), [B, T, this.topK!]) } : {}) };
    const fwdOut = ['max', 'sum_exp', 'z_next', ...(top ? ['z_top', 'own_top_z', 'own_top_ids'] : [])];
    for (const [i, head] of this.s.head.entries()) {
      const r = await head.run({ hn, input_ids: ids, inv_temperature: invTemp, chunk_start: starts[i]!, ...topFeed, ...idle }, fwdOut);
      fold.add(r);
      top?.add(r);
    }
    const head = fold.finish('float32');
    const topAt: Batch = top ? { student_top_ids: top.ownIds(ids.dims), top_at: top.finish(head.lse, 'float32') } : {};
    const out = await this.s.loss.run({ logprobs: head.logprobs, ...topAt, ...lossFeeds });
    const dtop: Batch = top ? { 'd.top_at': out['d.top_at']!, ...topFeed } : {};
    const dhn = this.zeros(hn.data.length);
    for (const [i, bwd] of this.s.head.entries()) {
      const feeds = { hn, input_ids: ids, lse: head.lse, 'd.logprobs': out['d.logprobs']!, inv_temperature: invTemp, chunk_start: starts[i]!, ...dtop };
      addInto(dhn, (await bwd.run(feeds, ['dhn'])).dhn!.data as FloatArray);
    }
    const fetches: Record<string, HostTensor | null> = nextSeq ? { hn: null } : {};
    for (const p of this.paramSpecs) fetches[`grad.${p.name}`] = this.tensor((first ? this.g : this.scratch).get(p.name)!, p.shape);
    const r = await this.s.trunk.run({ ...adapters, ...seq, dhn: this.tensor(dhn, hn.dims), ...next(nextSeq ?? this.dummy) }, fetches);
    if (!first) for (const p of this.paramSpecs) addInto(this.g.get(p.name)!, this.scratch.get(p.name)!);
    const metrics: Record<string, number> = { loss: Number(out.loss!.data[0]) };
    for (const n of this.loss.metrics) metrics[n] = Number(out[n]!.data[0]);
    return { metrics, hnNext: nextSeq ? r.hn! : null };
  }
}

/** A sequence batch as the trunk's forward-half inputs. */
function next(seq: Seq): Record<string, HostTensor> {
  return { [`${NEXT}embeds`]: seq.embeds, [`${NEXT}attention_mask`]: seq.attention_mask, [`${NEXT}position_ids`]: seq.position_ids };
}
