// Held-out evaluation of a prompt file, end to end through `opd run`: a JSONL train file, a
// data.test file (or a fraction of the train file) and a user reward module. The eval_* metrics
// land at the run.evalEvery cadence; eval-before.json, the per-step metrics and summary.json equal
// accuracy (reward ≥ run.accuracyThreshold) and mean reward recomputed here, with the module itself,
// from the completions recorded in <run>/eval/; held-out records are never trained on; `opd compare`
// tabulates the same recomputed numbers.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { before, test } from 'node:test';
import { promisify } from 'node:util';
import { tableToRollouts } from '../../data/schemas.ts';
import { holdOut } from '../../data/sources/index.ts';
import { listShards, readShard } from '../../data/store/shards.ts';
import { createTask } from '../../data/tasks/registry.ts';
import type { TaskRecord } from '../../data/tasks/types.ts';
import { fmtMeanStd, meanStd } from '../compare.ts';
import { loadRunConfig, parseRunConfig } from '../config.ts';
import type { EvalSample } from '../eval.ts';
import { tinyModels, tinyRunConfig } from '../recipes/tiny-job.ts';
import { readMetrics } from '../rundir.ts';
import { startRun } from './commands/run.ts';

const root = mkdtempSync(join(tmpdir(), 'opd-heldout-'));
const task = createTask('arithmetic', { digits: 1, ops: ['+'] });
const strip = ({ meta: _m, tag: _t, ...r }: TaskRecord, id: string) => ({ ...r, id });
const trainRecords = task.generate('train', 16, 0).map((r, i) => strip(r, `tr${i}`));
const testRecords = task.generate('test', 6, 0).map((r, i) => strip(r, `te${i}`));
const jsonl = (name: string, rows: object[]) => (writeFileSync(join(root, name), rows.map((r) => JSON.stringify(r)).join('\n') + '\n'), join(root, name));
const trainFile = jsonl('train.jsonl', trainRecords);
const testFile = jsonl('test.jsonl', testRecords);
// 1 for the exact answer first, 0.5 for any other completion holding a digit, else 0
const rewardFile = join(root, 'reward.mjs');
writeFileSync(rewardFile, 'export default (prompt, completion, record) => completion.trim().split(/\\s+/)[0] === record.answer ? 1 : /\\d/.test(completion) ? 0.5 : 0;\n');
let models: { teacher: string; student: string };
let reward: (prompt: string, completion: string, record: TaskRecord) => number;

before(async () => {
  models = await tinyModels(join(root, 'models'));
  reward = ((await import(pathToFileURL(rewardFile).href)) as { default: typeof reward }).default;
});

const config = (name: string, run: Record<string, unknown>, data: Record<string, unknown>) =>
  parseRunConfig({ ...tinyRunConfig(root, models, { run: { name, ...run } }), data: { path: trainFile, ...data }, rewards: [{ type: 'module', path: rewardFile }] }, name);

const readJsonl = <T>(file: string): T[] => readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as T);

/** Accuracy and mean reward of one recorded evaluation, recomputed with the reward module itself. */
function recompute(file: string, threshold: number, expectIds: readonly string[], score = reward) {
  const rows = readJsonl<EvalSample>(file);
  assert.deepEqual(rows.map((r) => r.id), expectIds, `${file}: the held-out records, in order`);
  const rewards = rows.map((r) => score(r.prompt, r.completion, { id: r.id, prompt: r.prompt, answer: r.answer }));
  rows.forEach((r, i) => assert.equal(r.reward, rewards[i], `${file}: recorded reward of ${r.id}`));
  rows.forEach((r, i) => assert.equal(r.correct, rewards[i]! >= threshold, `${file}: ${r.id} is correct iff its reward reaches ${threshold}`));
  return { accuracy: rewards.filter((x) => x >= threshold).length / rows.length, reward: rewards.reduce((a, b) => a + b, 0) / rows.length, rewards };
}

