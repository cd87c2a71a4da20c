// The LoRA student's trainer: the train step's graphs hold the frozen base as memory-mapped
// initializers (student/model/frozen.ts) and take only the adapters as state, so per step only the
// adapters, their two AdamW moments and the batch cross into ONNX Runtime.
//
// It always runs the grad + apply graphs of the engine's Trainer (never the fused one: one session
// that maps the base is enough), splitting each batch into micro-batches so that one micro-batch's
// [tokens × V] log-softmax stays under `logitBytes` (the autodiff of the chunked log-softmax keeps
// each chunk's softmax until its backward). Gradient accumulation is exact (engine/train/graph.ts).

import type { AdamWConfig } from '../../engine/optim/adamw.ts';
import type { RuntimeOptions } from '../../engine/runtime/session.ts';
import type { ParamSpec } from '../../engine/train/graph.ts';
import { type Batch, type ParamValues, type StepResult, type StepTrainer, Trainer } from '../../engine/train/trainer.ts';
import type { ModelConfig } from '../model/config.ts';
import { type FrozenBase, frozenWeights } from '../model/frozen.ts';
import type { LoraSpec } from '../model/lora.ts';
import { splitMicroBatches } from './batch.ts';
import type { PolicyLossOptions } from './policy.ts';
import { buildPolicyTrainStep, buildSftTrainStep } from './step.ts';

export interface LoraTrainerOptions {
  objective: 'policy' | 'sft';
  loss?: PolicyLossOptions;
  weightDecay?: number;
  adamw?: Partial<AdamWConfig>;
  /**
   * Budget for one micro-batch's [tokens × V] log-softmax buffers (three float32 copies; default
   * 768 MiB: at 1024 tokens and a 152k vocabulary, 3 micro-batches, which keeps the adapters'
   * round trips per step under 2 % of a full step's boundary bytes).
   */
  logitBytes?: number;
  runtime?: RuntimeOptions;
}

export class LoraTrainer implements StepTrainer {
  private constructor(
    private readonly inner: Trainer,
    private readonly vocab: number,
    private readonly logitBytes: number,
  ) {}

  static async create(c: ModelConfig, base: FrozenBase, spec: LoraSpec, adapters: ParamValues, o: LoraTrainerOptions): Promise<LoraTrainer> {
    const common = { weightDecay: o.weightDecay, adamw: o.adamw, microBatches: true, weights: frozenWeights(base, spec, { trainable: true, weightDecay: o.weightDecay }) };
    const step = o.objective === 'policy' ? buildPolicyTrainStep(c, { ...common, loss: o.loss }) : buildSftTrainStep(c, common);
    const inner = await Trainer.create(step, adapters, { ...o.runtime, modelDir: base.dir, disablePrepacking: true }, { lazyFused: true });
    return new LoraTrainer(inner, c.vocabSize, o.logitBytes ?? 768 * 1024 * 1024);
  }

  get t(): number {
    return this.inner.t;
  }
  set t(v: number) {
    this.inner.t = v;
  }
  get skippedInARow(): number {
    return this.inner.skippedInARow;
  }
  set skippedInARow(v: number) {
    this.inner.skippedInARow = v;
  }
  get skippedTotal(): number {
    return this.inner.skippedTotal;
  }
  set skippedTotal(v: number) {
    this.inner.skippedTotal = v;
  }
  get paramSpecs(): readonly ParamSpec[] {
    return this.inner.paramSpecs;
  }

  /** One optimizer step; a single batch is cut into micro-batches that fit the logit budget. */
  step(batch: Batch | readonly Batch[], lr: number): Promise<StepResult> {
    return this.inner.step(Array.isArray(batch) ? batch : this.split(batch as Batch), lr);
  }

  params(): ParamValues {
    return this.inner.params();
  }
  paramViews() {
    return this.inner.paramViews();
  }
  exportState() {
    return this.inner.exportState();
  }
  importState(state: Parameters<Trainer['importState']>[0]): void {
    this.inner.importState(state);
  }
  endProfiling(): string | null {
    return this.inner.endProfiling();
  }
  release(): Promise<void> {
    return this.inner.release();
  }

  private split(batch: Batch): Batch[] {
    const [rows, width] = batch.input_ids!.dims as [number, number];
    const perRow = width * this.vocab * 4 * 3; // a chunk's logits, their exp and the softmax stay live for its backward
    const count = Math.min(rows, Math.max(1, Math.ceil((rows * perRow) / this.logitBytes)));
    return splitMicroBatches(batch, count);
  }
}
