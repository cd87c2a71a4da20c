// The GRPO on-policy distillation loop, one readable step at a time:
//
//   prompts ─► G rollouts each (student) ─► rewards ∥ teacher log-probs ─► advantages (blend)
//           ─► rollout shard ─► policy train step(s) ─► metrics line (+ held-out eval) ─► checkpoint
//
// Everything the loop needs arrives as plain values in `OpdJob` (the run command builds it from
// the frozen config); the loop itself makes no config lookups. The student's current weights feed
// generation straight from the trainer's buffers (no copies). A step whose rewards or teacher
// log-probs are non-finite is skipped and counted, as is one whose gradient is (R7); K skips in a
// row stop the job.
//
// Determinism and resume: step k samples with an Rng seeded from (seed, k) and takes the prompts
// after the data cursor, so a step depends only on the weights it starts from. Its rollouts (with
// rewards, teacher scores, advantages) are handed to `hooks.onRollouts` before it trains, and a
// step for which `hooks.stored` returns rows is replayed from them: no generation, no teacher
// call (R6). One-step-stale mode samples step k+1 with a copy of the weights before step k's
// update while step k trains; step k+1's rollouts are stored before step k's `onStep`, so a
// checkpoint at step k always finds them on resume. `hooks.shouldStop` ends the loop cleanly
// after a step (SIGTERM, R13).

import type { StepTrainer } from '../../engine/train/trainer.ts';
import { type TrainStepKind, createStudentTrainer, loraModel } from '../../student/train/trainer.ts';
import type { FrozenBase } from '../../student/model/frozen.ts';
import type { LoraSpec } from '../../student/model/lora.ts';
import type { RuntimeOptions } from '../../engine/runtime/session.ts';
import type { RolloutRow } from '../../data/schemas.ts';
import type { Tokenizer } from '../../data/tokenizer/types.ts';
import type { RewardFn } from '../../data/rewards/index.ts';
import type { EpochCursor } from '../../data/sources/order.ts';
import { takeNext } from '../../data/sources/order.ts';
import type { TaskRecord } from '../../data/tasks/registry.ts';
import { Generator, stopTokenIds } from '../../student/generate/generate.ts';
import { chatStopIds, type PromptRenderOptions, usesTemplate } from '../../data/chat.ts';
import type { ModelConfig } from '../../student/model/config.ts';
import type { Weights } from '../../student/model/weights.ts';
import type { Aggregation } from '../../student/train/aggregate.ts';
import type { PolicyLossOptions } from '../../student/train/policy.ts';
import { buildPolicyTrainStep, packPolicyBatch, packSftBatch, splitMicroBatches } from '../../student/train/step.ts';
import { weightFeeds } from '../../student/model/runner.ts';
import type { Teacher } from '../../teacher/types.ts';
import { TeacherStates, withTeacherFeeds } from '../../teacher/full-vocab.ts';
import { type LrScheduleKind, lrAt } from '../algo/schedule.ts';
import { type LambdaSchedule, lambdaAt } from '../algo/teacher.ts';
import { type AdvantageSettings, advantageStep } from './advantage-step.ts';
import { SkipNotes, guardNonFinite } from './skip-guard.ts';
import { type SampleSlice, type SamplingSettings, type TeacherSet, rolloutStage } from './rollout-step.ts';
import type { WeightSource } from '../../student/model/runner.ts';

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
  /** lr after warm-up (pipeline/algo/schedule.ts); default constant. */
  lrSchedule?: LrScheduleKind;
  /** Held-out evaluation every this many steps and after the last (0 or absent: only with `heldOut`, after the last). */
  evalEvery?: number;
  /** Sample step k+1 with the weights before step k's update while step k trains. */
  oneStepStale?: boolean;
  weightDecay: number;
  adamw: { beta1: number; beta2: number; eps: number; maxGradNorm: number };
  maxConsecutiveSkips: number;
  seed: number;
  /** fused, layered, or auto by model size (student/train/trainer.ts); default auto. */
  trainStep?: TrainStepKind;
  runtime: RuntimeOptions;
  /**
   * opd (default), or sft_teacher: the off-policy baseline. The teacher (job.teacherSampler) samples
   * the step's rollouts and the student takes SFT steps on them (next-token cross-entropy on the
   * completion tokens, EOS included when sampled); rewards and advantages are still computed, for the metrics.
   */
  objective?: 'opd' | 'sft_teacher';
  /** How prompts are rendered for the student (data.chatTemplate / chatTemplateKwargs, data/chat.ts); default 'auto'. */
  chat?: PromptRenderOptions;
}

