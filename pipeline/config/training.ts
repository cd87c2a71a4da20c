// Run-config sections for how a step trains: `rollout`, `algo`, `loss`, `train`, `runtime`. Names
// and defaults follow the code they feed: SamplingParams (student/generate/sampler.ts), GroupMode and
// GroupOptions (pipeline/algo/advantages.ts), BlendSpec (blend.ts), LambdaSchedule (teacher.ts),
// PolicyLossOptions (student/train/policy.ts), Aggregation (aggregate.ts), AdamWConfig
// (engine/optim/adamw.ts), RuntimeOptions (engine/runtime/session.ts). The math is docs/algorithms.md.

import { z } from 'zod';
import type { Device } from '../../engine/runtime/device.ts';

const count = (min: number) => z.int().min(min);
const KL_ESTIMATOR = z.enum(['k1', 'k2', 'k3']);

export const RolloutSection = z
  .strictObject({
    groupSize: count(1).default(8).describe('Rollouts sampled per prompt, G (count; 1 only with a mean-free advantage mode)'),
    promptsPerStep: count(1).default(8).describe('Prompts per step (count); a step trains on promptsPerStep × G rollouts'),
    maxNewTokens: count(1).default(256).describe('Generation limit per rollout (tokens); rollouts hitting it are flagged truncated'),
    temperature: z.number().min(0).default(1).describe('Sampling temperature τ (unitless; 0 = greedy); recorded log-probs are of softmax(logits/τ)'),
    topK: count(0).default(0).describe('Sample only from the k most likely tokens (count; 0 = off)'),
    topP: z.number().gt(0).max(1).default(1).describe('Nucleus sampling mass (fraction; 1 = off)'),
    maskTruncated: z.boolean().default(false).describe('Leave truncated rollouts out of the loss (they are still logged)'),
    rewardTimeoutMs: z.number().gt(0).default(30000).describe('Time limit of one reward-module call (ms); a call that takes longer is stopped and the job fails naming the reward and the record'),
    slicePrompts: count(1).default(8).describe('Prompts per sampling slice (count): a step samples its prompts in slices of this many, each with its own seed, in-process or as one queue job each (docs/deploy.md)'),
  })
  .describe('Sampling the student: G rollouts per prompt');

const AdvantageSection = z
  .strictObject({
    mode: z
      .enum(['mean', 'std_group', 'std_batch', 'baseline', 'zero'])
      .default('mean')
      .describe('Group advantage A^grp: mean (R − mean), std_group / std_batch (÷ std + eps), baseline (R − b), zero'),
    eps: z.number().min(0).default(1e-6).describe('ε added to the std in std_group / std_batch (reward units)'),
    baseline: z.number().default(0).describe('b of the baseline mode (reward units)'),
  })
  .describe('Group-relative advantage (docs/algorithms.md §1)');

const BlendSection = z
  .strictObject({
    mode: z
      .enum(['additive', 'replace', 'grpo', 'loss', 'masked'])
      .default('additive')
      .describe('How A^grp and the teacher term combine: additive, replace (pure OPD), grpo (no teacher), loss (k2 loss), masked'),
    rewardWeight: z.number().default(1).describe('w_r multiplying A^grp in additive and masked (unitless)'),
    distillCoef: z.number().min(0).optional().describe('c, weight of the distillation loss in mode loss (unitless; must be > 0 there)'),
    distillEstimator: KL_ESTIMATOR.default('k2').describe('KL estimator of the distillation loss in mode loss: k2 (reverse KL) or k3 (forward-KL-like); k1 is refused'),
    divergence: z
      .enum(['sampled', 'topk_fkl', 'topk_rkl', 'topk_jsd', 'full_fkl', 'full_rkl', 'full_jsd'])
      .default('sampled')
      .describe("Distillation loss of mode loss: sampled (distillEstimator on the sampled token), through the teacher's top-k with a tail bucket: topk_fkl KL(π_T‖π_θ), topk_rkl KL(π_θ‖π_T), topk_jsd JSD(jsdBeta), or over the whole vocabulary in vocab chunks: full_fkl, full_rkl, full_jsd (a local teacher with a Hugging Face model directory and the student's tokenizer, recomputed in the trainer's process; fused or layered train step, not LoRA) (docs/algorithms.md §5)"),
    topK: count(1).default(20).describe("k: teacher alternatives per completion token asked for and stored when divergence is topk_* (count)"),
    jsdBeta: z.number().gt(0).lt(1).default(0.5).describe('β of topk_jsd and full_jsd: m = β π_T + (1 − β) π_θ (unitless, strictly between 0 and 1; β → 0 is the forward KL, β → 1 the reverse)'),
    rewardThreshold: z.number().optional().describe('Mode masked: the teacher term applies only to rollouts with reward < this (reward units)'),
  })
  .describe('Blend of the group advantage and the teacher term (docs/algorithms.md §3)');

const LambdaSection = z
  .strictObject({
    kind: z.enum(['constant', 'linear', 'cosine']).default('constant').describe('λ schedule over the run: constant, or linear / cosine decay to final'),
    lambda: z.number().min(0).default(1).describe('Peak λ scaling the teacher reward −λ·d (unitless; > 1 = reward extrapolation, ExOPD)'),
    final: z.number().min(0).default(0).describe('λ at the last step for linear / cosine (unitless)'),
    warmupSteps: count(0).default(0).describe('Steps of linear warm-up of λ from 0 (steps; ≤ run.steps)'),
  })
  .describe('Teacher weight λ and its schedule (docs/algorithms.md §2)');

