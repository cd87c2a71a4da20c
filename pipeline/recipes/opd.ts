// The GRPO on-policy distillation loop, one readable step at a time:
//
//   prompts ─► G rollouts each (student) ─► rewards ∥ teacher log-probs ─► advantages (blend)
//           ─► policy train step ─► rollout shard + metrics line ─► checkpoint (on cadence)
//
// Everything the loop needs arrives as plain values in `OpdJob` (the run command builds it from
// the frozen config); the loop itself makes no config lookups. The student's current weights feed
// generation straight from the trainer's buffers (no copies). A step whose rewards or teacher
// log-probs are non-finite is skipped and counted, as is one whose gradient is (R7); K skips in a
// row stop the job.

import { Rng, type RngState } from '../../engine/rng.ts';
import { Trainer } from '../../engine/train/trainer.ts';
import type { RuntimeOptions } from '../../engine/runtime/session.ts';
import type { RolloutRow } from '../../data/schemas.ts';
import type { Tokenizer } from '../../data/tokenizer/types.ts';
import type { RewardFn } from '../../data/rewards/index.ts';
import type { EpochCursor } from '../../data/sources/order.ts';
import { takeNext } from '../../data/sources/order.ts';
import type { TaskRecord } from '../../data/tasks/registry.ts';
import { Generator, stopTokenIds } from '../../student/generate/generate.ts';
import type { ModelConfig } from '../../student/model/config.ts';
import type { Weights } from '../../student/model/weights.ts';
import type { Aggregation } from '../../student/train/aggregate.ts';
import type { PolicyLossOptions } from '../../student/train/policy.ts';
import { buildPolicyTrainStep, packPolicyBatch, type PolicyRollout, splitMicroBatches } from '../../student/train/step.ts';
import type { Teacher } from '../../teacher/types.ts';
import { type LambdaSchedule, lambdaAt } from '../algo/teacher.ts';
import { type AdvantageSettings, advantageStep } from './advantage-step.ts';
import { type SamplingSettings, rolloutStage } from './rollout-step.ts';

export interface OpdSettings {
  steps: number;
  promptsPerStep: number;
  sampling: SamplingSettings;
  advantages: Omit<AdvantageSettings, 'lambda'>;
  lambda: LambdaSchedule;
  loss: PolicyLossOptions;
  aggregation: Aggregation;
  maxCompletionLen?: number;
  maskTruncated: boolean;
  /** μ: passes over each step's rollouts (> 1 reuses them off-policy; ρ corrects). */
  epochs: number;
  /** Optimizer updates per epoch: the step's prompt groups split into this many minibatches. */
  minibatches: number;
  /** Micro-batches per optimizer update (gradient accumulation; 1 = one fused graph). */
  microBatches: number;
  lr: number;
  warmupSteps: number;
  weightDecay: number;
  adamw: { beta1: number; beta2: number; eps: number; maxGradNorm: number };
  maxConsecutiveSkips: number;
  seed: number;
  runtime: RuntimeOptions;
}

export interface OpdJob {
  student: { config: ModelConfig; weights: Weights; tokenizer: Tokenizer };
  teacher: Teacher | null;
  prompts: readonly TaskRecord[];
  reward: RewardFn;
  correct?: (record: TaskRecord, completion: string) => boolean;
  settings: OpdSettings;
}

/** Where the loop is: everything a checkpoint must hold besides weights and moments. */
export interface LoopState {
  step: number; // steps completed
  cursor: EpochCursor;
  rng: RngState;
  /** Consecutive skipped steps (R7: K in a row stop the job). */
  skipped: number;
  skippedTotal: number;
}

export interface StepRecord {
  step: number;
  skipped: boolean;
  skipReason?: string;
  metrics: Record<string, number>;
  rows: RolloutRow[];
}

export interface OpdHooks {
  /** After every step: persist the shard and metrics line (the run directory's job). */
  onStep?(rec: StepRecord, trainer: Trainer, state: LoopState): Promise<void>;
  /** Resume: state and trainer contents to start from. */
  resume?: { state: LoopState; restore(trainer: Trainer): void };
}