export interface OpdJob {
  /**
   * The student. With `lora`, `weights` is the frozen base (already in `lora.base`) and the trainer
   * learns `lora.adapters`; otherwise the trainer owns `weights` and updates them in place.
   */
  student: { config: ModelConfig; weights: Weights; tokenizer: Tokenizer; lora?: { spec: LoraSpec; base: FrozenBase; adapters: Weights } };
  teacher: Teacher | null;
  /** Several teachers routed by prompt tag; replaces `teacher` when present. */
  teachers?: TeacherSet;
  prompts: readonly TaskRecord[];
  reward: RewardFn;
  /** Whether a rollout counts as correct (exact answer, or reward ≥ a threshold); absent: no batch accuracy. */
  correct?: (record: TaskRecord, completion: string, reward: number) => boolean;
  /** Held-out evaluation of the current weights after `step`, through the loop's own generator (greedy; draws no randomness). */
  heldOut?: (generator: Generator, step: number) => Promise<{ accuracy: number; reward: number }>;
  settings: OpdSettings;
  /**
   * Sample elsewhere (a queue controller, pipeline/queue/): the slice sampler for step `step` with the
   * weights `weights` reads (the trainer's, or the one-step-stale copy). Absent: the local generator.
   */
  remoteSampler?: (weights: WeightSource, step: number) => SampleSlice;
  /** Objective sft_teacher: the teacher model that samples the rollouts (same tokenizer as the student). */
  teacherSampler?: { config: ModelConfig; weights: Weights };
  /** A full-vocabulary divergence (loss.distill.full): the teacher's model, run in this process at train time (teacher/full-vocab.ts). */
  fullTeacher?: { config: ModelConfig; weights: Weights; temperature: number };
}

/**
 * Where the loop is: everything a checkpoint must hold besides weights and moments. No sampler
 * state: step k's Rng is seeded from (seed, k) alone, so it is derived, not stored.
 */
export interface LoopState {
  step: number; // steps completed
  cursor: EpochCursor;
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
  /** A step's rollouts, before it trains: persist them (the rollout shard) so a resume can replay them. */
  onRollouts?(step: number, rows: RolloutRow[]): Promise<void>;
  /** Rows stored for `step` by an earlier (interrupted) run, or null to sample the step. */
  stored?(step: number): RolloutRow[] | null;
  /** After every step: persist the metrics line and checkpoints (the run directory's job). */
  onStep?(rec: StepRecord, trainer: StepTrainer, state: LoopState): Promise<void>;
  /** Checked after each step: true ends the loop there (state.step < steps). */
  shouldStop?(): boolean;
  /** Once the trainer and generators exist, before the first step: start-up is over. */
  onStart?(): void | Promise<void>;
  /** Resume: state and trainer contents to start from. */
  resume?: { state: LoopState; restore(trainer: StepTrainer): void };
}

