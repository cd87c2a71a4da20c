// The sft-teacher baseline (objective sft_teacher): the teacher samples each step's rollouts and the
// student takes SFT steps on them. Checked against independent computations: the stored sampler
// log-probs are the teacher's own scores of those tokens (the local teacher backend), and the student's
// weights after step 1 are those of one plain SFT step on the same examples through a fresh trainer.

import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { RolloutRow } from '../../data/schemas.ts';
import { loadModelDir } from '../../student/model/weights.ts';
import { createStudentTrainer } from '../../student/train/trainer.ts';
import { packSftBatch } from '../../student/train/step.ts';
import { openTeacher } from '../../teacher/open.ts';
import { runOpd } from './opd.ts';
import { TINY_SETTINGS, tinyJob, tinyModels } from './tiny-job.ts';

const models = mkdtempSync(join(tmpdir(), 'opd-sft-teacher-'));

test('sft_teacher: the teacher samples, the student takes exactly the SFT step on those samples', { timeout: 180_000 }, async () => {
  const dirs = await tinyModels(models);
  const settings = { ...TINY_SETTINGS, steps: 2, objective: 'sft_teacher' as const, advantages: { ...TINY_SETTINGS.advantages, blend: { mode: 'grpo' as const } } };
  const { job, close } = await tinyJob(models, settings);
  const teacherModel = await loadModelDir(dirs.teacher);
  const initial = await loadModelDir(dirs.student); // a second copy: the loop's trainer adopts job.student's arrays
  job.teacher = null;
  job.teacherSampler = { config: teacherModel.config, weights: teacherModel.weights };
  const rows: RolloutRow[][] = [];
  let after1: Record<string, Float32Array> = {};
  const r = await runOpd(job, {
    onRollouts: async (_s, rs) => void rows.push(rs),
    onStep: async (rec, trainer) => {
      if (rec.step === 1) after1 = Object.fromEntries(Object.entries(trainer.paramViews()).map(([k, v]) => [k, (v.data as Float32Array).slice()]));
    },
  });
  await r.close();
  await close();
  assert.equal(rows.length, 2);
  const step1 = rows[0]!;
  assert.equal(step1.length, settings.promptsPerStep * settings.sampling.groupSize);
  assert.ok(step1.some((x) => x.completionIds.length > 0));

  // 1. the samples are the teacher's: their recorded log-probs are the teacher backend's scores (T = 1)
  const { teacher } = await openTeacher({ kind: 'local', path: dirs.teacher }, { threads: 1 });
  try {
    const scored = step1.filter((x) => x.completionIds.length > 0);
    const scores = await teacher.score(scored.map((x) => ({ ids: [...x.promptIds, ...x.completionIds], start: x.promptIds.length })));
    scored.forEach((x, i) => x.samplerLogprobs.forEach((lp, t) => assert.ok(Math.abs(lp - scores[i]!.logprobs[t]!) < 1e-4, `row ${i} token ${t}: sampled ${lp}, teacher scores ${scores[i]!.logprobs[t]}`)));
  } finally {
    await teacher.close();
  }

  // 2. step 1 is one plain SFT step (same lr, AdamW settings) on exactly those examples
  const trainer = await createStudentTrainer(initial.config, Object.fromEntries(initial.weights), { objective: 'sft', weightDecay: settings.weightDecay, adamw: settings.adamw, microBatches: false, kind: 'fused', adopt: true, runtime: { threads: 1 } });
  try {
    const ex = step1.filter((x) => x.completionIds.length > 0).map((x) => ({ promptIds: x.promptIds, completionIds: x.completionIds }));
    await trainer.step(packSftBatch(ex, { padId: job.student.tokenizer.padTokenId ?? 0 }), settings.lr);
    const ref = trainer.paramViews();
    for (const [k, v] of Object.entries(after1)) assert.deepEqual(v, ref[k]!.data, `${k} after step 1`);
    assert.ok(Object.keys(after1).length > 0);
  } finally {
    await trainer.release();
  }
});
