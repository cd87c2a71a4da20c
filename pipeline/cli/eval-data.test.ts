// `opd eval` on a prompt file with a user reward module and through a run config, and
// `opd generate --input`: each CLI's numbers are checked against a recomputation, with the reward
// module itself, from the completions it wrote (--out) — not against hard-coded values.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { before, test } from 'node:test';
import { holdOut } from '../../data/sources/index.ts';
import { createTask } from '../../data/tasks/registry.ts';
import type { TaskRecord } from '../../data/tasks/types.ts';
import type { EvalResult, EvalSample } from '../eval.ts';
import { tinyModels } from '../recipes/tiny-job.ts';
import { opd } from './opd-bin.ts';


const root = mkdtempSync(join(tmpdir(), 'opd-eval-data-'));
const task = createTask('arithmetic', { digits: 1, ops: ['+'] });
const records: TaskRecord[] = task.generate('train', 12, 0).map(({ prompt, answer }, i) => ({ id: `r${i}`, prompt, answer }));
const dataFile = join(root, 'data.jsonl');
writeFileSync(dataFile, records.map((r) => JSON.stringify(r)).join('\n') + '\n');
const rewardFile = join(root, 'reward.mjs');
writeFileSync(rewardFile, 'export default (prompt, completion, record) => completion.trim().split(/\\s+/)[0] === record.answer ? 1 : /\\d/.test(completion) ? 0.5 : 0;\n');
let teacher: string;
let reward: (prompt: string, completion: string, record: TaskRecord) => number;

before(async () => {
  teacher = (await tinyModels(join(root, 'models'))).teacher;
  reward = ((await import(pathToFileURL(rewardFile).href)) as { default: typeof reward }).default;
});

const readJsonl = <T>(file: string): T[] => readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as T);

/** The printed result equals accuracy (reward ≥ threshold) and mean reward recomputed from the --out file. */
function assertRecomputed(out: EvalResult, file: string, threshold: number, ids: readonly string[]): EvalSample[] {
  const rows = readJsonl<EvalSample>(file);
  assert.deepEqual(rows.map((r) => r.id), ids);
  const rewards = rows.map((r) => reward(r.prompt, r.completion, { id: r.id, prompt: r.prompt, answer: r.answer }));
  rows.forEach((r, i) => assert.equal(r.reward, rewards[i], r.id));
  assert.equal(out.n, ids.length);
  assert.equal(out.accuracy, rewards.filter((x) => x >= threshold).length / rows.length);
  assert.ok(Math.abs(out.meanReward - rewards.reduce((a, b) => a + b, 0) / rows.length) < 1e-12);
  return rows;
}

test('opd eval --data --reward: accuracy and mean reward of the completions it wrote; batching changes nothing', { timeout: 120_000 }, async () => {
  const args = ['eval', '--model', teacher, '--data', dataFile, '--reward', rewardFile, '--threshold', '0.5', '--max-new-tokens', '4', '--threads', '1', '--json'];
  const a = await opd(...args, '--out', join(root, 'a.jsonl'));
  assert.equal(a.code, 0, a.stderr);
  const out = JSON.parse(a.stdout) as EvalResult & { accuracy_rule: string };
  assert.equal(out.accuracy_rule, 'reward >= 0.5');
  const rows = assertRecomputed(out, join(root, 'a.jsonl'), 0.5, records.map((r) => r.id));
  assert.ok(rows.some((r) => r.reward > 0), 'the SFT-trained teacher earns some reward on sums it was trained on');

  const b = await opd(...args, '--batch-size', '5', '--out', join(root, 'b.jsonl'));
  assert.equal(b.code, 0, b.stderr);
  assert.equal(readFileSync(join(root, 'b.jsonl'), 'utf8'), readFileSync(join(root, 'a.jsonl'), 'utf8'));

  const missing = await opd('eval', '--model', teacher, '--data', dataFile);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /--reward is required with --data/);
});

test('opd eval --config: the held-out fraction, rewards and threshold the run config names', { timeout: 120_000 }, async () => {
  const config = {
    run: { seed: 3, evalPrompts: 2, accuracyThreshold: 0.5 },
    student: teacher,
    teachers: [],
    algo: { blend: { mode: 'grpo' } },
    data: { path: dataFile, test: 0.25 },
    rewards: [{ type: 'module', path: rewardFile }],
    rollout: { maxNewTokens: 4 },
  };
  writeFileSync(join(root, 'run.json'), JSON.stringify(config));
  const r = await opd('eval', '--model', teacher, '--config', join(root, 'run.json'), '--threads', '1', '--json', '--out', join(root, 'c.jsonl'));
  assert.equal(r.code, 0, r.stderr);
  const held = holdOut(records, 0.25, 3).test.slice(0, 2).map((x) => x.id);
  assertRecomputed(JSON.parse(r.stdout) as EvalResult, join(root, 'c.jsonl'), 0.5, held);
});

test('opd generate --input: one JSON line per input record, in order, as --prompt generates them', { timeout: 120_000 }, async () => {
  const input = join(root, 'in.jsonl');
  writeFileSync(input, [{ id: 'x', prompt: '1+2=' }, { prompt: '3+4=' }, { prompt: '5+1=', answer: '6' }].map((r) => JSON.stringify(r)).join('\n') + '\n');
  const common = ['--model', teacher, '--max-new-tokens', '4', '--threads', '1'];
  const r = await opd('generate', ...common, '--input', input, '--batch-size', '2');
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { id: string; prompt: string; completion: string; truncated: boolean });
  assert.deepEqual(lines.map((l) => [l.id, l.prompt]), [['x', '1+2='], ['in.jsonl:2', '3+4='], ['in.jsonl:3', '5+1=']]);
  const ref = await opd('generate', ...common, '--prompt', '1+2=', '--prompt', '3+4=', '--prompt', '5+1=', '--json');
  assert.equal(ref.code, 0, ref.stderr);
  assert.deepEqual(lines.map((l) => l.completion), ref.stdout.trim().split('\n').map((l) => (JSON.parse(l) as { completion: string }).completion));

  writeFileSync(input, '{"prompt": "1+2="}\n{"prompt": 7}\n');
  const bad = await opd('generate', ...common, '--input', input);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /line 2: field "prompt" must be a string/);
  assert.equal(bad.stdout, '', 'nothing is generated when a record is malformed');
});