export async function runOpd(job: OpdJob, hooks: OpdHooks = {}): Promise<{ trainer: StepTrainer; state: LoopState; stopped: boolean; close(): Promise<void> }> {
  const s = job.settings;
  // a NaN/±Inf reward or teacher score becomes NaN in the step's rows, so the step is skipped (R7; skip-guard.ts)
  const notes = new SkipNotes();
  job = guardNonFinite(job, notes);
  const c = job.student.config;
  const tok = job.student.tokenizer;
  // the trainer owns the student's weight arrays from here on (the layered step updates them in place)
  const lora = job.student.lora;
  const sftTeacher = s.objective === 'sft_teacher';
  if (sftTeacher && !job.teacherSampler) throw new Error('objective sft_teacher needs job.teacherSampler, the teacher model that samples');
  if (sftTeacher && (job.remoteSampler || s.oneStepStale)) throw new Error('objective sft_teacher samples with the teacher in-process: it runs neither on a queue nor one-step-stale');
  const trainer = await createStudentTrainer(c, Object.fromEntries(lora ? lora.adapters : job.student.weights), {
    objective: sftTeacher ? 'sft' : 'policy',
    loss: s.loss,
    weightDecay: s.weightDecay,
    adamw: s.adamw,
    microBatches: s.microBatches > 1,
    kind: s.trainStep,
    adopt: true,
    lora,
    runtime: s.runtime,
  });
  if (s.loss.distill?.full && !job.fullTeacher) throw new Error(`divergence ${s.loss.distill.full.name} needs job.fullTeacher, the teacher model whose states the train step reads`);
  const teacherStates = s.loss.distill?.full && job.fullTeacher ? await TeacherStates.create(job.fullTeacher, { temperature: job.fullTeacher.temperature, runtime: s.runtime }) : undefined;
  const generator = await Generator.create(c, () => trainer.paramViews(), { ...s.runtime, ...loraModel(lora) });
  // one-step-stale: a second generator reads a copy of the weights taken before each update
  let snapshot: ReturnType<StepTrainer['paramViews']> = {};
  const teacherGenerator = job.teacherSampler ? await Generator.create(job.teacherSampler.config, feedsOf(job.teacherSampler), s.runtime) : null;
  const staleGenerator = s.oneStepStale ? await Generator.create(c, () => snapshot, { ...s.runtime, ...loraModel(lora) }) : null;
  const state: LoopState = hooks.resume?.state ?? { step: 0, cursor: { epoch: 0, index: 0 }, skipped: 0, skippedTotal: 0 };
  hooks.resume?.restore(trainer);
  // every EOS id, plus the template's end of turn when prompts are rendered with it
  const stop = chatStopIds(tok, stopTokenIds(tok, c), job.prompts.some((r) => usesTemplate(r, s.chat)), s.chat?.chatTemplateKwargs);
  const padId = tok.padTokenId ?? stop[0] ?? 0;
  const G = s.sampling.groupSize;
  // a top-k divergence (student/train/divergences.ts): teachers are asked for their top-k, the train step gets it
  const topK = s.loss.distill?.divergence?.topK;

  /** Rollouts, rewards, teacher scores and advantages of `step`, sampled or replayed, stored before it trains. */
  const prepare = async (step: number, cursor: EpochCursor, gen: Generator, weights: WeightSource) => {
    const take = takeNext(job.prompts.length, s.seed, cursor, s.promptsPerStep);
    const records = take.indices.map((i) => job.prompts[i]!);
    const stored = hooks.stored?.(step) ?? null;
    const sample = job.remoteSampler?.(weights, step);
    const ro = stored
      ? replayed(stored, records, step, G)
      : await rolloutStage(step, records, { generator: gen, sample, tokenizer: tok, reward: job.reward, correct: job.correct, teacher: job.teacher, teachers: job.teachers, teacherTopK: topK, stopTokenIds: stop, padId, chat: s.chat }, s.sampling, stepSeed(s.seed, step));
    // the same records, now with advantages: what the shard stores and the train step packs
    const adv = advantageStep(ro.groups, { ...s.advantages, lambda: lambdaAt(s.lambda, step - 1, s.steps), accuracy: job.correct !== undefined });
    if (!stored) await hooks.onRollouts?.(step, adv.rollouts);
    const skip = notes.take(adv.nonFinite); // prepare() calls never overlap: these notes are this step's
    return { step, cursor: take.cursor, ro, adv, skip };
  };

  let pending: ReturnType<typeof prepare> | null = null;
  let stopped = false;
  await hooks.onStart?.();
  while (state.step < s.steps) {
    const step = state.step + 1;
    const t0 = performance.now();
    const p = await (pending ?? prepare(step, state.cursor, teacherGenerator ?? generator, () => trainer.paramViews()));
    pending = null;
    if (staleGenerator && step < s.steps) {
      snapshot = copyViews(trainer.paramViews());
      pending = prepare(step + 1, p.cursor, staleGenerator, () => snapshot);
      pending.catch(() => {}); // awaited below; this only keeps a failure from counting as unhandled meanwhile
    }
    const t1 = performance.now();
    let skipReason = p.skip;
    let train: Record<string, number> = {};
    if (!skipReason) {
      const lr = lrAt({ lr: s.lr, warmupSteps: s.warmupSteps, kind: s.lrSchedule ?? 'constant' }, step, s.steps);
      // the train graph takes sampled-token teacher log-probs only for the k2/k3 distillation loss, the top-k for a top-k divergence
      const r = sftTeacher ? await trainSft(trainer, p.adv.rollouts, s, padId, lr) : await trainEpochs(trainer, p.adv.rollouts, s, { padId, lr, distill: p.adv.distillCoef > 0 && !topK && !teacherStates, topK, vocabRows: c.vocabSize, teacherStates });
      train = { ...r.metrics, lr, updates: r.updates };
      if (r.skipped) skipReason = 'non-finite loss or gradient';
    }
    const t2 = performance.now();
    state.skipped = skipReason ? state.skipped + 1 : 0;
    if (skipReason) state.skippedTotal++;
    if (state.skipped >= s.maxConsecutiveSkips)
      throw new Error(`stopping: ${state.skipped} consecutive steps skipped (last: ${skipReason}); check the teacher, the rewards and the learning rate`);
    Object.assign(state, { step, cursor: p.cursor });
    if (pending) await pending; // step+1's rollouts are stored before this step can be checkpointed
    const t3 = performance.now();
    const evalDue = job.heldOut && (step === s.steps || (s.evalEvery && step % s.evalEvery === 0));
    const ev = evalDue ? await job.heldOut!(generator, step) : null;
    const t4 = performance.now();
    const tokens = p.ro.tokens.prompt + p.ro.tokens.completion;
    const metrics: Record<string, number> = {
      ...(p.adv.metrics as unknown as Record<string, number>),
      ...train,
      ...p.ro.timing,
      train_s: (t2 - t1) / 1e3,
      step_s: (t3 - t0) / 1e3,
      prompt_tokens: p.ro.tokens.prompt,
      completion_tokens: p.ro.tokens.completion,
      tokens_per_s: tokens / ((t3 - t0) / 1e3),
      ...perStage(tokens, { ...p.ro.timing, train_s: (t2 - t1) / 1e3 }),
      skipped_total: state.skippedTotal,
      ...(ev ? { eval_accuracy: ev.accuracy, eval_reward: ev.reward, eval_s: (t4 - t3) / 1e3 } : {}),
    };
    await hooks.onStep?.({ step, skipped: !!skipReason, skipReason, metrics, rows: p.adv.rollouts }, trainer, state);
    if (state.step < s.steps && hooks.shouldStop?.()) {
      stopped = true;
      break;
    }
  }
  return {
    trainer,
    state,
    stopped,
    close: async () => {
      await generator.release();
      await teacherGenerator?.release();
      await staleGenerator?.release();
      await teacherStates?.release();
      await trainer.release();
    },
  };
}