export const AlgoSection = z
  .strictObject({
    advantage: AdvantageSection.prefault({}),
    blend: BlendSection.prefault({}),
    lambdaSchedule: LambdaSection.prefault({}),
    gamma: z.number().min(0).max(1).default(0).describe('γ discounting the teacher reward over later completion tokens (unitless; 0 = per-token)'),
    objective: z
      .enum(['opd', 'sft_teacher'])
      .default('opd')
      .describe("What the student learns from: opd (its own rollouts, rewards and the teacher's scores, as blended above) or sft_teacher, the off-policy baseline: the teacher samples G completions of the same prompts each step and the student is trained on them with SFT (next-token cross-entropy); the blend and λ are unused"),
    sftTeacher: z
      .string()
      .min(1)
      .optional()
      .describe('Objective sft_teacher: the id of the teacher that samples (a local teacher with a Hugging Face model directory; default routing.defaultTeacher, else the first teacher)'),
  })
  .describe('Advantages: group term, teacher term, blend');

export const LossSection = z
  .strictObject({
    type: z.enum(['ppo', 'importance_sampling']).default('ppo').describe('Policy surrogate: ppo (clipped ratio) or importance_sampling (unclipped ρ·A)'),
    clipLow: z.number().gt(0).lt(1).default(0.2).describe('ε_low: ρ is clipped below at 1 − ε_low (unitless)'),
    clipHigh: z.number().gt(0).default(0.2).describe('ε_high: ρ is clipped above at 1 + ε_high (unitless; DAPO clip-higher ≈ 0.28)'),
    aggregation: z
      .enum(['token_mean', 'seq_mean_token_mean', 'seq_mean_token_sum_norm'])
      .default('token_mean')
      .describe('Loss over tokens: token_mean (DAPO), seq_mean_token_mean (GRPO), seq_mean_token_sum_norm (Dr. GRPO)'),
    maxCompletionLen: count(1).optional().describe('Dr. GRPO normaliser L_max (tokens; ≥ rollout.maxNewTokens); default: rollout.maxNewTokens'),
    refKl: z
      .strictObject({
        beta: z.number().gt(0).describe('β of the penalty β·KL(π_θ‖π_ref) per completion token (unitless)'),
        estimator: KL_ESTIMATOR.default('k3').describe('KL estimator of the penalty (k2 or k3; k1 is refused as a loss)'),
      })
      .optional()
      .describe('Reference-KL penalty against the student at step 0; default: off'),
  })
  .describe('Policy loss of the train step (docs/algorithms.md §4)');

const OptimizerSection = z
  .strictObject({
    lr: z.number().gt(0).default(1e-5).describe('Peak learning rate of AdamW (unitless; the step size per optimizer update)'),
    warmupSteps: count(0).default(0).describe('Steps of linear lr warm-up from 0 (steps)'),
    schedule: z.enum(['constant', 'linear', 'cosine']).default('constant').describe('lr after warm-up: constant, or linear / cosine decay to 0 at the last step'),
    weightDecay: z.number().min(0).default(0).describe('Decoupled AdamW weight decay: each update multiplies weights by 1 − lr·weightDecay (unitless)'),
    beta1: z.number().min(0).lt(1).default(0.9).describe('AdamW β1, first-moment decay (unitless)'),
    beta2: z.number().min(0).lt(1).default(0.999).describe('AdamW β2, second-moment decay (unitless)'),
    eps: z.number().gt(0).default(1e-8).describe('AdamW ε, outside the square root (gradient units)'),
    maxGradNorm: z.number().min(0).default(1).describe('Clip the global gradient L2 norm to this (gradient units; 0 = off)'),
  })
  .describe('AdamW and its learning-rate schedule');

export const TrainSection = z
  .strictObject({
    epochs: count(1).default(1).describe('μ: passes over each step’s rollouts (count; > 1 reuses them off-policy, ρ corrects)'),
    minibatches: count(1).default(1).describe('Optimizer updates per epoch; must divide promptsPerStep × G (count)'),
    microBatchSize: count(1).optional().describe('Rollouts per forward/backward chunk (count; gradient accumulation, exact); default: the whole minibatch'),
    optimizer: OptimizerSection.prefault({}),
    step: z
      .enum(['auto', 'fused', 'layered'])
      .default('auto')
      .describe('Train-step graphs: fused (one graph, two copies of the state; fastest for small models), layered (per-layer sessions over one copy: ≈16 B/param for real-size students), auto = layered from 20M parameters or a 32k vocabulary'),
  })
  .describe('Optimizer steps on each batch of rollouts');

export const RuntimeSection = z
  .strictObject({
    device: z.enum(['cpu', 'cuda', 'webgpu'] as const satisfies readonly Device[]).default('cpu').describe('ONNX Runtime execution provider; an unavailable one is an error, never a CPU fallback'),
    threads: count(1).optional().describe('Intra-op threads per session (count); default: all cores'),
    oneStepStale: z.boolean().default(false).describe('Generate step t+1 while step t trains, with weights one update old (faster; off-policy by one step)'),
  })
  .describe('Where and how models run');
