// A full-vocabulary divergence end to end (issue 15 item 1): the tiny job with full_fkl trains with
// the teacher's states recomputed in the trainer's process; the first step's metric (taken before
// any update) equals the forward KL computed independently from both models' full distributions
// (each scored by the local-teacher worker with top-k = V); micro-batches give the same step; the
// config refuses what the path cannot do, at the field.

import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { tableToRollouts } from '../../data/schemas.ts';
import { listShards, readShard } from '../../data/store/shards.ts';
import { loadModelDir } from '../../student/model/weights.ts';
import { openTeacher } from '../../teacher/open.ts';
import { parseRunConfig, policyLossOptions } from '../config.ts';
import { openRunDir, readMetrics } from '../rundir.ts';
import type { OpdSettings } from './opd.ts';
import { runPersisted } from './persisted.ts';
import { TINY_SETTINGS, tinyJob, tinyModels } from './tiny-job.ts';

const models = mkdtempSync(join(tmpdir(), 'opd-full-'));
const SETTINGS: OpdSettings = {
  ...TINY_SETTINGS,
  steps: 3,
  advantages: { ...TINY_SETTINGS.advantages, blend: { mode: 'loss', distillCoef: 1 } },
  loss: { ...TINY_SETTINGS.loss, distill: { coef: 1, full: { name: 'full_fkl' } } },
};

async function runTiny(settings: OpdSettings) {
  const { job, close, tokenizerFrom } = await tinyJob(models, settings);
  const dirs = await tinyModels(models);
  const t = await loadModelDir(dirs.teacher);
  job.fullTeacher = { config: t.config, weights: t.weights, temperature: 1 };
  const dir = join(mkdtempSync(join(tmpdir(), 'opd-full-run-')), 'run');
  await mkdir(dir, { recursive: true });
  const r = await runPersisted(await openRunDir(dir), job, { checkpointEvery: 100, keepLast: 1, tokenizerFrom });
  await r.close();
  await close();
  return { dir, step: r.state.step };
}

test('tiny job with full_fkl: step 1\'s metric = KL(π_T‖π_θ) from both models\' full distributions; micro-batches give the same step', { timeout: 300_000 }, async () => {
  const ref = await runTiny(SETTINGS);
  assert.equal(ref.step, 3);
  const m = readMetrics(ref.dir);
  for (const line of m) assert.ok(Number.isFinite(line.distill_full_fkl) && (line.distill_full_fkl as number) > 0, `forward KL ${line.distill_full_fkl}`);

  // independent: the teacher and the initial student scored with top-k = V (their whole distributions) on step 1's rollouts
  const dirs = await tinyModels(models);
  const v = (await loadModelDir(dirs.student)).config.vocabSize;
  const shard = listShards(join(ref.dir, 'shards'))[0]!;
  const rows = tableToRollouts(readShard(join(ref.dir, 'shards'), shard.file)).filter((r) => r.step === 1 && r.completionIds.length > 0);
  const reqs = rows.map((r) => ({ ids: [...r.promptIds, ...r.completionIds], start: r.promptIds.length }));
  const full = async (path: string) => {
    const t = (await openTeacher({ kind: 'local', path, topK: v }, { threads: 1 })).teacher;
    try {
      return await (t as unknown as { score: (r: typeof reqs, o: { topK: number }) => Promise<Array<{ topIds: number[][]; topLogprobs: number[][] }>> }).score(reqs, { topK: v });
    } finally {
      await t.close();
    }
  };
  const [tp, sp] = [await full(dirs.teacher), await full(dirs.student)];
  let sum = 0;
  let n = 0;
  tp.forEach((ts, i) =>
    ts.topIds.forEach((ids, j) => {
      const q = new Map(sp[i]!.topIds[j]!.map((id, a) => [id, sp[i]!.topLogprobs[j]![a]!]));
      sum += ids.reduce((acc, id, a) => acc + Math.exp(ts.topLogprobs[j]![a]!) * (ts.topLogprobs[j]![a]! - q.get(id)!), 0);
      n++;
    }),
  );
  const want = sum / n;
  const got = m[0]!.distill_full_fkl as number;
  assert.ok(Math.abs(got - want) <= 1e-4 * Math.max(1, want), `step 1 distill_full_fkl ${got} vs the full-distribution KL ${want} over ${n} tokens`);

  // the same job with micro-batches of 2 rollouts: step 1 (on the same rollouts and weights) reports the same divergence
  const micro = await runTiny({ ...SETTINGS, microBatches: 8 });
  const mm = readMetrics(micro.dir);
  assert.ok(Math.abs((mm[0]!.distill_full_fkl as number) - got) <= 1e-5 * Math.max(1, got), `micro-batched step 1 ${mm[0]!.distill_full_fkl} vs ${got}`);
});

test('config: full_* reaches the loss options (fused or layered); an HTTP or ONNX teacher, routing by tag and a LoRA student are refused at the field', () => {
  const cfg = (o: { blend?: Record<string, unknown>; train?: Record<string, unknown>; teachers?: unknown[]; routing?: unknown; student?: unknown } = {}) => ({
    student: o.student ?? 'models/s',
    teachers: o.teachers ?? [{ kind: 'local', path: 'models/t' }],
    data: { task: 'arithmetic' },
    algo: { blend: { mode: 'loss', distillCoef: 0.5, divergence: 'full_jsd', jsdBeta: 0.3, ...o.blend } },
    train: o.train ?? {},
    ...(o.routing ? { routing: o.routing } : {}),
  });
  assert.deepEqual(policyLossOptions(parseRunConfig(cfg(), 'c.json')).distill, { coef: 0.5, estimator: 'k2', full: { name: 'full_jsd', beta: 0.3 } });
  assert.throws(() => parseRunConfig(cfg({ teachers: [{ kind: 'http', url: 'http://h:1', servedModel: 'm' }] }), 'c.json'), /teachers\[0\]\.kind.*HTTP server.*local teacher/s);
  assert.throws(() => parseRunConfig(cfg({ teachers: [{ kind: 'local', path: 'models/t.onnx', tokenizer: 'models/tok' }] }), 'c.json'), /teachers\[0\]\.path.*ONNX file/s);
  assert.equal(policyLossOptions(parseRunConfig(cfg({ train: { step: 'layered' } }), 'c.json')).distill?.full?.name, 'full_jsd', 'the layered step computes it too');
  assert.throws(() => parseRunConfig(cfg({ student: { path: 'models/s', lora: { rank: 4 } } }), 'c.json'), /student\.lora.*LoRA trainer/s);
  assert.throws(
    () => parseRunConfig(cfg({ teachers: [{ id: 'a', kind: 'local', path: 'models/a' }, { id: 'b', kind: 'local', path: 'models/b' }], routing: { byTag: { x: 'b' }, defaultTeacher: 'a' } }), 'c.json'),
    /routing\.byTag.*one teacher/s,
  );
  assert.throws(() => parseRunConfig(cfg({ blend: { mode: 'additive' } }), 'c.json'), /algo\.blend\.divergence.*needs algo\.blend\.mode loss/s);
});
