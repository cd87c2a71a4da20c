// One rollout record from sampling to the train batch: what the rollout stage produces is a
// `RolloutRow` (the rollout shard's row type), the advantages stage fills in its advantages, the
// shard round-trips it unchanged, and packPolicyBatch takes it as it is, from memory or from disk.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { tableFromIPC, tableToIPC } from 'apache-arrow';
import { type RolloutRow, rolloutSchema, rolloutsToTable, tableToRollouts } from '../../data/schemas.ts';
import type { TaskRecord } from '../../data/tasks/types.ts';
import type { Tokenizer } from '../../data/tokenizer/types.ts';
import type { Completion, Generator } from '../../student/generate/generate.ts';
import { type Feeds, packPolicyBatch } from '../../student/train/batch.ts';
import type { Teacher } from '../../teacher/types.ts';
import { type AdvantageSettings, advantageStep } from './advantage-step.ts';
import { rolloutStage } from './rollout-step.ts';

const records: TaskRecord[] = [
  { id: 'a', prompt: 'xy', answer: '1' },
  { id: 'b', prompt: 'z', answer: '2' },
];
// per prompt, G = 2 completions; sampler log-probs such as −0.1 are not float32 values
const completions: Completion[] = [
  { tokens: [49], logprobs: [-0.1], truncated: false, finishReason: 'stop' },
  { tokens: [50, 51], logprobs: [-0.2, -0.3], truncated: true, finishReason: 'length' },
  { tokens: [50], logprobs: [-0.7], truncated: false, finishReason: 'stop' },
  { tokens: [], logprobs: [], truncated: false, finishReason: 'stop' },
] as Completion[];
const generator = { generate: async () => completions } as unknown as Generator;
const tokenizer = { encode: (s: string) => [...s].map((c) => c.charCodeAt(0)), decode: (ids: readonly number[]) => String.fromCharCode(...ids) } as unknown as Tokenizer;
const teacher = { score: async (reqs: { ids: readonly number[]; start: number }[]) => reqs.map((r) => ({ logprobs: r.ids.slice(r.start).map((_, j) => -0.45 - j) })) } as unknown as Teacher;
const sampling = { groupSize: 2, maxNewTokens: 2, temperature: 0.9 };
// `loss` keeps A = A^grp (±0.5 here, exact in float32) and hands the teacher log-probs to the train graph
const settings: AdvantageSettings = { groupMode: 'mean', eps: 1e-6, baseline: 0, blend: { mode: 'loss', distillCoef: 0.5 }, lambda: 1, gamma: 0 };

async function sample(withTeacher: boolean) {
  const deps = { generator, tokenizer, reward: async (_p: string, c: string) => (c === '1' || c === '2' ? 1 : 0), correct: (r: TaskRecord, c: string) => c === r.answer, teacher: withTeacher ? teacher : null, stopTokenIds: [0], padId: 0 };
  return rolloutStage(7, records, deps, sampling, 1);
}

const shard = (rows: readonly RolloutRow[]) => tableToRollouts(tableFromIPC(tableToIPC(rolloutsToTable(rows))));
const regroup = (rows: readonly RolloutRow[]) => [rows.slice(0, 2), rows.slice(2)];
const dense = (f: Feeds) => Object.fromEntries(Object.entries(f).map(([k, v]) => [k, { dims: v.dims, data: Array.from(v.data as Float32Array) }]));

test('the rollout stage yields shard rows; with advantages they round-trip through the shard unchanged', async () => {
  const ro = await sample(true);
  const fields = rolloutSchema.fields.map((f) => f.name.replace(/_(\w)/g, (_, c: string) => c.toUpperCase())).sort();
  for (const r of ro.groups.flat()) assert.deepEqual(Object.keys(r).sort(), fields, 'a sampled rollout has exactly the schema columns');
  assert.deepEqual(ro.groups.flat().map((r) => [r.step, r.promptId, r.group]), [[7, 'a', 0], [7, 'a', 0], [7, 'b', 1], [7, 'b', 1]]);
  assert.deepEqual(ro.groups[0]![0]!.samplerLogprobs, [Math.fround(-0.1)], 'the sampler log-probs, as float32 values');
  assert.deepEqual(ro.groups.flat().map((r) => r.correct), [true, false, true, false]);
  assert.ok(ro.groups.flat().every((r) => r.advantages.length === 0), 'advantages come from the next stage');

  const adv = advantageStep(ro.groups, settings);
  assert.equal(adv.distillCoef, 0.5);
  assert.deepEqual(adv.rollouts.map((r) => r.advantages), [[0.5], [-0.5, -0.5], [0.5], []]);
  assert.deepEqual(shard(adv.rollouts), adv.rollouts, 'what the shard stores is the record itself');
  assert.deepEqual(adv.rollouts.map(({ advantages: _, ...r }) => r), ro.groups.flat().map(({ advantages: _, ...r }) => r), 'the advantages stage only adds advantages');

  // a step replayed from its shard recomputes the same record (R6)
  assert.deepEqual(advantageStep(regroup(shard(adv.rollouts)), settings).rollouts, adv.rollouts);
});

test('packPolicyBatch takes the record as it is, from memory or from the shard', async () => {
  const adv = advantageStep((await sample(true)).groups, settings);
  const o = { padId: 0, temperature: sampling.temperature, distill: adv.distillCoef > 0 };
  const feeds = packPolicyBatch(adv.rollouts, o);
  assert.deepEqual(dense(packPolicyBatch(shard(adv.rollouts), o)), dense(feeds));
  const t = feeds.input_ids!.dims[1]!;
  // row 1: prompt "xy" (2 tokens), completion [50, 51]
  assert.deepEqual(Array.from((feeds.old_logprobs!.data as Float32Array).subarray(t + 2, t + 4)), adv.rollouts[1]!.samplerLogprobs);
  assert.deepEqual(Array.from((feeds.teacher_logprobs!.data as Float32Array).subarray(t + 2, t + 4)), adv.rollouts[1]!.teacherLogprobs.map(Math.fround));
  assert.ok(!('teacher_logprobs' in packPolicyBatch(adv.rollouts, { ...o, distill: false })), 'no distillation loss, no teacher feed');

  // without a teacher the record holds empty teacher log-probs, and the batch has no teacher feed
  const grpo = advantageStep((await sample(false)).groups, { ...settings, blend: { mode: 'grpo' } });
  assert.ok(grpo.rollouts.every((r) => r.teacherLogprobs.length === 0));
  assert.deepEqual(shard(grpo.rollouts), grpo.rollouts);
  assert.ok(!('teacher_logprobs' in packPolicyBatch(grpo.rollouts, { padId: 0, distill: grpo.distillCoef > 0 })));
});
