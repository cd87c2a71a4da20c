// A top-k divergence end to end (issue 15 items 1–2): the rollout stage asks the teacher for its
// top-k, the rollout record and its shard carry it, the train step gets it; on the tiny job the
// score cache stores and replays the top-k, and both a cache-fed rerun and a stop + resume end on
// the bytes of the uninterrupted run.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { tableFromIPC, tableToIPC } from 'apache-arrow';
import { rolloutsToTable, tableToRollouts } from '../../data/schemas.ts';
import { listShards, readShard } from '../../data/store/shards.ts';
import type { TaskRecord } from '../../data/tasks/types.ts';
import type { Tokenizer } from '../../data/tokenizer/types.ts';
import type { Completion, Generator } from '../../student/generate/generate.ts';
import { packPolicyBatch } from '../../student/train/batch.ts';
import { CachedTeacher, ScoreCache } from '../../teacher/cache.ts';
import { openTeacher } from '../../teacher/open.ts';
import type { Teacher, TeacherRequest } from '../../teacher/types.ts';
import { parseRunConfig, policyLossOptions } from '../config.ts';
import { openRunDir, readMetrics } from '../rundir.ts';
import { advantageStep } from './advantage-step.ts';
import type { OpdSettings } from './opd.ts';
import { runPersisted } from './persisted.ts';
import { rolloutStage } from './rollout-step.ts';
import { TINY_SETTINGS, tinyJob, tinyModels } from './tiny-job.ts';

test('the rollout stage asks for the top-k a divergence needs; the record and its shard carry it, the batch packs it', async () => {
  const asked: Array<number | undefined> = [];
  const teacher = {
    score: async (reqs: readonly TeacherRequest[], o?: { topK?: number }) => {
      asked.push(o?.topK);
      return reqs.map((r) => {
        const n = r.ids.length - r.start;
        return { logprobs: new Array(n).fill(-0.7), topIds: Array.from({ length: n }, (_, j) => [j + 1, j + 2]), topLogprobs: Array.from({ length: n }, () => [-0.1, -2.3]) };
      });
    },
  } as unknown as Teacher;
  const completions = [
    { tokens: [49, 50], logprobs: [-0.1, -0.2], truncated: false, finishReason: 'stop' },
    { tokens: [51], logprobs: [-0.3], truncated: false, finishReason: 'stop' },
  ] as Completion[];
  const deps = {
    generator: { generate: async () => completions } as unknown as Generator,
    tokenizer: { encode: (s: string) => [...s].map((ch) => ch.charCodeAt(0)), decode: (ids: readonly number[]) => String.fromCharCode(...ids) } as unknown as Tokenizer,
    reward: async () => 1,
    teacher,
    teacherTopK: 2,
    stopTokenIds: [0],
    padId: 0,
  };
  const records: TaskRecord[] = [{ id: 'a', prompt: 'x', answer: '1' }];
  const ro = await rolloutStage(1, records, deps, { groupSize: 2, maxNewTokens: 2, temperature: 1 }, 0);
  assert.deepEqual(asked, [2], 'one teacher call, asking for top-2');
  const rows = ro.groups.flat();
  assert.deepEqual(rows.map((r) => [r.teacherTopK, r.teacherTopIds, r.teacherTopLogprobs]), [
    [2, [1, 2, 2, 3], [-0.1, -2.3, -0.1, -2.3].map(Math.fround)],
    [2, [1, 2], [-0.1, -2.3].map(Math.fround)],
  ]);
  const adv = advantageStep(ro.groups, { groupMode: 'mean', eps: 1e-6, baseline: 0, blend: { mode: 'loss', distillCoef: 1 }, lambda: 1, gamma: 0 });
  const back = tableToRollouts(tableFromIPC(tableToIPC(rolloutsToTable(adv.rollouts))));
  assert.deepEqual(back, adv.rollouts, 'the shard round-trips the top-k columns');
  const feeds = packPolicyBatch(back, { padId: 0, topK: 2, distill: false });
  // row 0: prompt "x" (1 token), completion [49, 50]: positions 1 and 2 hold its top-k
  assert.deepEqual(Array.from(feeds.teacher_top_ids!.data as BigInt64Array, Number).slice(0, 6), [0, 0, 1, 2, 2, 3]);

  // without a top-k divergence the teacher is asked for nothing more and the columns stay empty
  const plain = await rolloutStage(1, records, { ...deps, teacherTopK: undefined }, { groupSize: 2, maxNewTokens: 2, temperature: 1 }, 0);
  assert.deepEqual(asked, [2, undefined]);
  assert.ok(plain.groups.flat().every((r) => r.teacherTopK === 0 && r.teacherTopIds!.length === 0));
  // a teacher that ignores the top-k request is an error naming the fix, not silent zeros
  const deaf = { score: async (reqs: readonly TeacherRequest[]) => reqs.map((r) => ({ logprobs: new Array(r.ids.length - r.start).fill(-1) })) } as unknown as Teacher;
  await assert.rejects(rolloutStage(1, records, { ...deps, teacher: deaf }, { groupSize: 2, maxNewTokens: 2, temperature: 1 }, 0), /answered a top-2 request without 2 alternatives/);
});

const models = mkdtempSync(join(tmpdir(), 'opd-topk-'));
const K = 8;
const SETTINGS: OpdSettings = {
  ...TINY_SETTINGS,
  steps: 4,
  advantages: { ...TINY_SETTINGS.advantages, blend: { mode: 'loss', distillCoef: 0.5 } },
  loss: { ...TINY_SETTINGS.loss, distill: { coef: 0.5, divergence: { name: 'topk_fkl', topK: K } } },
};

