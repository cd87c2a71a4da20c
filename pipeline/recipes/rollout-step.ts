// The sampling half of one GRPO-OPD step: G completions per prompt from the student, a reward for
// each, and the teacher's log-prob of every completion token.
//
// The step's prompts are sampled in slices of `slicePrompts` prompts (default: one slice), slice k
// with an Rng seeded from (the step's seed, k), and each slice's rollouts are scored by the teacher
// in one batched call. The slices are the unit of work everywhere: in-process they run here one
// after another; with a queue (pipeline/queue/) each is one rollout job and one teacher job per
// teacher, so a step's bytes do not depend on how many workers ran it (batched float math can
// depend on batch composition, so the batches themselves must not). Teacher calls of all slices
// are in flight together, so an HTTP teacher sees up to its concurrency bound of requests.
// Rewards are computed while the teacher scores (they are independent). Completion text for
// rewards is decoded without special tokens (so no template tokens such as <|im_end|>).
// Prompts are encoded by data/chat.ts encodePrompt: a conversational record through the student's
// chat template (data.chatTemplate), a plain one as tokenizer.encode(prompt), as always.
//
// Here each generator `Completion` becomes the one rollout record (data/schemas.ts `RolloutRow`)
// that the advantages stage, the rollout shard and the train batch all take as it is.

import { Rng } from '../../engine/rng.ts';
import { encodePrompt, type PromptRenderOptions } from '../../data/chat.ts';
import type { RolloutRow } from '../../data/schemas.ts';
import type { Tokenizer } from '../../data/tokenizer/types.ts';
import type { RewardFn } from '../../data/rewards/index.ts';
import type { TaskRecord } from '../../data/tasks/registry.ts';
import type { Completion, GenerateOptions, Generator } from '../../student/generate/generate.ts';
import type { Teacher, TeacherScore } from '../../teacher/types.ts';
import { type TeacherRoutes, routeTeachers } from '../algo/routing.ts';

export interface SamplingSettings {
  groupSize: number;
  maxNewTokens: number;
  temperature: number;
  topK?: number;
  topP?: number;
  /** Prompts per sampling slice (see the header); default: all the step's prompts in one slice. */
  slicePrompts?: number;
}

/** Samples one slice of prompts with an Rng seeded from `seed`: the local generator, or a queue job. */
export type SampleSlice = (prompts: readonly (readonly number[])[], o: Omit<GenerateOptions, 'rng'>, seed: number) => Promise<Completion[]>;

/** Slice k's sampler seed, from the step's seed; slice 0 keeps the step's seed. */
export const sliceSeed = (stepSeed: number, k: number) => (k === 0 ? stepSeed >>> 0 : (Math.imul(stepSeed ^ 0x5bd1e995, 0x27d4eb2d) + Math.imul(k, 0x165667b1)) >>> 0);

export interface RolloutStageResult {
  /** `groups[p]` holds the G rollouts of prompt p, advantages still empty. */
  groups: RolloutRow[][];
  /** Wall time of each stage, seconds. */
  timing: { generate_s: number; reward_s: number; teacher_s: number };
  tokens: { prompt: number; completion: number };
}

export interface RolloutDeps {
  generator: Pick<Generator, 'generate'>;
  /** Replaces the generator's sampling (a queue's rollout jobs); takes the same slices and seeds. */
  sample?: SampleSlice;
  tokenizer: Tokenizer;
  reward: RewardFn;
  /** Whether a rollout counts as correct, given its reward; absent when the data has no notion of correctness. */
  correct?: (record: TaskRecord, completion: string, reward: number) => boolean;
  /** Null for pure GRPO (no teacher term). */
  teacher: Teacher | null;
  /** Several teachers, chosen per prompt by its tag (multi-teacher OPD); replaces `teacher`. */
  teachers?: TeacherSet;
  /** Ask the teacher(s) for their top-k per completion token too (a top-k divergence, student/train/divergences.ts); 0/absent: no. */
  teacherTopK?: number;
  stopTokenIds: readonly number[];
  padId: number;
  /** How prompts are rendered (data.chatTemplate / chatTemplateKwargs); default 'auto'. */
  chat?: PromptRenderOptions;
}

/** Teachers by id and the routes from prompt tags to ids (pipeline/algo/routing.ts). */
export interface TeacherSet {
  byId: ReadonlyMap<string, Teacher>;
  routes: TeacherRoutes;
}