/** Tokens per second of each stage that ran (a replayed step has no generate/reward/teacher time). */
function perStage(tokens: number, seconds: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(seconds).filter(([, v]) => v > 0).map(([k, v]) => [k.replace(/_s$/, '_tokens_per_s'), tokens / v]));
}

/** Step k's sampler seed: a function of (seed, k) alone, so a step can be redone or replayed in isolation. */
export const stepSeed = (seed: number, step: number) => (Math.imul(seed >>> 0, 0x9e3779b1) ^ Math.imul(step, 0x85ebca6b)) >>> 0;

function copyViews(views: ReturnType<StepTrainer['paramViews']>): ReturnType<StepTrainer['paramViews']> {
  return Object.fromEntries(Object.entries(views).map(([k, v]) => [k, { ...v, data: v.data.slice() }])) as ReturnType<StepTrainer['paramViews']>;
}

/** A step's groups rebuilt from its stored rows (R6), checked against the prompts the cursor picks. */
function replayed(rows: readonly RolloutRow[], records: readonly TaskRecord[], step: number, G: number) {
  if (rows.length !== records.length * G)
    throw new Error(`stored rollouts of step ${step}: ${rows.length} rows, expected ${records.length} prompts × G ${G}; the shard was written under another config — delete the run's shards after this step to sample them anew`);
  const groups: RolloutRow[][] = records.map(() => []);
  rows.forEach((r, i) => {
    const rec = records[Math.floor(i / G)]!;
    if (r.promptId !== rec.id || r.step !== step)
      throw new Error(`stored rollouts of step ${step}, row ${i}: prompt "${r.promptId}" (step ${r.step}), but the data cursor picks "${rec.id}"; the shard belongs to another run or data order`);
    groups[Math.floor(i / G)]!.push(r);
  });
  const tokens = { prompt: rows.reduce((a, r) => a + r.promptIds.length, 0), completion: rows.reduce((a, r) => a + r.completionIds.length, 0) };
  return { groups, timing: { generate_s: 0, reward_s: 0, teacher_s: 0 }, tokens };
}

