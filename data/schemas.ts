// Arrow schemas of every stage boundary, in one file. Each field says its shape and unit.
// Stages exchange and store these tables only; no untyped bags of arrays cross folders.

import { Bool, Field, Float32, Float64, Int32, List, Schema, Table, Utf8, vectorFromArray } from 'apache-arrow';

const listOf = (t: Float32 | Int32) => new List(new Field('item', t, false));

/**
 * Teacher scores, one row per scored sequence (the score cache and per-step shards).
 * - key: sha256 hex of (teacher identity, top-k, start, ids): what the cache is looked up by
 * - teacher_id: TeacherIdentity.modelId
 * - start: index of the first scored token in the sequence
 * - ids [T]: the whole token sequence (prompt + completion), int32 token ids
 * - logprobs [T − start]: teacher log π_T(ids[t] | ids[<t]) for t ≥ start, nats (float32)
 * - top_k: k of the top-k columns (0 when absent)
 * - top_ids [(T − start)·k], top_logprobs [(T − start)·k]: row-major per position, nats
 */
export const teacherScoreSchema = new Schema([
  new Field('key', new Utf8(), false),
  new Field('teacher_id', new Utf8(), false),
  new Field('start', new Int32(), false),
  new Field('ids', listOf(new Int32()), false),
  new Field('logprobs', listOf(new Float32()), false),
  new Field('top_k', new Int32(), false),
  new Field('top_ids', listOf(new Int32()), false),
  new Field('top_logprobs', listOf(new Float32()), false),
]);

export interface TeacherScoreRow {
  key: string;
  teacherId: string;
  start: number;
  ids: readonly number[];
  logprobs: readonly number[];
  topK: number;
  topIds: readonly number[]; // flattened [(T − start)·k]
  topLogprobs: readonly number[];
}

export function teacherScoresToTable(rows: readonly TeacherScoreRow[]): Table {
  const col = <T>(f: (r: TeacherScoreRow) => T) => rows.map(f);
  return new Table(teacherScoreSchema, {
    key: vectorFromArray(col((r) => r.key), new Utf8()),
    teacher_id: vectorFromArray(col((r) => r.teacherId), new Utf8()),
    start: vectorFromArray(col((r) => r.start), new Int32()),
    ids: vectorFromArray(col((r) => [...r.ids]), listOf(new Int32())),
    logprobs: vectorFromArray(col((r) => [...r.logprobs]), listOf(new Float32())),
    top_k: vectorFromArray(col((r) => r.topK), new Int32()),
    top_ids: vectorFromArray(col((r) => [...r.topIds]), listOf(new Int32())),
    top_logprobs: vectorFromArray(col((r) => [...r.topLogprobs]), listOf(new Float32())),
  } as never);
}

export function tableToTeacherScores(t: Table): TeacherScoreRow[] {
  const out: TeacherScoreRow[] = [];
  for (let i = 0; i < t.numRows; i++) {
    const r = t.get(i)!;
    out.push({
      key: r.key,
      teacherId: r.teacher_id,
      start: r.start,
      ids: Array.from(r.ids.toArray() as Int32Array),
      logprobs: Array.from(r.logprobs.toArray() as Float32Array),
      topK: r.top_k,
      topIds: Array.from(r.top_ids.toArray() as Int32Array),
      topLogprobs: Array.from(r.top_logprobs.toArray() as Float32Array),
    });
  }
  return out;
}

/**
 * Rollouts of one step, one row per sampled completion, written after rewards, teacher scores and
 * advantages are known (the per-step shard `step-NNNNNN.rollouts`). The loss mask is implicit:
 * exactly the completion tokens; prompt and padding are never stored as scored tokens.
 * Its row type `RolloutRow` is also the in-memory rollout, from sampling to the train batch.
 * - step: the optimizer step this rollout trains
 * - prompt_id: the record id (task id or <file>:<line>)
 * - group: index of the prompt within the step (rollouts of a group share it)
 * - prompt_ids [P], completion_ids [C]: token ids
 * - sampler_logprobs [C]: log π_old of each completion token at the sampling temperature, nats
 * - teacher_logprobs [C]: log π_T of each completion token, nats (empty when no teacher is used)
 * - teacher_top_k: k of the teacher's top-k columns (0 when no top-k divergence asked for them)
 * - teacher_top_ids [C·k], teacher_top_logprobs [C·k]: per completion token, the teacher's k most likely
 *   ids and their log-probs, row-major (token j at j·k .. j·k + k − 1), nats (float32)
 * - advantages [C]: the blended per-token advantage A_{i,t}
 * - reward: R_i after combining reward functions (float64)
 * - correct: whether the task's answer check passed
 * - truncated: the completion hit the token limit without a stop token
 */
