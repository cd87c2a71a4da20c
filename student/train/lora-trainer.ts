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
import type { FlatSlot } from '../../engine/optim/chunked.ts';
import { hostAdamW } from '../../engine/optim/host.ts';
import { type HostTensor, hostTensor } from '../../engine/runtime/host.ts';
import type { RuntimeOptions, Session } from '../../engine/runtime/session.ts';
import type { ParamSpec } from '../../engine/train/graph.ts';
import { type Batch, type ParamValues, type StepResult, type StepTrainer, combineMetrics } from '../../engine/train/trainer.ts';
import type { ModelConfig } from '../model/config.ts';
import { BASE_FILE, type FrozenBase, frozenWeights } from '../model/frozen.ts';
import { attentionBias, decoder } from '../model/lm.ts';
import { type LoraSpec, loraShapes } from '../model/lora.ts';
import { type FrozenChunk, type LogprobObjective, headBackwardGraph, headForwardChunkGraph, lossGraph } from './layered-graphs.ts';
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

export class LoraTrainer implements StepTrainer {
  t = 0;
  skippedInARow = 0;
  skippedTotal = 0;
  private readonly g = new Map<string, Float32Array>();
  private readonly m = new Map<string, Float32Array>();
  private readonly v = new Map<string, Float32Array>();
  private readonly scratch = new Map<string, Float32Array>();

  private constructor(
    private readonly c: ModelConfig,
    readonly paramSpecs: readonly ParamSpec[],
    private readonly w: Map<string, Float32Array>,
    private readonly s: { trunkFwd: Session; trunkGrad: Session; headFwd: Session[]; headBwd: Session[]; loss: Session },
    private readonly chunks: FrozenChunk[],
    private readonly adamw: Partial<AdamWConfig>,
    private readonly microTokens: number,
    private readonly loss: { metrics: string[]; combine: Record<string, 'sum' | 'mean' | 'max' | 'min'> },
  ) {
    for (const p of paramSpecs) for (const map of [this.g, this.m, this.v, this.scratch]) map.set(p.name, new Float32Array(w.get(p.name)!.length));
  }

  static async create(c: ModelConfig, base: FrozenBase, spec: LoraSpec, adapters: ParamValues, o: LoraTrainerOptions): Promise<LoraTrainer> {
    const specs: ParamSpec[] = loraShapes(c, spec).map(([name, shape]) => ({ name, shape, dtype: 'float32', weightDecay: o.weightDecay ?? 0 }));
    const w = new Map<string, Float32Array>();
    for (const p of specs) {
      const a = adapters[p.name];
      if (!(a instanceof Float32Array)) throw new Error(`LoraTrainer: no float32 initial value for adapter "${p.name}" ${JSON.stringify(p.shape)}`);
      w.set(p.name, a.slice());
    }
    const mapped = { ...o.runtime, modelDir: base.dir, disablePrepacking: true };
    const chunks = frozenChunks(c, base);
    const objective: LogprobObjective = o.objective === 'policy' ? policyLossOnLogprobs({ weightDecay: o.weightDecay, adamw: o.adamw, loss: o.loss }) : sftLossOnLogprobs({});
    const lg = lossGraph(objective, 'float32');
    const [trunkFwd, trunkGrad, loss, headFwd, headBwd] = await Promise.all([
      compile(trunkGraph(c, base, spec, false), mapped),
      compile(trunkGraph(c, base, spec, true), mapped),
      compile(lg.graph, o.runtime),
      Promise.all(chunks.map((k) => compile(headForwardChunkGraph(c, 'float32', k), { ...mapped, memArena: false }))),
      Promise.all(chunks.map((k) => compile(headBackwardGraph(c, 'float32', k), { ...mapped, memArena: false }))),
    ]);
    return new LoraTrainer(c, specs, w, { trunkFwd, trunkGrad, headFwd, headBwd, loss }, chunks, o.adamw ?? {}, o.microTokens ?? 256, lg);
  }

  async step(batch: Batch | readonly Batch[], lr: number): Promise<StepResult> {
    const batches = Array.isArray(batch) ? batch : this.split(batch as Batch);
    if (batches.length === 0) throw new Error('LoraTrainer.step: no micro-batches');
    const per: Array<Record<string, number>> = [];
    for (let i = 0; i < batches.length; i++) per.push(await this.backward(batches[i]!, i === 0));
    const combined = combineMetrics(per, this.loss.combine);
    const slots: FlatSlot[] = this.paramSpecs.map((p) => ({ name: p.name, p: this.w.get(p.name)!, g: this.g.get(p.name)!, m: this.m.get(p.name)!, v: this.v.get(p.name)!, weightDecay: p.weightDecay }));
    const r = hostAdamW(slots, lr, this.t + 1, Number.isFinite(combined.loss!), this.adamw);
    if (r.skipped) {
      this.skippedInARow++;
      this.skippedTotal++;
    } else {
      this.t++;
      this.skippedInARow = 0;
    }
    const metrics: Record<string, number> = { loss: combined.loss!, grad_norm: r.gradNorm, skipped: r.skipped ? 1 : 0 };
    for (const n of this.loss.metrics) metrics[n] = combined[n]!;
    return { loss: combined.loss!, gradNorm: r.gradNorm, skipped: r.skipped, metrics };
  }

  params(): ParamValues {
    return Object.fromEntries([...this.w].map(([k, v]) => [k, v.slice()]));
  }

