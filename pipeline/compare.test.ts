// opd compare: the aggregation against hand-computed values, and the command end to end at a tiny
// size (every mode, two seeds): table structure, finite numbers, plots, and no rerun on a second call.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { accuracySeries, fmtMeanStd, meanStd, modeRows, runResult, tableMarkdown } from './compare.ts';
import { tinyModels, tinyRunConfig } from './recipes/tiny-job.ts';

test('meanStd: sample std (n − 1), none for one value', () => {
  const r = meanStd([0.2, 0.4, 0.6]);
  assert.ok(Math.abs(r.mean - 0.4) < 1e-15);
  assert.ok(Math.abs(r.std! - 0.2) < 1e-15, 'sqrt((0.04 + 0 + 0.04) / 2) = 0.2');
  assert.deepEqual(meanStd([0.5]), { mean: 0.5, n: 1 });
  assert.equal(fmtMeanStd(meanStd([0.5])), '0.500 ± —');
  assert.equal(fmtMeanStd(undefined), '—');
});

test('runResult, modeRows and the series: curves from metrics, hand-computed aggregates', () => {
  const metrics = [
    { step: 1, prompt_tokens: 10, completion_tokens: 5, teacher_kl: 3 },
    { step: 2, prompt_tokens: 10, completion_tokens: 7, teacher_kl: 1, eval_accuracy: 0.5, eval_reward: 0.6 },
  ];
  const summary = { steps: 2, wall_s: 4, student_before_accuracy: 0.25, student_before_reward: 0.3, student_after_accuracy: 0.5, student_after_reward: 0.6 };
  const a = runResult('additive', 0, '/x', summary, metrics);
  assert.deepEqual(a.curve, [{ step: 0, tokens: 0, accuracy: 0.25, reward: 0.3 }, { step: 2, tokens: 32, accuracy: 0.5, reward: 0.6 }]);
  assert.equal(a.teacherKl, 1, 'last 10 % of 2 steps = the last step');
  const b = runResult('additive', 1, '/y', { ...summary, wall_s: 6, student_after_accuracy: 0.7 }, [metrics[0]!, { ...metrics[1]!, eval_accuracy: 0.7 }]);
  const g = runResult('grpo', 0, '/z', summary, metrics.map(({ teacher_kl: _k, ...m }) => m));
  const rows = modeRows([a, b, g], [2]);
  assert.deepEqual(rows.map((r) => r.mode), ['additive', 'grpo']);
  assert.ok(Math.abs(rows[0]!.accuracyAt[0]!.mean - 0.6) < 1e-12 && Math.abs(rows[0]!.accuracyAt[0]!.std! - Math.SQRT1_2 * 0.2) < 1e-12);
  assert.equal(rows[0]!.wallSeconds.mean, 5);
  assert.equal(rows[1]!.teacherKl, undefined);
  const md = tableMarkdown(rows, [2]);
  assert.match(md, /^\| mode \| seeds \| acc @2 \| acc final \| reward final \| teacher-KL \(last 10%\) \| student tokens \| FLOPs student \+ teacher \| wall s \|\n/);
  assert.match(md, /\| grpo \| 1 \| 0\.500 ± — \| 0\.500 ± — \| 0\.600 ± — \| — \| 32 \| — \| 4 ± — \|/);
  const series = accuracySeries([a, b, g], 'tokens');
  assert.deepEqual(series[0]!.points.map((p) => p[0]), [0, 32]);
  assert.equal(series[0]!.band!.length, 2);
  assert.deepEqual(accuracySeries([g], 'step', 'reward')[0]!.points, [[0, 0.3], [2, 0.6]], 'mean held-out reward per step');
});