export const rolloutSchema = new Schema([
  new Field('step', new Int32(), false),
  new Field('prompt_id', new Utf8(), false),
  new Field('group', new Int32(), false),
  new Field('prompt_ids', listOf(new Int32()), false),
  new Field('completion_ids', listOf(new Int32()), false),
  new Field('sampler_logprobs', listOf(new Float32()), false),
  new Field('teacher_logprobs', listOf(new Float32()), false),
  new Field('teacher_top_k', new Int32(), false),
  new Field('teacher_top_ids', listOf(new Int32()), false),
  new Field('teacher_top_logprobs', listOf(new Float32()), false),
  new Field('advantages', listOf(new Float32()), false),
  new Field('reward', new Float64(), false),
  new Field('correct', new Bool(), false),
  new Field('truncated', new Bool(), false),
]);

/**
 * One rollout, from the moment it is sampled (pipeline/recipes/rollout-step.ts) through its
 * advantages (advantage-step.ts) and the rollout shard to the train batch (it satisfies
 * student/train/batch.ts's `PolicyRollout` as it is). Until the advantages stage has run,
 * `advantages` is empty; without a teacher, `teacherLogprobs` is empty; without an answer check,
 * `correct` is false. Field by field it is a row of `rolloutSchema` above.
 */
export interface RolloutRow {
  step: number;
  promptId: string;
  group: number;
  promptIds: readonly number[];
  completionIds: readonly number[];
  /** log π_old of each completion token, recorded by the sampler at its temperature (float32 values), nats. */
  samplerLogprobs: readonly number[];
  teacherLogprobs: readonly number[];
  /** k of the teacher's top-k (0: none; absent counts as 0 and the shard stores 0). */
  teacherTopK?: number;
  /** [C·k] row-major; empty without top-k. */
  teacherTopIds?: readonly number[];
  teacherTopLogprobs?: readonly number[];
  advantages: readonly number[];
  reward: number;
  correct: boolean;
  truncated: boolean;
}

export function rolloutsToTable(rows: readonly RolloutRow[]): Table {
  const col = <T>(f: (r: RolloutRow) => T) => rows.map(f);
  return new Table(rolloutSchema, {
    step: vectorFromArray(col((r) => r.step), new Int32()),
    prompt_id: vectorFromArray(col((r) => r.promptId), new Utf8()),
    group: vectorFromArray(col((r) => r.group), new Int32()),
    prompt_ids: vectorFromArray(col((r) => [...r.promptIds]), listOf(new Int32())),
    completion_ids: vectorFromArray(col((r) => [...r.completionIds]), listOf(new Int32())),
    sampler_logprobs: vectorFromArray(col((r) => [...r.samplerLogprobs]), listOf(new Float32())),
    teacher_logprobs: vectorFromArray(col((r) => [...r.teacherLogprobs]), listOf(new Float32())),
    teacher_top_k: vectorFromArray(col((r) => r.teacherTopK ?? 0), new Int32()),
    teacher_top_ids: vectorFromArray(col((r) => [...(r.teacherTopIds ?? [])]), listOf(new Int32())),
    teacher_top_logprobs: vectorFromArray(col((r) => [...(r.teacherTopLogprobs ?? [])]), listOf(new Float32())),
    advantages: vectorFromArray(col((r) => [...r.advantages]), listOf(new Float32())),
    reward: vectorFromArray(col((r) => r.reward), new Float64()),
    correct: vectorFromArray(col((r) => r.correct), new Bool()),
    truncated: vectorFromArray(col((r) => r.truncated), new Bool()),
  } as never);
}

export function tableToRollouts(t: Table): RolloutRow[] {
  const out: RolloutRow[] = [];
  const nums = (v: { toArray(): ArrayLike<number> }) => Array.from(v.toArray());
  for (let i = 0; i < t.numRows; i++) {
    const r = t.get(i)!;
    out.push({
      step: r.step,
      promptId: r.prompt_id,
      group: r.group,
      promptIds: nums(r.prompt_ids),
      completionIds: nums(r.completion_ids),
      samplerLogprobs: nums(r.sampler_logprobs),
      teacherLogprobs: nums(r.teacher_logprobs),
      teacherTopK: r.teacher_top_k,
      teacherTopIds: nums(r.teacher_top_ids),
      teacherTopLogprobs: nums(r.teacher_top_logprobs),
      advantages: nums(r.advantages),
      reward: r.reward,
      correct: r.correct,
      truncated: r.truncated,
    });
  }
  return out;
}
