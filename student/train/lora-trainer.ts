// The LoRA student's trainer. The frozen base lives in `<dir>/base.bin` (student/model/frozen.ts)
// and every session declares it as memory-mapped initializers, so per step only the adapters, the
// batch and [tokens × D] activations cross into ONNX Runtime. The step has the layered step's head
// (layered-graphs.ts), with the frozen head's rows as initializers, one session per chunk:
//
//   trunk.fwd   adapters, ids, mask, positions -> hn = the decoder's normed hidden states [B, T, D]
//   head.fwd.c  per vocab chunk c: max, Σexp, z of the next token -> host folds lse, log p
//   loss        log p + the loss's inputs -> loss, metrics, d.logprobs
//   head.bwd.c  per chunk: dhn += (onehot − softmax)·g/τ · W_c   (no gradient of the frozen head)
//   trunk.grad  adapters, ids, ..., dhn -> ∂loss/∂adapters (the trunk's forward recomputed inside)
//   update      AdamW on the host (engine/optim/host.ts): the moments never cross; per micro-batch
//               the adapters go in twice (trunk.fwd, trunk.grad) and their gradients come out once
//
// So no graph holds [tokens × V] logits and their autodiff (one graph over all chunks kept about
// 25 such buffers alive: 2.5 GB at 128 tokens on a 0.6B model). The head sessions run without an
// arena, or each would keep its peak. RSS counts the base once per session that maps it (PSS once).
// A batch is cut into micro-batches of ≤ `microTokens` positions (default 256), which bounds the
// trunk's autodiff activations (about 150 MB per layer per 1024 tokens on a 0.6B shape). The first
// micro-batch writes the gradient buffers, later ones add.

import { compile } from '../../engine/exec.ts';
import { type DType, Graph, type Tensor, grad } from '../../engine/index.ts';
import type { AdamWConfig } from '../../engine/optim/adamw.ts';
import type { FloatArray } from '../../engine/optim/chunked.ts';
import { hostAdamW } from '../../engine/optim/host.ts';
import { type HostTensor, addInto, hostTensor } from '../../engine/runtime/host.ts';
import type { RuntimeOptions, Session } from '../../engine/runtime/session.ts';
import type { ParamSpec } from '../../engine/train/graph.ts';
import { type Batch, type ParamValues, type StepResult, combineMetrics } from '../../engine/train/trainer.ts';
import type { ModelConfig } from '../model/config.ts';
import { type FrozenBase, type FrozenChunk, frozenWeights, headChunkRefs } from '../model/frozen.ts';
import { attentionBias, decoder } from '../model/lm.ts';
import { type LoraSpec, loraShapes } from '../model/lora.ts';
import { type Combine, HostTrainer, LogsumexpFold, TopkFold } from './host-trainer.ts';
import { type LogprobObjective, headBackwardGraph, headForwardChunkGraph, lossGraph } from './layered-graphs.ts';
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

/** The decoder on a frozen base with adapters as inputs: hn, or (with `withGrad`) ∂⟨hn, dhn⟩/∂adapters. */
function trunkGraph(c: ModelConfig, base: FrozenBase, spec: LoraSpec, withGrad: boolean): Graph {
  const g = new Graph(withGrad ? 'lora.trunk.grad' : 'lora.trunk.fwd');
  const dtype: DType = 'float32';
  const p = frozenWeights(base, spec)(g, c, dtype);
  const ids = g.input('input_ids', ['B', 'T'], 'int64');
  const mask = g.input('attention_mask', ['B', 'T'], 'int64');
  const positions = g.input('position_ids', ['B', 'T'], 'int64');
  const { hidden } = decoder(c, p, { ids, positions, bias: attentionBias(mask, 'T', 'T', dtype) }); // [B, T, D], normed
  if (!withGrad) {
    g.output('hn', hidden);
    return g;
  }
  const names = loraShapes(c, spec).map(([n]) => n);
  const grads = grad(hidden, names.map((n) => p[n] as Tensor), { dy: g.input('dhn', ['B', 'T', c.hiddenSize], dtype) });
  names.forEach((n, i) => g.output(`grad.${n}`, grads[i]!));
  return g;
}

export class LoraTrainer extends HostTrainer {
  private readonly scratch = new Map<string, FloatArray>();