export async function runOpd(job: OpdJob, hooks: OpdHooks = {}): Promise<{ trainer: Trainer; state: LoopState; close(): Promise<void> }> {
  const s = job.settings;
  const c = job.student.config;
  const tok = job.student.tokenizer;
  const trainer = await Trainer.create(
    buildPolicyTrainStep(c, { weightDecay: s.weightDecay, adamw: s.adamw, loss: s.loss, microBatches: s.microBatches > 1 }),
    Object.fromEntries(job.student.weights),
    s.runtime,
  );
  const generator = await Generator.create(c, () => trainer.paramViews(), s.runtime);
  const state: LoopState = hooks.resume?.state ?? { step: 0, cursor: { epoch: 0, index: 0 }, rng: new Rng(s.seed).state(), skipped: 0, skippedTotal: 0 };
  hooks.resume?.restore(trainer);
  const stop = stopTokenIds(tok, c);
  const padId = tok.padTokenId ?? stop[0] ?? 0;

  while (state.step < s.steps) {
    const step = state.step + 1;
    const rng = new Rng(state.rng);
    const take = takeNext(job.prompts.length, s.seed, state.cursor, s.promptsPerStep);
    const records = take.indices.map((i) => job.prompts[i]!);
    const t0 = performance.now();
    const ro = await rolloutStage(records, { generator, tokenizer: tok, reward: job.reward, correct: job.correct, teacher: job.teacher, stopTokenIds: stop, padId }, s.sampling, rng);
    const adv = advantageStep(ro.groups, { ...s.advantages, lambda: lambdaAt(s.lambda, step - 1, s.steps) });
    let skipReason = adv.nonFinite;
    const t1 = performance.now();
    let train: Record<string, number> = {};
    if (!skipReason) {
      const lr = s.lr * Math.min(1, step / Math.max(1, s.warmupSteps));
      const r = await trainEpochs(trainer, adv.rollouts, s, padId, lr);
      train = { ...r.metrics, lr, updates: r.updates };
      if (r.skipped) skipReason = 'non-finite loss or gradient';
    }
    const t2 = performance.now();
    state.skipped = skipReason ? state.skipped + 1 : 0;
    if (skipReason) state.skippedTotal++;
    if (state.skipped >= s.maxConsecutiveSkips)
      throw new Error(`stopping: ${state.skipped} consecutive steps skipped (last: ${skipReason}); check the teacher, the rewards and the learning rate`);
    Object.assign(state, { step, cursor: take.cursor, rng: rng.state() });
    const metrics: Record<string, number> = {
      ...(adv.metrics as unknown as Record<string, number>),
      ...train,
      ...ro.timing,
      train_s: (t2 - t1) / 1e3,
      step_s: (t2 - t0) / 1e3,
      completion_tokens: ro.tokens.completion,
      tokens_per_s: (ro.tokens.prompt + ro.tokens.completion) / ((t2 - t0) / 1e3),
      skipped_total: state.skippedTotal,
    };
    const rows = adv.rollouts.map((r, i) => {
      const g = Math.floor(i / s.sampling.groupSize);
      const src = ro.groups[g]![i % s.sampling.groupSize]!;
      return {
        step,
        promptId: records[g]!.id,
        group: g,
        promptIds: r.promptIds,
        completionIds: r.completionIds,
        samplerLogprobs: r.oldLogprobs,
        teacherLogprobs: src.teacherLogprobs ?? [],
        advantages: r.advantages as number[],
        reward: src.reward,
        correct: src.correct ?? false,
        truncated: src.truncated,
      };
    });
    await hooks.onStep?.({ step, skipped: !!skipReason, skipReason, metrics, rows }, trainer, state);
  }
  return {
    trainer,
    state,
    close: async () => {
      await generator.release();
      await trainer.release();
    },
  };
}

/** μ epochs over the step's rollouts, each split into `minibatches` optimizer updates (by group). */
async function trainEpochs(trainer: Trainer, rollouts: readonly PolicyRollout[], s: OpdSettings, padId: number, lr: number) {
  const perGroup = s.sampling.groupSize;
  const groups = rollouts.length / perGroup;
  const size = Math.ceil(groups / s.minibatches) * perGroup;
  let metrics: Record<string, number> = {};
  let skipped = false;
  let updates = 0;
  for (let e = 0; e < s.epochs; e++) {
    for (let at = 0; at < rollouts.length; at += size) {
      const mb = rollouts.slice(at, at + size);
      const feeds = packPolicyBatch(mb, { padId, aggregation: s.aggregation, maxCompletionLen: s.maxCompletionLen, temperature: s.sampling.temperature || 1, maskTruncated: s.maskTruncated });
      const r = await trainer.step(s.microBatches > 1 ? splitMicroBatches(feeds, s.microBatches) : feeds, lr);
      if (updates === 0) metrics = r.metrics; // the first update is on-policy: its ratio/clip stats are the step's
      skipped ||= r.skipped;
      updates++;
    }
  }
  return { metrics, skipped, updates };
}