test('FLOPs per step: 2·N per sampled token, 6·N per trained token and epoch, 2·N_T per scored or teacher-sampled token', () => {
  // hand-computed: N_s = 1000, N_T = 10000, 15 + 17 tokens over two steps
  const metrics = [
    { step: 1, prompt_tokens: 10, completion_tokens: 5 },
    { step: 2, prompt_tokens: 10, completion_tokens: 7, eval_accuracy: 0.5, eval_reward: 0.5 },
  ];
  const summary = { steps: 2, wall_s: 1, student_before_accuracy: 0.1, student_before_reward: 0.1 };
  const opd = runResult('additive', 0, '/a', summary, metrics, { studentParams: 1000, teacherParams: 10000, epochs: 2, sampler: 'student', teacherScores: true });
  assert.deepEqual(opd.flops, { student: (2 + 6 * 2) * 1000 * 32, teacher: 2 * 10000 * 32 });
  assert.deepEqual(opd.curve.map((p) => p.flops), [0, 14 * 1000 * 32 + 20000 * 32]);
  const sft = runResult('sft-teacher', 0, '/b', summary, metrics, { studentParams: 1000, teacherParams: 10000, epochs: 1, sampler: 'teacher', teacherScores: false });
  assert.deepEqual(sft.flops, { student: 6 * 1000 * 32, teacher: 2 * 10000 * 32 });
  const grpo = runResult('grpo', 0, '/c', summary, metrics, { studentParams: 1000, epochs: 1, sampler: 'student', teacherScores: false });
  assert.deepEqual(grpo.flops, { student: 8 * 1000 * 32, teacher: 0 });
  const http = runResult('replace', 0, '/d', summary, metrics, { studentParams: 1000, epochs: 1, sampler: 'student', teacherScores: true });
  assert.ok(Number.isNaN(http.flops!.teacher), 'an unknown teacher size is not a number, not 0');
  assert.deepEqual(accuracySeries([http], 'flops')[0]!.points, [[0, 0.1]], 'points without a known FLOPs value are left off the FLOPs axis');
  assert.match(tableMarkdown(modeRows([opd, grpo], [2]), [2]), /\| grpo \| 1 \|.*\| 2\.56e\+5 \+ 0 \|/);
});

test('opd compare runs every mode × seed, writes table, results and plots, and reruns nothing', { timeout: 240_000 }, async () => {
  const root = mkdtempSync(join(tmpdir(), 'opd-compare-'));
  const m = await tinyModels(join(root, 'models'));
  const config = tinyRunConfig(root, m, { run: { name: 'tiny', steps: 2, evalEvery: 1, evalPrompts: 6, checkpointEvery: 2, keepCheckpoints: 1 }, data: { trainSize: 20 }, rollout: { groupSize: 2, promptsPerStep: 2 } });
  writeFileSync(join(root, 'c.json'), JSON.stringify(config));
  const bin = new URL('../bin/opd.mjs', import.meta.url).pathname;
  const out = join(root, 'cmp');
  const args = [bin, 'compare', join(root, 'c.json'), '--modes', 'grpo,replace,additive,loss,masked', '--seeds', '2', '--out', out];
  const r = await promisify(execFile)(process.execPath, args);
  const table = readFileSync(join(out, 'table.md'), 'utf8').trim().split('\n');
  assert.equal(table.length, 2 + 5, 'header, rule, one row per mode');
  assert.equal(table[0], '| mode | seeds | acc @1 | acc @2 | acc final | reward final | teacher-KL (last 10%) | student tokens | FLOPs student + teacher | wall s |');
  for (const [i, mode] of ['grpo', 'replace', 'additive', 'loss', 'masked'].entries()) {
    const cells = table[2 + i]!.split('|').slice(1, -1).map((c) => c.trim());
    assert.equal(cells[0], mode);
    assert.equal(cells[1], '2');
    for (const c of cells.slice(2, 6)) assert.match(c, /^-?\d+\.\d+ ± \d+\.\d+$/, `${mode}: "${c}" is a finite mean ± std`);
    assert.match(cells[8]!, mode === 'grpo' ? /^\d\.\d\de\+\d+ \+ 0$/ : /^\d\.\d\de\+\d+ \+ \d\.\d\de\+\d+$/, `${mode}: FLOPs of the student + the teacher`);
    assert.match(cells[9]!, /^\d+ ± \d+$/, `${mode}: wall seconds`);
    assert.match(cells[6]!, mode === 'grpo' ? /^—$/ : /^-?\d+\.\d+ ± \d+\.\d+$/, `${mode}: teacher-KL`);
    assert.match(cells[7]!, /^\d+$/);
  }
  assert.match(r.stdout, /\| masked \| 2 \|/, 'prints the table');
  assert.match(r.stderr, /using algo\.blend\.distillCoef=1, algo\.blend\.rewardThreshold=1/);
  const results = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as { runs: unknown[] };
  assert.equal(results.runs.length, 10);
  for (const f of ['accuracy-vs-steps.png', 'accuracy-vs-tokens.png', 'accuracy-vs-flops.png']) assert.deepEqual([...readFileSync(join(out, f)).subarray(1, 4)], [0x50, 0x4e, 0x47], `${f} is a PNG`);
  assert.ok(existsSync(join(out, 'score-cache')), 'one teacher score cache for every run');

  const mtime = statSync(join(out, 'additive-seed0', 'metrics.jsonl')).mtimeMs;
  const again = await promisify(execFile)(process.execPath, args);
  assert.equal((again.stderr.match(/already finished, reusing it/g) ?? []).length, 10);
  assert.equal(statSync(join(out, 'additive-seed0', 'metrics.jsonl')).mtimeMs, mtime);
  assert.equal(readFileSync(join(out, 'table.md'), 'utf8').trim().split('\n').length, 7);
});