  private constructor(
    paramSpecs: readonly ParamSpec[],
    w: Map<string, FloatArray>,
    private readonly s: { trunkFwd: Session; trunkGrad: Session; headFwd: Session[]; headBwd: Session[]; loss: Session },
    private readonly chunks: FrozenChunk[],
    private readonly adamw: Partial<AdamWConfig>,
    private readonly microTokens: number,
    private readonly loss: { metrics: string[]; combine: Combine },
    /** k of a top-k divergence in the objective (the head chunks then compute log π_θ at teacher_top_ids), or null. */
    private readonly topK: number | null,
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
    const [trunkFwd, trunkGrad, loss, headFwd, headBwd] = await Promise.all([
      compile(trunkGraph(c, base, spec, false), mapped),
      compile(trunkGraph(c, base, spec, true), mapped),
      compile(lg.graph, o.runtime),
      Promise.all(chunks.map((k) => compile(headForwardChunkGraph(c, 'float32', k, topK), { ...mapped, memArena: false }))),
      Promise.all(chunks.map((k) => compile(headBackwardGraph(c, 'float32', k, topK), { ...mapped, memArena: false }))),
    ]);
    return new LoraTrainer(specs, w, { trunkFwd, trunkGrad, headFwd, headBwd, loss }, chunks, o.adamw ?? {}, o.microTokens ?? 256, lg, topK ?? null);
  }

  async step(batch: Batch | readonly Batch[], lr: number): Promise<StepResult> {
    const batches = Array.isArray(batch) ? batch : this.split(batch as Batch);
    if (batches.length === 0) throw new Error('LoraTrainer.step: no micro-batches');
    const per: Array<Record<string, number>> = [];
    for (let i = 0; i < batches.length; i++) per.push(await this.backward(batches[i]!, i === 0));
    const combined = combineMetrics(per, this.loss.combine);
    return this.finish(combined, this.loss.metrics, hostAdamW(this.slots(), lr, this.t + 1, Number.isFinite(combined.loss!), this.adamw));
  }

  async release(): Promise<void> {
    await Promise.all([this.s.trunkFwd, this.s.trunkGrad, this.s.loss, ...this.s.headFwd, ...this.s.headBwd].map((x) => x.release()));
  }

  private split(batch: Batch): Batch[] {
    const [rows, width] = batch.input_ids!.dims as [number, number];
    return splitMicroBatches(batch, Math.min(rows, Math.max(1, Math.ceil((rows * width) / this.microTokens))));
  }

  private async backward(batch: Batch, first: boolean): Promise<Record<string, number>> {
    const model: Batch = {};
    const lossFeeds: Batch = {};
    for (const [k, x] of Object.entries(batch)) (MODEL_FEEDS.has(k) ? model : lossFeeds)[k] = x;
    const { input_ids: ids, attention_mask: mask, position_ids: positions, inv_temperature: invTemp } = model;
    if (!ids || !mask || !positions || !invTemp) throw new Error('LoraTrainer: a batch needs input_ids, attention_mask, position_ids and inv_temperature');
    const seq = { input_ids: ids, attention_mask: mask, position_ids: positions };
    const adapters = this.paramViews();
    const hn = (await this.s.trunkFwd.run({ ...adapters, ...seq })).hn!;
    const starts = this.chunks.map((k) => hostTensor('int64', [], BigInt64Array.of(BigInt(k.start))));
    const fold = new LogsumexpFold(ids.dims as [number, number]);
    const top = this.topK ? new TopkFold(this.topK, lossFeeds.teacher_top_ids) : null;
    const topFeed: Batch = top ? { teacher_top_ids: lossFeeds.teacher_top_ids! } : {};
    for (const [i, fwd] of this.s.headFwd.entries()) {
      const r = await fwd.run({ hn, input_ids: ids, inv_temperature: invTemp, chunk_start: starts[i]!, ...topFeed });
      fold.add(r);
      top?.add(r);
    }
    const head = fold.finish('float32');
    const topAt: Batch = top ? { student_top_ids: top.ownIds(ids.dims), top_at: top.finish(head.lse, 'float32') } : {};
    const out = await this.s.loss.run({ logprobs: head.logprobs, ...topAt, ...lossFeeds });
    const dtop: Batch = top ? { 'd.top_at': out['d.top_at']!, ...topFeed } : {};
    const dhn = this.zeros(hn.data.length);
    for (const [i, bwd] of this.s.headBwd.entries()) {
      const feeds = { hn, input_ids: ids, lse: head.lse, 'd.logprobs': out['d.logprobs']!, inv_temperature: invTemp, chunk_start: starts[i]!, ...dtop };
      addInto(dhn, (await bwd.run(feeds)).dhn!.data as FloatArray);
    }
    const fetches: Record<string, HostTensor> = {};
    for (const p of this.paramSpecs) fetches[`grad.${p.name}`] = this.tensor((first ? this.g : this.scratch).get(p.name)!, p.shape);
    await this.s.trunkGrad.run({ ...adapters, ...seq, dhn: this.tensor(dhn, hn.dims) }, fetches);
    if (!first) for (const p of this.paramSpecs) addInto(this.g.get(p.name)!, this.scratch.get(p.name)!);
    const metrics: Record<string, number> = { loss: Number(out.loss!.data[0]) };
    for (const n of this.loss.metrics) metrics[n] = Number(out[n]!.data[0]);
    return metrics;
  }
}