/** The rollouts of optimizer step `step` for `records` (prompt p is group p), sampled from `seed` (opd.ts stepSeed). */
export async function rolloutStage(step: number, records: readonly TaskRecord[], d: RolloutDeps, s: SamplingSettings, seed: number): Promise<RolloutStageResult> {
  const promptIds = records.map((r) => encodePrompt(d.tokenizer, r, d.chat));
  const expanded = promptIds.flatMap((ids) => new Array<readonly number[]>(s.groupSize).fill(ids));
  const sample: SampleSlice = d.sample ?? ((prompts, o, sd) => d.generator.generate(prompts as number[][], { ...o, rng: new Rng(sd) }));
  const opts = { maxNewTokens: s.maxNewTokens, temperature: s.temperature, topK: s.topK, topP: s.topP, stopTokenIds: d.stopTokenIds, padId: d.padId };
  const per = Math.max(1, s.slicePrompts ?? records.length) * s.groupSize;
  const slices: Array<[number, number]> = [];
  for (let at = 0; at < expanded.length; at += per) slices.push([at, Math.min(at + per, expanded.length)]);
  const t0 = performance.now();
  // a remote sampler runs every slice at once (one job each); the local generator one after another
  const parts = d.sample
    ? await Promise.all(slices.map(([a, b], k) => sample(expanded.slice(a, b), opts, sliceSeed(seed, k))))
    : await slices.reduce(async (acc, [a, b], k) => [...(await acc), await sample(expanded.slice(a, b), opts, sliceSeed(seed, k))], Promise.resolve([] as Completion[][]));
  const completions = parts.flat();
  const t1 = performance.now();
  const texts = completions.map((c) => d.tokenizer.decode(c.tokens, { skipSpecialTokens: true }));
  const rewardsP = (async () => {
    const r0 = performance.now();
    const rewards = await Promise.all(texts.map((t, i) => d.reward(records[Math.floor(i / s.groupSize)]!.prompt, t, records[Math.floor(i / s.groupSize)]!)));
    return { rewards, seconds: (performance.now() - r0) / 1e3 };
  })();
  const teacherP = (async () => {
    if (!d.teacher && !d.teachers) return { scores: null, seconds: 0 };
    const r0 = performance.now();
    // context: what a teacher with another tokenizer or template needs (teacher/aligned.ts); the sampler
    // log-probs as the shard stores them, so the aligned values and the stored ones agree
    const requests = completions.map((c, i) => {
      const r = records[Math.floor(i / s.groupSize)]!;
      return { ids: [...expanded[i]!, ...c.tokens], start: expanded[i]!.length, context: { prompt: r.prompt, messages: r.messages, samplerLogprobs: c.logprobs.map(Math.fround) } };
    });
    const topk = d.teacherTopK ? { topK: d.teacherTopK } : undefined;
    const perSlice = await Promise.all(
      slices.map(([a, b]) => (d.teachers ? scoreRouted(d.teachers, records.slice(a / s.groupSize, b / s.groupSize), s.groupSize, requests.slice(a, b), topk) : d.teacher!.score(requests.slice(a, b), topk))),
    );
    return { scores: perSlice.flat(), seconds: (performance.now() - r0) / 1e3 };
  })();
  const [rw, ts] = await Promise.all([rewardsP, teacherP]);
  const groups: RolloutRow[][] = records.map(() => []);
  completions.forEach((c, i) => {
    const p = Math.floor(i / s.groupSize);
    groups[p]!.push({
      step,
      promptId: records[p]!.id,
      group: p,
      promptIds: expanded[i]!,
      completionIds: c.tokens,
      // rounded to float32 as the rollout shard stores them, so a step replayed from its shard (R6)
      // computes the same advantages as the step that wrote it
      samplerLogprobs: c.logprobs.map(Math.fround),
      teacherLogprobs: ts.scores?.[i]!.logprobs.map(Math.fround) ?? [],
      // the teacher's top-k (flattened [C·k], float32 like the shard) when a top-k divergence asked for it
      ...topkColumns(d.teacherTopK, ts.scores?.[i]),
      advantages: [], // filled in by the advantages stage
      reward: rw.rewards[i]!,
      correct: d.correct?.(records[p]!, texts[i]!, rw.rewards[i]!) ?? false,
      truncated: c.truncated,
    });
  });
  return {
    groups,
    timing: { generate_s: (t1 - t0) / 1e3, reward_s: rw.seconds, teacher_s: ts.seconds },
    tokens: { prompt: expanded.reduce((a, p) => a + p.length, 0), completion: completions.reduce((a, c) => a + c.tokens.length, 0) },
  };
}

/** Each prompt's rollouts go to the teacher its tag routes to; all teachers score concurrently. */
export async function scoreRouted(set: TeacherSet, records: readonly TaskRecord[], groupSize: number, requests: Parameters<Teacher['score']>[0], opts?: { topK?: number }) {
  const ids = routeTeachers(records.map((r) => r.tag), records.map(() => groupSize), set.routes).flat();
  const byTeacher = new Map<string, number[]>();
  ids.forEach((id, i) => byTeacher.set(id, [...(byTeacher.get(id) ?? []), i]));
  const out = new Array<Awaited<ReturnType<Teacher['score']>>[number]>(requests.length);
  await Promise.all(
    [...byTeacher].map(async ([id, rows]) => {
      const t = set.byId.get(id);
      if (!t) throw new Error(`routing names teacher "${id}", which is not open; known: ${[...set.byId.keys()].join(', ')}`);
      const scores = await t.score(rows.map((i) => requests[i]!), opts);
      rows.forEach((i, k) => (out[i] = scores[k]!));
    }),
  );
  return out;
}

/** The rollout record's top-k columns from a teacher score (k = 0: empty). */
function topkColumns(k: number | undefined, score: TeacherScore | undefined): Pick<RolloutRow, 'teacherTopK' | 'teacherTopIds' | 'teacherTopLogprobs'> {
  if (!k || !score) return { teacherTopK: 0, teacherTopIds: [], teacherTopLogprobs: [] };
  const n = score.logprobs.length;
  if (score.topIds?.length !== n || score.topLogprobs?.length !== n || score.topIds.some((r) => r.length !== k) || score.topLogprobs.some((r) => r.length !== k))
    throw new Error(`the teacher answered a top-${k} request without ${k} alternatives at each of its ${n} positions; a top-k divergence needs a teacher that returns top-k (e.g. a local one, or a server allowing k = ${k})`);
  return { teacherTopK: k, teacherTopIds: score.topIds.flat(), teacherTopLogprobs: score.topLogprobs.flat().map(Math.fround) };
}
