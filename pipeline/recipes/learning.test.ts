// The student learns from the teacher (issue #5 acceptance). Built-in task: one-digit addition with
// 30% of its 100 problems held out (26 test prompts, 74 train). A teacher SFT'd on the 74 train
// problems must answer ≥ 80% of the test split; a student SFT'd briefly on 30 of them must not
// (≤ 35%). 600 GRPO-OPD steps with blend `replace` (the teacher's per-token scores are the only
// learning signal; rewards are only logged) on train prompts must then raise the student's
// held-out reward, the task's own numeric_match, by at least 0.15 (4 of 26 problems), and its
// exact accuracy by as much. The same run at lr 0 must not: the rise comes from training on the
// teacher's scores, not from the evaluation.
//
// The promise is about the method, not one trajectory: three OPD seeds run, and the MEDIAN rise must
// reach the margin. One seed is not enough: an RL run is chaotic, and a last-bit change in the
// teacher's scores (they once came from packed ONNX Runtime runs, now from one sequence per run,
// R18) sent seed 0 from 0.692 to a collapse at 0.077 while seeds 1 and 2 still rose.
//
// Everything is seeded and greedy-evaluated, so on one machine and thread count the numbers are
// fixed. Observed here (1 thread): teacher 0.885, student 0.231 → 0.077 / 0.654 / 0.615 after OPD
// with seeds 0 / 1 / 2 (median +0.38), 0.231 at lr 0. With the untrained teacher-init as teacher the
// same run drops the student to 0.000. About 45 s on one core (teacher SFT ~7 s, each 600-step OPD
// run ~10 s).

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { combine } from '../../data/rewards/index.ts';
import { createTask, type TaskRecord } from '../../data/tasks/registry.ts';
import type { Tokenizer } from '../../data/tokenizer/types.ts';
import { loadTokenizer } from '../../data/tokenizer/hf.ts';
import { initModelDir, tinyConfig } from '../../student/model/init.ts';
import { type ModelDir, saveModelDir } from '../../student/model/weights.ts';
import { openTeacher } from '../../teacher/open.ts';
import { evaluate, isCorrect } from '../eval.ts';
import { runOpd } from './opd.ts';
import { runSft, tokenizeSft } from './sft.ts';
import { TINY_SETTINGS } from './tiny-job.ts';

const MARGIN = 0.15; // absolute rise of the held-out mean reward (max 1) and accuracy
const THREADS = { threads: 1 };

const task = createTask('arithmetic', { digits: 1, ops: ['+'], testFraction: 0.3 });
const heldOut = { n: 26, seed: 0, maxNewTokens: 4, runtime: THREADS }; // the whole test split

/** `model` SFT'd on the demonstrations of `records` (lr 3e-3, seed 0). */
async function sft(model: ModelDir, tok: Tokenizer, records: readonly TaskRecord[], steps: number, batchSize: number): Promise<Pick<ModelDir, 'config' | 'weights'>> {
  const demos = records.map((r) => ({ prompt: r.prompt, completion: task.demonstration(r), where: r.id }));
  const o = { steps, lr: 3e-3, warmup: 10, batchSize, seed: 0, weightDecay: 0, maxGradNorm: 1, runtime: THREADS };
  const { weights } = await runSft(model, tokenizeSft(tok, demos, 64), tok.padTokenId ?? 0, o);
  return { config: model.config, weights };
}

test('held-out reward rises over short OPD runs with a teacher (median of 3 seeds), and not at lr 0', { timeout: 1_200_000 }, async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'opd-learn-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  const train = task.generate('train', 74, 0); // the whole train split
  const teacherInit = await initModelDir(join(root, 'teacher-init'), tinyConfig(), 2);
  const tok = await loadTokenizer(join(root, 'teacher-init')); // the byte tokenizer every tiny model shares
  const teacherModel = await sft(teacherInit, tok, train, 1500, 32);
  await saveModelDir(join(root, 'teacher'), teacherModel, { tokenizerFrom: join(root, 'teacher-init') });
  const teacherEval = await evaluate(teacherModel, tok, task, heldOut);
  assert.ok(teacherEval.accuracy >= 0.8, `the teacher solves the held-out split (accuracy ${teacherEval.accuracy})`);

  const studentInit = await initModelDir(join(root, 'student-init'), tinyConfig({ hidden_size: 32, intermediate_size: 64 }), 2);
  const student = await sft(studentInit, tok, train.slice(0, 30), 100, 16);
  const before = await evaluate(student, tok, task, heldOut);
  assert.ok(before.accuracy <= 0.35, `the student does not (accuracy ${before.accuracy})`);

  const { teacher } = await openTeacher({ kind: 'local', path: join(root, 'teacher') }, THREADS);
  const distil = async (lr: number, seed = 0) => {
    const r = await runOpd({
      // a fresh copy each run: the trainer adopts (and updates) the arrays it is given
      student: { config: student.config, weights: new Map([...student.weights].map(([k, v]) => [k, v.slice()])), tokenizer: tok },
      teacher,
      prompts: task.generate('train', 74, 1),
      reward: await combine(task.reward),
      correct: (rec, c) => isCorrect(c, rec.answer),
      settings: {
        ...TINY_SETTINGS,
        steps: 600,
        promptsPerStep: 16,
        sampling: { groupSize: 4, maxNewTokens: 4, temperature: 1 },
        advantages: { ...TINY_SETTINGS.advantages, blend: { mode: 'replace' } },
        lambda: { kind: 'constant', lambda: 1 },
        lr,
        seed,
        runtime: THREADS,
      },
    });
    try {
      return await evaluate({ config: student.config, weights: new Map(Object.entries(r.trainer.params()) as Array<[string, Float32Array]>) }, tok, task, heldOut);
    } finally {
      await r.close();
    }
  };
  try {
    const runs = [];
    for (const seed of [0, 1, 2]) runs.push(await distil(2e-3, seed));
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[1]!;
    const [reward, accuracy] = [median(runs.map((r) => r.meanReward)), median(runs.map((r) => r.accuracy))];
    const rise = `reward ${before.meanReward.toFixed(3)} -> ${runs.map((r) => r.meanReward.toFixed(3)).join(' / ')} (median ${reward.toFixed(3)}), accuracy ${before.accuracy.toFixed(3)} -> median ${accuracy.toFixed(3)}`;
    t.diagnostic(`teacher accuracy ${teacherEval.accuracy.toFixed(3)}; student held-out over OPD seeds 0/1/2: ${rise}`);
    assert.ok(reward - before.meanReward >= MARGIN, `held-out ${rise}: the median reward must rise by ${MARGIN}`);
    assert.ok(accuracy - before.accuracy >= MARGIN, `held-out ${rise}: the median accuracy must rise by ${MARGIN}`);
    const control = await distil(0);
    t.diagnostic(`lr 0: held-out reward ${control.meanReward.toFixed(3)}, accuracy ${control.accuracy.toFixed(3)}`);
    assert.ok(control.meanReward - before.meanReward < MARGIN, `lr 0: held-out reward ${before.meanReward.toFixed(3)} -> ${control.meanReward.toFixed(3)} must not rise by ${MARGIN}`);
  } finally {
    await teacher.close();
  }
});