/** The tiny job with its teacher opened for top-K behind the score cache in `cache`. */
async function runTiny(cache: string, opts: { stopAfter?: number } = {}, dir = join(mkdtempSync(join(tmpdir(), 'opd-topk-run-')), 'run')) {
  const { job, close, tokenizerFrom } = await tinyJob(models, SETTINGS);
  const { teacher: dirs } = await tinyModels(models).then((m) => ({ teacher: m.teacher }));
  const local = (await openTeacher({ kind: 'local', path: dirs, topK: K }, { threads: 1 })).teacher;
  const cached = new CachedTeacher(local, ScoreCache.open(cache));
  job.teacher = cached;
  await mkdir(dir, { recursive: true });
  let steps = 0;
  const r = await runPersisted(await openRunDir(dir), job, { checkpointEvery: 100, keepLast: 2, tokenizerFrom, onStep: () => void steps++, shouldStop: () => opts.stopAfter !== undefined && steps >= opts.stopAfter });
  await r.close();
  await local.close();
  await close();
  return { dir, step: r.state.step, scored: cached.scored, hits: cached.hits };
}
const finalBytes = (dir: string, step: number) => ['model/model.safetensors', 'optimizer.safetensors', 'state.json'].map((f) => readFileSync(join(dir, 'checkpoints', `step-${String(step).padStart(6, '0')}`, f)));

test('tiny job with topk_fkl: shards carry the top-k, metrics report it; a cache-fed rerun and a stop + resume equal the uninterrupted run', { timeout: 300_000 }, async () => {
  const cacheA = mkdtempSync(join(tmpdir(), 'opd-topk-cache-'));
  const ref = await runTiny(cacheA);
  assert.equal(ref.step, 4);
  assert.ok(ref.scored > 0 && ref.hits === 0, `the first run scores afresh (${ref.scored} scored)`);
  const shard = listShards(join(ref.dir, 'shards'))[0]!;
  const rows = tableToRollouts(readShard(join(ref.dir, 'shards'), shard.file));
  assert.ok(rows.every((r) => r.teacherTopK === K && r.teacherTopIds!.length === K * r.completionIds.length && r.teacherTopLogprobs!.length === K * r.completionIds.length));
  const m = readMetrics(ref.dir);
  for (const line of m) {
    assert.ok((line.topk_teacher_mass as number) > 0 && (line.topk_teacher_mass as number) <= 1 + 1e-5, `teacher mass covered ${line.topk_teacher_mass}`);
    assert.ok((line.topk_overlap as number) >= 0 && (line.topk_overlap as number) <= 1, `overlap ${line.topk_overlap}`);
    assert.ok((line.distill_topk_fkl as number) > 0, `forward KL ${line.distill_topk_fkl}`);
  }

  // the same run again from the filled cache: no teacher call, the same bytes
  const again = await runTiny(cacheA);
  assert.equal(again.scored, 0, 'every top-k score came from the cache');
  assert.ok(again.hits > 0);
  finalBytes(again.dir, 4).forEach((buf, i) => assert.ok(buf.equals(finalBytes(ref.dir, 4)[i]!), `cache-fed run: final checkpoint file ${i} equals the first run's`));

  // stop after step 2, resume to the end (fresh cache: steps 3–4 are scored on resume)
  const cacheB = mkdtempSync(join(tmpdir(), 'opd-topk-cache-'));
  const stopped = await runTiny(cacheB, { stopAfter: 2 });
  assert.equal(stopped.step, 2);
  const resumed = await runTiny(cacheB, {}, stopped.dir);
  assert.equal(resumed.step, 4);
  finalBytes(resumed.dir, 4).forEach((buf, i) => assert.ok(buf.equals(finalBytes(ref.dir, 4)[i]!), `stop + resume: final checkpoint file ${i} equals the uninterrupted run`));
});

test('config: algo.blend.divergence reaches the loss options in mode loss (fused or layered); outside mode loss it is refused at the field', () => {
  const cfg = (blend: Record<string, unknown>, train: Record<string, unknown> = {}) => ({ student: 'models/s', teachers: [{ kind: 'local', path: 'models/t' }], data: { task: 'arithmetic' }, algo: { blend }, train });
  const c = parseRunConfig(cfg({ mode: 'loss', distillCoef: 0.3, divergence: 'topk_jsd', topK: 5, jsdBeta: 0.2 }), 'c.json');
  assert.deepEqual(policyLossOptions(c).distill, { coef: 0.3, estimator: 'k2', divergence: { name: 'topk_jsd', topK: 5, beta: 0.2 } });
  assert.equal(policyLossOptions(parseRunConfig(cfg({ mode: 'loss', distillCoef: 0.3 }), 'c.json')).distill?.divergence, undefined, 'default: the sampled-token loss');
  assert.throws(() => parseRunConfig(cfg({ mode: 'additive', divergence: 'topk_fkl' }), 'c.json'), /algo\.blend\.divergence.*needs algo\.blend\.mode loss/s);
  assert.equal(policyLossOptions(parseRunConfig(cfg({ mode: 'loss', distillCoef: 1, divergence: 'topk_fkl' }, { step: 'layered' }), 'c.json')).distill?.divergence?.name, 'topk_fkl', 'the layered step computes it too');
  assert.throws(() => parseRunConfig(cfg({ mode: 'loss', distillCoef: 1, divergence: 'topk_jsd', jsdBeta: 1 }), 'c.json'), /algo\.blend\.jsdBeta/);
});
