// The student learns from the teacher (issue #5 acceptance): on built-in 1-digit addition, a
// teacher SFT'd in a few seconds answers held-out problems; a random student does not even answer
// with a number. 60 steps of on-policy distillation (blend replace: the teacher term alone) raise
// the student's held-out reward — exact answer (numeric_match) plus answer format (a bare number,
// regex_match) — by at least 0.5 of its 2.0 maximum. The same run at lr 0 must not: the rise
// comes from training on the teacher's scores, not from evaluation.

import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { combine } from '../../data/rewards/index.ts';
import { createTask, type Task } from '../../data/tasks/registry.ts';
import { loadTokenizer } from '../../data/tokenizer/hf.ts';
import { initModelDir, tinyConfig } from '../../student/model/init.ts';
import { loadModelDir, saveModelDir } from '../../student/model/weights.ts';
import { LocalTeacher } from '../../teacher/local.ts';
import { evaluate, isCorrect } from '../eval.ts';
import { runOpd } from './opd.ts';
import { runSft, tokenizeSft } from './sft.ts';
import { TINY_SETTINGS } from './tiny-job.ts';

test('held-out reward rises over a short OPD run with a teacher, and not at lr 0', { timeout: 180_000 }, async () => {
  const root = mkdtempSync(join(tmpdir(), 'opd-learn-'));
  const arith = createTask('arithmetic', { digits: 1, ops: ['+'] });
  const task: Task = { ...arith, reward: [...arith.reward, { type: 'regex_match', pattern: '^\\d+$', weight: 1 }] };
  const heldOut = { n: 8, seed: 0, maxNewTokens: 4, runtime: { threads: 1 } }; // the whole test split

  const init = await initModelDir(join(root, 'teacher-init'), tinyConfig(), 1);
  const tok = await loadTokenizer(join(root, 'teacher-init'));
  const demos = task.generate('train', 90, 0).map((r) => ({ prompt: r.prompt, completion: task.demonstration(r), where: r.id }));
  const sft = await runSft(init, tokenizeSft(tok, demos, 64), tok.padTokenId ?? 0, { steps: 800, lr: 3e-3, warmup: 10, batchSize: 32, seed: 0, weightDecay: 0, maxGradNorm: 1, runtime: { threads: 1 } });
  await saveModelDir(join(root, 'teacher'), { config: init.config, weights: sft.weights }, { tokenizerFrom: join(root, 'teacher-init') });
  const teacherEval = await evaluate(await loadModelDir(join(root, 'teacher')), tok, task, heldOut);
  assert.ok(teacherEval.accuracy >= 0.5, `the teacher solves held-out problems (${teacherEval.accuracy})`);

  const student = await initModelDir(join(root, 'student'), tinyConfig({ hidden_size: 32, intermediate_size: 64 }), 2);
  const before = await evaluate(student, tok, task, heldOut);
  const teacher = await LocalTeacher.open(join(root, 'teacher'), { threads: 1 });
  const distil = async (lr: number) => {
    const r = await runOpd({
      student: { config: student.config, weights: student.weights, tokenizer: tok }, teacher, prompts: task.generate('train', 90, 1),
      reward: await combine(task.reward), correct: (rec, c) => isCorrect(c, rec.answer),
      settings: { ...TINY_SETTINGS, steps: 60, promptsPerStep: 16, sampling: { groupSize: 4, maxNewTokens: 4, temperature: 1 }, advantages: { ...TINY_SETTINGS.advantages, blend: { mode: 'replace' } }, lr },
    });
    const after = await evaluate({ config: student.config, weights: new Map(Object.entries(r.trainer.params()) as Array<[string, Float32Array]>) }, tok, task, heldOut);
    await r.close();
    return after.meanReward;
  };
  try {
    const trained = await distil(3e-3);
    assert.ok(trained - before.meanReward >= 0.5, `held-out reward ${before.meanReward} -> ${trained}: rose by at least 0.5`);
    const control = await distil(0);
    assert.ok(control - before.meanReward < 0.5, `lr 0: held-out reward ${before.meanReward} -> ${control} must not rise by 0.5`);
  } finally {
    await teacher.close();
  }
});