/** A fixed model's weights as a generator's source (converted once). */
function feedsOf(m: { config: ModelConfig; weights: Weights }): WeightSource {
  const feeds = weightFeeds(m.config, m.weights);
  return () => feeds;
}

/**
 * μ epochs over the step's rollouts, each split into `minibatches` optimizer updates (by group); `pack`
 * turns a minibatch into the step's feeds (null: nothing to train on). The first update is on-policy:
 * its metrics (ratio/clip stats, or the SFT loss) are the step's.
 */
async function trainUpdates(trainer: StepTrainer, rollouts: readonly RolloutRow[], s: OpdSettings, lr: number, pack: (mb: readonly RolloutRow[]) => Promise<Parameters<StepTrainer['step']>[0] | null>) {
  const size = Math.ceil(rollouts.length / s.sampling.groupSize / s.minibatches) * s.sampling.groupSize;
  let metrics: Record<string, number> = {};
  let skipped = false;
  let updates = 0;
  for (let e = 0; e < s.epochs; e++) {
    for (let at = 0; at < rollouts.length; at += size) {
      const feeds = await pack(rollouts.slice(at, at + size));
      if (!feeds) continue;
      const r = await trainer.step(feeds, lr);
      if (updates === 0) metrics = r.metrics; // loss, grad_norm, skipped and the loss's own metrics
      skipped ||= r.skipped;
      updates++;
    }
  }
  return { metrics, skipped, updates };
}

/** sft_teacher: SFT updates on the teacher's samples (empty completions carry no tokens to learn). */
function trainSft(trainer: StepTrainer, rollouts: readonly RolloutRow[], s: OpdSettings, padId: number, lr: number) {
  return trainUpdates(trainer, rollouts, s, lr, async (mb) => {
    const rows = mb.filter((r) => r.completionIds.length > 0);
    if (!rows.length) return null;
    const feeds = packSftBatch(rows.map((r) => ({ promptIds: r.promptIds, completionIds: r.completionIds })), { padId });
    return s.microBatches > 1 ? splitMicroBatches(feeds, s.microBatches) : feeds;
  });
}

/** The policy updates of a step (the loss of student/train/policy.ts, with the teacher feeds its distillation term needs). */
function trainEpochs(trainer: StepTrainer, rollouts: readonly RolloutRow[], s: OpdSettings, { padId, lr, distill, topK, vocabRows, teacherStates }: { padId: number; lr: number; distill: boolean; topK?: number; vocabRows: number; teacherStates?: TeacherStates }) {
  return trainUpdates(trainer, rollouts, s, lr, async (mb) => {
    const feeds = packPolicyBatch(mb, { padId, aggregation: s.aggregation, maxCompletionLen: s.maxCompletionLen, temperature: s.sampling.temperature || 1, maskTruncated: s.maskTruncated, distill, topK, vocabRows });
    // a full-vocabulary divergence: the teacher's states on these very sequences (cut with the rows), its head shared
    const tf = teacherStates ? await teacherStates.feeds(feeds) : undefined;
    if (tf) feeds.teacher_hidden = tf.teacher_hidden!;
    const parts = s.microBatches > 1 ? splitMicroBatches(feeds, s.microBatches) : feeds;
    return tf ? withTeacherFeeds(parts, tf) : parts;
  });
}