test('opd compare shows progress while an arm runs: a line per step (off a terminal) naming the arm', { timeout: 120_000 }, async () => {
  const root = mkdtempSync(join(tmpdir(), 'opd-compare-progress-'));
  const m = await tinyModels(join(root, 'models'));
  const config = tinyRunConfig(root, m, { run: { name: 'p', steps: 3, evalEvery: 0, evalPrompts: 4, checkpointEvery: 3, keepCheckpoints: 1 }, rollout: { groupSize: 2, promptsPerStep: 2 } });
  writeFileSync(join(root, 'c.json'), JSON.stringify(config));
  const bin = new URL('../bin/opd.mjs', import.meta.url).pathname;
  const r = await promisify(execFile)(process.execPath, [bin, 'compare', join(root, 'c.json'), '--modes', 'grpo,additive', '--seeds', '1', '--out', join(root, 'cmp')]);
  for (const arm of ['grpo-seed0', 'additive-seed0'])
    for (const step of [1, 2, 3]) assert.match(r.stderr, new RegExp(`^compare: ${arm} step ${step}/3 reward `, 'm'), `${arm}: step ${step}\n${r.stderr}`);
  const order = ['compare: grpo-seed0 (3 steps)', 'compare: grpo-seed0 step 1/3', 'compare: grpo-seed0 step 3/3', 'compare: additive-seed0 (3 steps)', 'compare: additive-seed0 step 3/3'].map((s) => r.stderr.indexOf(s));
  assert.deepEqual([...order].sort((a, b) => a - b), order, 'the lines come while each arm runs, in order');
});

test('opd compare: the sft-teacher baseline runs at matched student compute, a top-k divergence as blend mode loss', { timeout: 240_000 }, async () => {
  const root = mkdtempSync(join(tmpdir(), 'opd-compare-sft-'));
  const m = await tinyModels(join(root, 'models'));
  const config = tinyRunConfig(root, m, { run: { name: 'tiny', steps: 3, evalEvery: 3, evalPrompts: 4, checkpointEvery: 3, keepCheckpoints: 1 }, data: { trainSize: 20 }, rollout: { groupSize: 2, promptsPerStep: 2 } });
  writeFileSync(join(root, 'c.json'), JSON.stringify(config));
  const bin = new URL('../bin/opd.mjs', import.meta.url).pathname;
  const out = join(root, 'cmp');
  await promisify(execFile)(process.execPath, [bin, 'compare', join(root, 'c.json'), '--modes', 'grpo,sft-teacher,topk_fkl', '--seeds', '1', '--out', out]);
  const frozen = (mode: string) => JSON.parse(readFileSync(join(out, `${mode}-seed0`, 'config.json'), 'utf8')) as { run: { steps: number }; algo: { objective: string; blend: { mode: string; divergence: string } } };
  assert.equal(frozen('sft-teacher').algo.objective, 'sft_teacher');
  assert.equal(frozen('sft-teacher').run.steps, 4, 'round(3 · 8/6): the student FLOPs of 3 OPD steps');
  assert.deepEqual([frozen('topk_fkl').algo.blend.mode, frozen('topk_fkl').algo.blend.divergence], ['loss', 'topk_fkl']);
  const results = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as { runs: { mode: string; tokens: number; flops: { student: number; teacher: number } }[] };
  const [grpo, sft] = [results.runs.find((r) => r.mode === 'grpo')!, results.runs.find((r) => r.mode === 'sft-teacher')!];
  // independent arithmetic from the model configs: tinyConfig's student and teacher matmul parameters
  const params = (dir: string) => {
    const c = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, number>;
    const [D, H, Hkv, F, L, V] = [c.hidden_size!, c.num_attention_heads!, c.num_key_value_heads!, c.intermediate_size!, c.num_hidden_layers!, c.vocab_size!];
    const Dh = c.head_dim ?? D / H;
    return L * (D * (H + 2 * Hkv) * Dh + H * Dh * D + 3 * D * F) + V * D;
  };
  assert.equal(grpo.flops.student, 8 * params(m.student) * grpo.tokens);
  assert.equal(grpo.flops.teacher, 0);
  assert.equal(sft.flops.student, 6 * params(m.student) * sft.tokens);
  assert.equal(sft.flops.teacher, 2 * params(m.teacher) * sft.tokens);
  assert.match(readFileSync(join(out, 'table.md'), 'utf8'), /\| sft-teacher \| 1 \|/);
});
