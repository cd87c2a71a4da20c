// The student's trainer, fused or layered, behind the engine's StepTrainer interface.
//
// `fused` (engine/train/trainer.ts): forward + backward + AdamW in one graph, state double-buffered.
// Fastest for small models; holds about 2 × 12 B/param of state plus whole-model temporaries.
// `layered` (layered.ts): a chain of per-layer sessions over one copy of the state, ≈ 16 B/param
// plus activations, and no [tokens × V] logits in the backward; what real-size students need. `auto`
// picks layered for 20M+ parameters or a 32k+ vocabulary.
// Both compute the same loss with the same AdamW; they agree to float rounding (layered.test.ts).

import type { AdamWConfig } from '../../engine/optim/adamw.ts';
import type { RuntimeOptions } from '../../engine/runtime/session.ts';
import { type ParamValues, type StepTrainer, Trainer } from '../../engine/train/trainer.ts';
import { type ModelConfig, paramCount } from '../model/config.ts';
import { LayeredTrainer } from './layered.ts';
import { LoraTrainer } from './lora-trainer.ts';
import { type FrozenBase, frozenWeights } from '../model/frozen.ts';
import type { LoraSpec } from '../model/lora.ts';
import type { WeightDeclarer } from '../model/lm.ts';
import type { PolicyLossOptions } from './policy.ts';
import { buildPolicyTrainStep, buildSftTrainStep, policyLossOnFullD, policyLossOnLogprobs, sftLossOnLogprobs } from './step.ts';

export type TrainStepKind = 'auto' | 'fused' | 'layered';
export const TRAIN_STEP_KINDS: readonly TrainStepKind[] = ['auto', 'fused', 'layered'];

/** `auto` chooses the layered step from this many parameters, or from this vocabulary size on. */
export const LAYERED_FROM_PARAMS = 20_000_000;
export const LAYERED_FROM_VOCAB = 32_768;

export interface StudentTrainerOptions {
  objective: 'policy' | 'sft';
  loss?: PolicyLossOptions;
  weightDecay?: number;
  adamw?: Partial<AdamWConfig>;
  /** Fused only: build the accumulation graphs (the layered step always accepts micro-batches). */
  microBatches?: boolean;
  kind?: TrainStepKind;
  dtype?: 'float32' | 'float64';
  /** Layered only: take ownership of the weight arrays instead of copying them. */
  adopt?: boolean;
  /** Train LoRA adapters on a frozen base instead: `init` then holds the adapters (lora-trainer.ts). */
  lora?: { spec: LoraSpec; base: FrozenBase };
  runtime?: RuntimeOptions;
}

export function chooseTrainStep(c: ModelConfig, kind: TrainStepKind = 'auto'): 'fused' | 'layered' {
  if (!TRAIN_STEP_KINDS.includes(kind)) throw new Error(`unknown train step "${kind}"; choose from ${TRAIN_STEP_KINDS.join(', ')}`);
  if (kind !== 'auto') return kind;
  return paramCount(c) >= LAYERED_FROM_PARAMS || c.vocabSize >= LAYERED_FROM_VOCAB ? 'layered' : 'fused';
}

export async function createStudentTrainer(c: ModelConfig, init: ParamValues, o: StudentTrainerOptions): Promise<StepTrainer> {
  const common = { weightDecay: o.weightDecay, adamw: o.adamw, dtype: o.dtype };
  const full = o.objective === 'policy' ? o.loss?.distill?.full : undefined;
  if (full && o.lora)
    throw new Error(`algo.blend.divergence ${full.name}: the LoRA trainer does not compute full-vocabulary divergences (the fused and layered train steps do); train the full student (no student.lora), or use topk_${full.name.slice(5)} with a large algo.blend.topK`);
  if (o.lora) return LoraTrainer.create(c, o.lora.base, o.lora.spec, init, { objective: o.objective, loss: o.loss, weightDecay: o.weightDecay, adamw: o.adamw, runtime: o.runtime });
  if (chooseTrainStep(c, o.kind) === 'layered') {
    const objective = o.objective === 'policy' ? policyLossOnLogprobs({ ...common, loss: o.loss }) : sftLossOnLogprobs(common);
    const topK = o.objective === 'policy' ? o.loss?.distill?.divergence?.topK : undefined;
    // a full-vocabulary divergence: its chunk graphs run beside the head's, the loss takes the per-token D (layered-full.ts)
    const fullOpt = full ? { name: full.name, beta: full.beta ?? 0.5, objective: policyLossOnFullD({ ...common, loss: o.loss }) } : undefined;
    return LayeredTrainer.create(c, objective, init, { ...common, adopt: o.adopt, runtime: o.runtime, topK, full: fullOpt });
  }
  const spec = o.objective === 'policy' ? buildPolicyTrainStep(c, { ...common, loss: o.loss, microBatches: o.microBatches }) : buildSftTrainStep(c, { ...common, microBatches: o.microBatches });
  return Trainer.create(spec, init, o.runtime);
}

/** Generator options for a LoRA student's sampling sessions (base from the file, adapters fed); none otherwise. */
export function loraModel(lora: { spec: LoraSpec; base: FrozenBase } | undefined): { model?: { declare: WeightDeclarer; dir: string } } {
  return lora ? { model: { declare: frozenWeights(lora.base, lora.spec), dir: lora.base.dir } } : {};
}