function trainedIds(runDir: string): Set<string> {
  const shards = join(runDir, 'shards');
  return new Set(listShards(shards).flatMap((s) => tableToRollouts(readShard(shards, s.file)).map((r) => r.promptId)));
}

test('opd run on a prompt file with data.test: eval_* at the cadence, eval-before.json and summary.json equal a recomputation', { timeout: 180_000 }, async () => {
  const threshold = 0.5;
  const c = config('file-test', { steps: 4, evalEvery: 2, evalPrompts: 5, checkpointEvery: 4, accuracyThreshold: threshold }, { test: testFile });
  const s = await startRun(c, { quiet: true });
  const dir = s.run_dir;
  const ids = testRecords.slice(0, 5).map((r) => r.id);

  const metrics = readMetrics(dir);
  assert.deepEqual(metrics.filter((m) => 'eval_accuracy' in m).map((m) => m.step), [2, 4], 'evaluated every 2 steps');
  for (const m of metrics) assert.equal(typeof m.accuracy, 'number', `step ${m.step}: training-batch accuracy under the same rule`);
  const rewardsSeen: number[] = [];
  for (const step of [2, 4]) {
    const m = metrics.find((x) => x.step === step)!;
    const r = recompute(join(dir, 'eval', `step-00000${step}.jsonl`), threshold, ids);
    assert.equal(m.eval_accuracy, r.accuracy, `step ${step} eval_accuracy`);
    assert.ok(Math.abs((m.eval_reward as number) - r.reward) < 1e-12, `step ${step} eval_reward`);
    rewardsSeen.push(...r.rewards);
  }

  const before = JSON.parse(readFileSync(join(dir, 'eval-before.json'), 'utf8')) as Record<string, number>;
  const student = recompute(join(dir, 'eval', 'before.jsonl'), threshold, ids);
  const teacher = recompute(join(dir, 'eval', 'teacher-t.jsonl'), threshold, ids);
  rewardsSeen.push(...student.rewards, ...teacher.rewards);
  assert.deepEqual(before, { student_before_accuracy: student.accuracy, student_before_reward: student.reward, teacher_accuracy: teacher.accuracy, teacher_reward: teacher.reward });
  assert.ok(teacher.rewards.some((x) => x > 0), 'the SFT-trained teacher earns some reward on held-out sums');

  const summary = JSON.parse(readFileSync(join(dir, 'summary.json'), 'utf8')) as Record<string, number>;
  const last = metrics.at(-1)!;
  assert.equal(summary.student_after_accuracy, last.eval_accuracy);
  assert.equal(summary.student_after_reward, last.eval_reward);
  assert.equal(summary.student_before_accuracy, student.accuracy);
  assert.equal(summary.teacher_accuracy, teacher.accuracy);
  assert.equal(summary.eval_prompts, 5);
  assert.equal(summary.accuracy_threshold, threshold);

  const trained = trainedIds(dir);
  assert.ok(trained.size > 0 && [...trained].every((id) => id.startsWith('tr')), `only train records are trained on: ${[...trained]}`);
  assert.ok(existsSync(join(dir, 'report', 'accuracy.png')));
  const html = readFileSync(join(dir, 'report.html'), 'utf8');
  const chart = html.slice(html.indexOf('aria-label="accuracy:'), html.indexOf('</svg>', html.indexOf('aria-label="accuracy:')));
  assert.equal((chart.match(/<polyline /g) ?? []).length, 2, 'the accuracy chart draws the training batch and the held-out evaluations');
});

