// The student's train steps: the policy step (RL / on-policy distillation) and the SFT step, each
// one engine objective -- model forward -> aligned log-probs -> loss -- handed to the engine's
// `buildTrainStep`, which emits the fused graph (and, with `microBatches`, the grad and apply graphs
// for gradient accumulation). Feed them with `packPolicyBatch` / `packSftBatch` (batch.ts) and,
// for accumulation, `splitMicroBatches`; run them with the engine's Trainer.
//
// Graph inputs: every weight (HF names), input_ids / attention_mask / position_ids [B, T],
// inv_temperature [] (1/τ of the sampler, so π_θ is scored like π_old was), the loss inputs of
// policy.ts or sft.ts, and lr / step. Outputs: new weights and moments, loss, grad_norm, skipped
// and the loss's metrics.

import type { DType, Graph, Tensor } from '../../engine/index.ts';
import type { AdamWConfig } from '../../engine/optim/adamw.ts';
import { type Objective, type TrainStepGraph, buildTrainStep } from '../../engine/train/graph.ts';
import type { ModelConfig } from '../model/config.ts';
import { type WeightDeclarer, declareWeights } from '../model/lm.ts';
import { alignedLogprobs, sequenceInputs } from '../model/score.ts';
import { type PolicyLossOptions, checkPolicyLossOptions, policyInputs, policyLoss } from './policy.ts';
import type { LogprobObjective } from './layered-graphs.ts';
import type { FullDObjective } from './layered-full.ts';
import { sftInputs, sftLoss } from './sft.ts';

export { packPolicyBatch, packSftBatch, splitMicroBatches, type PolicyRollout, type SftExample, type Feeds } from './batch.ts';

export interface TrainStepOptions {
  /** Compute dtype of weights, optimizer state and float inputs (float64 for gradient checks). */
  dtype?: 'float32' | 'float64';
  /** Decoupled weight decay of matrices (norms and biases are never decayed). */
  weightDecay?: number;
  adamw?: Partial<AdamWConfig>;
  /** Vocabulary rows per log-softmax chunk (memory vs speed). */
  chunk?: number;
  /** Also build the grad/apply graphs so Trainer.step accepts micro-batches. */
  microBatches?: boolean;
  /** How the model's weights enter the graph; default every weight a trainable param (a LoRA student: frozen.ts). */
  weights?: WeightDeclarer;
}

export interface PolicyStepOptions extends TrainStepOptions {
  loss?: PolicyLossOptions;
}

/** The policy loss on given log-probs (what follows the model in the policy objective). */
export function policyLossOnLogprobs(opts: PolicyStepOptions = {}): LogprobObjective {
  const lossOpts = opts.loss ?? {};
  checkPolicyLossOptions(lossOpts);
  return (g, logp, topk) => policyLoss(logp, policyInputs(g, dtypeOf(opts), lossOpts), lossOpts, topk);
}

/** The policy loss on given log-probs and a given per-token full-vocabulary divergence [B, T] (the layered step, layered-full.ts). */
export function policyLossOnFullD(opts: PolicyStepOptions = {}): FullDObjective {
  const lossOpts = opts.loss ?? {};
  checkPolicyLossOptions(lossOpts);
  return (g, logp, perToken) => policyLoss(logp, policyInputs(g, dtypeOf(opts), lossOpts, 'given'), lossOpts, undefined, { perToken });
}

/** The SFT loss on given log-probs. */
export function sftLossOnLogprobs(opts: TrainStepOptions = {}): LogprobObjective {
  return (g, logp) => sftLoss(logp, sftInputs(g, dtypeOf(opts)));
}

/** The policy objective on a fresh graph: loss = Σ ℓ·w over completion tokens, plus metrics. */
export function policyObjective(c: ModelConfig, opts: PolicyStepOptions = {}): Objective {
  const lossOpts = opts.loss ?? {};
  checkPolicyLossOptions(lossOpts);
  const full = lossOpts.distill?.full;
  if (full) {
    // a full-vocabulary divergence: the student's states, head and lse meet the teacher's inputs in vocab chunks
    return (g) => {
      const lo: PolicyLossOptions = { ...lossOpts, distill: { ...lossOpts.distill!, full: { ...full, chunk: full.chunk ?? opts.chunk } } }; // one chunk size for both sides by default
      const x = policyInputs(g, dtypeOf(opts), lo, c.vocabSize);
      const s = studentLogprobs(g, c, opts);
      return policyLoss(s.logprobs, x, lo, undefined, { hidden: s.prev, head: s.head, invTemp: s.invTemp, lse: s.lse });
    };
  }
  const topk = lossOpts.distill?.divergence;
  if (!topk) {
    const loss = policyLossOnLogprobs(opts);
    return (g) => loss(g, studentLogprobs(g, c, opts).logprobs);
  }
  // a top-k divergence: the student's log-probs at the teacher's ids (and its own top-k, for the overlap metric)
  return (g) => {
    const x = policyInputs(g, dtypeOf(opts), lossOpts);
    const s = studentLogprobs(g, c, opts, { at: x.teacherTopIds, topK: topk.topK });
    return policyLoss(s.logprobs, x, lossOpts, { logprobs: s.atLogprobs!, topIds: s.topIds });
  };
}

/** The SFT objective on a fresh graph: token-mean cross-entropy of the completion tokens. */
export function sftObjective(c: ModelConfig, opts: TrainStepOptions = {}): Objective {
  const loss = sftLossOnLogprobs(opts);
  return (g) => loss(g, studentLogprobs(g, c, opts).logprobs);
}

export function buildPolicyTrainStep(c: ModelConfig, opts: PolicyStepOptions = {}): TrainStepGraph {
  return buildTrainStep(policyObjective(c, opts), { name: 'policy', adamw: opts.adamw, microBatches: opts.microBatches });
}

export function buildSftTrainStep(c: ModelConfig, opts: TrainStepOptions = {}): TrainStepGraph {
  return buildTrainStep(sftObjective(c, opts), { name: 'sft', adamw: opts.adamw, microBatches: opts.microBatches });
}

/** Trainable weights + sequence inputs -> aligned log π_θ [B, T] at the fed temperature (and at `at` ids, top-k). */
function studentLogprobs(g: Graph, c: ModelConfig, opts: TrainStepOptions, extra: { at?: Tensor; topK?: number } = {}) {
  const dtype = dtypeOf(opts);
  const p = opts.weights ? opts.weights(g, c, dtype) : declareWeights(g, c, { trainable: true, weightDecay: opts.weightDecay ?? 0, dtype });
  const x = sequenceInputs(g, dtype);
  return { ...alignedLogprobs(c, p, x, { chunk: opts.chunk, ...extra }), invTemp: x.invTemp };
}

const dtypeOf = (o: TrainStepOptions): DType => o.dtype ?? 'float32';