  paramViews(): Record<string, HostTensor> {
    return Object.fromEntries(this.paramSpecs.map((p) => [p.name, hostTensor('float32', p.shape, this.w.get(p.name)!)]));
  }

  /** Views (not copies) of the adapters and their moments plus t; valid until the next step. */
  exportState(): { t: number; tensors: Record<string, HostTensor> } {
    const tensors: Record<string, HostTensor> = {};
    for (const [prefix, map] of [['', this.w], ['m.', this.m], ['v.', this.v]] as const)
      for (const p of this.paramSpecs) tensors[prefix + p.name] = hostTensor('float32', p.shape, map.get(p.name)!);
    return { t: this.t, tensors };
  }

  importState(state: { t: number; tensors: Record<string, HostTensor> }): void {
    for (const [name, value] of Object.entries(state.tensors)) {
      const base = name.replace(/^[mv]\./, '');
      const dst = (name.startsWith('m.') ? this.m : name.startsWith('v.') ? this.v : this.w).get(base);
      if (!dst || dst.length !== value.data.length) throw new Error(`LoraTrainer: no state "${name}" of ${value.data.length} elements`);
      dst.set(value.data as Float32Array);
    }
    this.t = state.t;
  }

  endProfiling(): string | null {
    return null;
  }

  async release(): Promise<void> {
    const all = [this.s.trunkFwd, this.s.trunkGrad, this.s.loss, ...this.s.headFwd, ...this.s.headBwd];
    await Promise.all(all.map((x) => x.release()));
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
    const head = await this.headForward(hn, ids, invTemp);
    const out = await this.s.loss.run({ logprobs: head.logprobs, ...lossFeeds });
    const dhn = new Float32Array(hn.data.length);
    for (const [i, k] of this.chunks.entries()) {
      const feeds = { hn, input_ids: ids, lse: head.lse, 'd.logprobs': out['d.logprobs']!, inv_temperature: invTemp, chunk_start: startOf(k, this.chunks) };
      addInto(dhn, (await this.s.headBwd[i]!.run(feeds)).dhn!.data as Float32Array);
    }
    const fetches: Record<string, HostTensor> = {};
    for (const p of this.paramSpecs) fetches[`grad.${p.name}`] = hostTensor('float32', p.shape, (first ? this.g : this.scratch).get(p.name)!);
    await this.s.trunkGrad.run({ ...adapters, ...seq, dhn: hostTensor('float32', hn.dims, dhn) }, fetches);
    if (!first) for (const p of this.paramSpecs) addInto(this.g.get(p.name)!, this.scratch.get(p.name)!);
    const metrics: Record<string, number> = { loss: Number(out.loss!.data[0]) };
    for (const n of this.loss.metrics) metrics[n] = Number(out[n]!.data[0]);
    return metrics;
  }

  /** head.fwd over every chunk, folded as in the layered step: lse = M + log S, log p = z_next − lse. */
  private async headForward(hn: HostTensor, ids: HostTensor, invTemp: HostTensor): Promise<{ logprobs: HostTensor; lse: HostTensor }> {
    const n = ids.data.length;
    const M = new Float64Array(n).fill(-Infinity);
    const S = new Float64Array(n);
    const zy = new Float64Array(n);
    for (const [i, k] of this.chunks.entries()) {
      const r = await this.s.headFwd[i]!.run({ hn, input_ids: ids, inv_temperature: invTemp, chunk_start: startOf(k, this.chunks) });
      const [m, s, z] = [r.max!.data as Float32Array, r.sum_exp!.data as Float32Array, r.z_next!.data as Float32Array];
      for (let j = 0; j < n; j++) {
        const nm = Math.max(M[j]!, m[j]!);
        S[j] = S[j]! * Math.exp(M[j]! - nm) + s[j]! * Math.exp(m[j]! - nm);
        M[j] = nm;
        zy[j]! += z[j]!;
      }
    }
    const lse = new Float32Array(n);
    const logprobs = new Float32Array(n);
    const T = ids.dims[1]!;
    for (let j = 0; j < n; j++) {
      if (j % T === 0) continue; // nothing predicts a row's first token
      lse[j] = M[j]! + Math.log(S[j]!);
      logprobs[j] = zy[j]! - lse[j]!;
    }
    return { logprobs: hostTensor('float32', ids.dims, logprobs), lse: hostTensor('float32', ids.dims, lse) };
  }
}

/** The frozen head's row chunks as external-data views of base.bin (page-aligned starts). */
function frozenChunks(c: ModelConfig, base: FrozenBase): FrozenChunk[] {
  const head = base.entries.get(c.tieWordEmbeddings ? 'model.embed_tokens.weight' : 'lm_head.weight')!;
  const rowBytes = c.hiddenSize * 4;
  const out: FrozenChunk[] = [];
  for (let start = 0, index = 0; start < c.vocabSize; start += base.headRows, index++) {
    const rows = Math.min(base.headRows, c.vocabSize - start);
    out.push({ index, rows, ref: { file: BASE_FILE, offset: head.offset + start * rowBytes, length: rows * rowBytes } });
  }
  return out;
}

function startOf(k: FrozenChunk, chunks: readonly FrozenChunk[]): HostTensor {
  return hostTensor('int64', [], BigInt64Array.of(BigInt(chunks.slice(0, k.index).reduce((s, x) => s + x.rows, 0))));
}

function addInto(dst: Float32Array, src: Float32Array): void {
  for (let i = 0; i < dst.length; i++) dst[i]! += src[i]!;
}