test('opd run with data.test as a fraction: the held-out records follow the seed and are never trained on', { timeout: 180_000 }, async () => {
  const c = config('file-fraction', { steps: 3, evalEvery: 0, evalPrompts: 50, checkpointEvery: 3 }, { test: 0.25 });
  const s = await startRun(c, { quiet: true });
  const split = holdOut(trainRecords, 0.25, c.run.seed);
  const held = split.test.map((r) => r.id);
  assert.equal(held.length, 4);
  const r = recompute(join(s.run_dir, 'eval', 'before.jsonl'), 1, held);
  assert.equal(s.student_before_accuracy, r.accuracy);
  assert.equal(s.student_before_reward, r.reward);
  const metrics = readMetrics(s.run_dir);
  assert.deepEqual(metrics.filter((m) => 'eval_accuracy' in m).map((m) => m.step), [3], 'evalEvery 0: only after the last step');
  const after = recompute(join(s.run_dir, 'eval', 'step-000003.jsonl'), 1, held);
  assert.equal(s.student_after_accuracy, after.accuracy);
  assert.equal(s.accuracy_threshold, 1, 'default threshold');
  const trained = trainedIds(s.run_dir);
  assert.ok(trained.size > 0 && held.every((id) => !trained.has(id)), 'no held-out record is trained on');
  assert.ok([...trained].every((id) => split.train.some((t) => t.id === id)));
});

test('opd compare on a prompt file: the table holds the held-out accuracy and reward of each run', { timeout: 180_000 }, async () => {
  const raw = { ...tinyRunConfig(root, models, { run: { name: 'cmp', steps: 2, evalEvery: 1, evalPrompts: 6, checkpointEvery: 2 } }), student: models.teacher };
  writeFileSync(join(root, 'cmp.json'), JSON.stringify({ ...raw, data: { path: trainFile, test: testFile }, rewards: [{ type: 'module', path: rewardFile }] }));
  const out = join(root, 'cmp');
  const bin = new URL('../../bin/opd.mjs', import.meta.url).pathname;
  await promisify(execFile)(process.execPath, [bin, 'compare', join(root, 'cmp.json'), '--modes', 'grpo', '--seeds', '2', '--out', out]);
  const ids = testRecords.map((r) => r.id);
  const at = (step: number) => [0, 1].map((seed) => recompute(join(out, `grpo-seed${seed}`, 'eval', `step-00000${step}.jsonl`), 1, ids));
  const cells = readFileSync(join(out, 'table.md'), 'utf8').trim().split('\n')[2]!.split('|').slice(1, -1).map((c) => c.trim());
  const expected = [at(1).map((r) => r.accuracy), at(2).map((r) => r.accuracy), at(2).map((r) => r.accuracy), at(2).map((r) => r.reward)].map((xs) => fmtMeanStd(meanStd(xs)));
  assert.deepEqual(cells.slice(0, 6), ['grpo', '2', ...expected], 'acc @1, acc @2, acc final, reward final');
  assert.ok(at(2).some((r) => r.rewards.some((x) => x > 0)), 'the SFT-trained student earns some reward');
  for (const f of ['accuracy-vs-steps.png', 'reward-vs-steps.png']) assert.deepEqual([...readFileSync(join(out, f)).subarray(1, 4)], [0x50, 0x4e, 0x47], `${f} is a PNG`);
});

test('examples/prompt-file/run.json: a prompt file, a held-out file and a reward module, as a user would start', { timeout: 120_000 }, async () => {
  const c = loadRunConfig('examples/prompt-file/run.json', ['run.steps=2', 'run.evalEvery=1', `run.outDir=${JSON.stringify(join(root, 'example'))}`, 'runtime.threads=1']);
  const s = await startRun(c, { quiet: true });
  const ids = readFileSync('examples/prompt-file/test.jsonl', 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as TaskRecord).id);
  const own = ((await import(pathToFileURL('examples/prompt-file/reward.mjs').href)) as { default: typeof reward }).default;
  const after = recompute(join(s.run_dir, 'eval', 'step-000002.jsonl'), 1, ids, own);
  assert.deepEqual([s.eval_prompts, s.student_after_accuracy, s.student_after_reward], [ids.length, after.accuracy, after.reward]);
});
