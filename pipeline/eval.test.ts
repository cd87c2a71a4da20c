// evaluate() on a tiny byte-level model SFT'd for a few dozen steps on one-digit addition: the
// accuracy, mean reward and per-sample verdicts must agree with an independent re-check of the
// returned completions, and must not depend on batching or on who owns the Generator. isCorrect
// on hand-written completions pins the exact-answer rule. One `opd eval --json` run checks the CLI.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, test } from 'node:test';
import { promisify } from 'node:util';
import { Rng } from '../engine/rng.ts';
import { createTask } from '../data/tasks/registry.ts';
import type { TaskRecord } from '../data/tasks/types.ts';
import { ByteTokenizer, saveByteTokenizer } from '../data/tokenizer/byte.ts';
import { Generator } from '../student/generate/generate.ts';
import { parseConfig } from '../student/model/config.ts';
import { initModelDir, initWeights, tinyConfig } from '../student/model/init.ts';
import { weightFeeds } from '../student/model/runner.ts';
import { type ModelDir, saveModelDir } from '../student/model/weights.ts';
import { type EvalResult, evaluate, isCorrect } from './eval.ts';
import { runSft, tokenizeSft } from './recipes/sft.ts';

const tok = new ByteTokenizer();
const TASK_CONFIG = { digits: 1, ops: ['+'], testFraction: 0.5 };
const task = createTask('arithmetic', TASK_CONFIG);
const runtime = { threads: 1 };
let model: ModelDir;
let train: TaskRecord[];

before(async () => {
  const config = parseConfig(tinyConfig({ hidden_size: 32, intermediate_size: 64, num_hidden_layers: 1, max_position_embeddings: 32 }));
  train = task.generate('train', 40, 0);
  const examples = tokenizeSft(tok, train.map((r) => ({ prompt: r.prompt, completion: task.demonstration(r), where: r.id })), 32);
  const init: ModelDir = { dir: '(memory)', config, weights: initWeights(config, 0) };
  const { weights } = await runSft(init, examples, tok.padTokenId, { steps: 40, lr: 1e-2, warmup: 5, batchSize: 16, seed: 0, weightDecay: 0, maxGradNorm: 1, runtime });
  model = { ...init, weights };
});

/** The exact-answer rule re-derived by hand: text up to "\n" or "<|", trimmed, equal digits. */
function recheck(completion: string, answer: string): boolean {
  const cut = completion.split('\n')[0]!.split('<|')[0]!.trim();
  return /^-?\d+$/.test(cut) && Number(cut) === Number(answer);
}

function assertConsistent(r: EvalResult, n: number): void {
  assert.equal(r.n, n);
  assert.equal(r.samples.length, n, 'keepSamples >= n keeps every sample');
  assert.ok(r.accuracy >= 0 && r.accuracy <= 1);
  const correct = r.samples.filter((s) => recheck(s.completion, s.answer)).length;
  for (const s of r.samples) assert.equal(s.correct, recheck(s.completion, s.answer), `${s.prompt} -> ${JSON.stringify(s.completion)}`);
  assert.equal(r.correct, correct);
  assert.equal(r.accuracy, correct / n);
  // numeric_match scores a plain correct answer 1 and any wrong number 0
  for (const s of r.samples) if (s.correct) assert.equal(s.reward, 1);
  assert.ok(Math.abs(r.meanReward - r.samples.reduce((a, s) => a + s.reward, 0) / n) < 1e-12);
  assert.deepEqual(Object.keys(r.byTag), ['add']);
  assert.equal(r.byTag.add!.accuracy, r.accuracy);
}

test('evaluate: accuracy and reward agree with an independent check of the completions', async () => {
  const onTrain = await evaluate(model, tok, task, { n: 0, seed: 0, records: train, keepSamples: 100, runtime });
  assertConsistent(onTrain, train.length);
  assert.ok(onTrain.correct > 0, `the SFT'd model should answer some of its own training problems (got ${JSON.stringify(onTrain.samples.slice(0, 5))})`);
  const onTest = await evaluate(model, tok, task, { n: 30, seed: 0, keepSamples: 100, runtime });
  assertConsistent(onTest, 30);
  const trainPrompts = new Set(train.map((r) => r.prompt));
  assert.ok(onTest.samples.every((s) => !trainPrompts.has(s.prompt)), 'the test split is held out');
});

test('evaluate: batch size and a caller-owned Generator do not change the result', async () => {
  const a = await evaluate(model, tok, task, { n: 30, seed: 0, batchSize: 64, keepSamples: 100, runtime });
  const feeds = weightFeeds(model.config, model.weights);
  const gen = await Generator.create(model.config, () => feeds, runtime);
  try {
    const b = await evaluate(gen, tok, task, { n: 30, seed: 0, batchSize: 7, keepSamples: 3, runtime });
    assert.deepEqual(b.samples, a.samples.slice(0, 3));
    assert.equal(b.accuracy, a.accuracy);
    assert.equal(b.meanReward, a.meanReward);
    // still open: evaluate leaves a passed-in Generator to its owner
    assert.equal((await gen.generate([tok.encode('1+1=')], { maxNewTokens: 2, temperature: 0, stopTokenIds: [], rng: new Rng(0), padId: 0 })).length, 1);
  } finally {
    await gen.release();
  }
});

test('isCorrect: the answer part must be a plain number equal to the answer', () => {
  const yes: [string, string][] = [['357', '357'], [' 357 ', '357'], ['357\nbecause 300+57', '357'], ['357<|eos|>', '357'], ['-12', '-12'], ['3.0', '3'], ['0357', '357'], ['abc', 'abc']];
  const no: [string, string][] = [['35', '357'], ['3570', '357'], ['357abc', '357'], ['12 apples', '12'], ['', '0'], ['\n357', '357'], ['357 357', '357'], ['+357', '357'], ['abd', 'abc']];
  for (const [c, a] of yes) assert.equal(isCorrect(c, a), true, `${JSON.stringify(c)} vs ${a}`);
  for (const [c, a] of no) assert.equal(isCorrect(c, a), false, `${JSON.stringify(c)} vs ${a}`);
});

test('opd eval --json prints the same accuracy as evaluate() in process', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'opd-eval-'));
  await saveModelDir(dir, model);
  await saveByteTokenizer(dir);
  const bin = new URL('../bin/opd.mjs', import.meta.url).pathname;
  const args = ['eval', '--model', dir, '--task', 'arithmetic', '--task-config', JSON.stringify(TASK_CONFIG), '--n', '30', '--json', '--threads', '1'];
  const { stdout } = await promisify(execFile)(process.execPath, [bin, ...args]);
  const out = JSON.parse(stdout) as EvalResult & { task: string };
  const ref = await evaluate(model, tok, task, { n: 30, seed: 0, runtime });
  assert.equal(out.task, 'arithmetic');
  assert.equal(out.accuracy, ref.accuracy);
  assert.equal(out.meanReward, ref.meanReward);
  assert.deepEqual(out.samples, ref.samples);
});

test('opd eval --task: the default length fits the task\'s longest answer plus EOS (long_multiplication\'s 26-byte traces, not 16 tokens)', async () => {
  // room for a 6-token prompt and a 27-token answer
  const { dir } = await initModelDir(join(mkdtempSync(join(tmpdir(), 'opd-eval-long-')), 'm'), tinyConfig({ max_position_embeddings: 64 }), 3);
  const bin = new URL('../bin/opd.mjs', import.meta.url).pathname;
  const long = createTask('long_multiplication', {});
  // the byte tokenizer: one token per character of the demonstration
  const want = Math.max(...long.generate('test', 20, 0).map((r) => long.demonstration(r).length)) + 1;
  assert.ok(want > 16, `the task's answers are longer than the old default (${want})`);
  const run = async (...extra: string[]) => JSON.parse((await promisify(execFile)(process.execPath, [bin, 'eval', '--model', dir, '--task', 'long_multiplication', '--n', '20', '--json', '--threads', '1', ...extra])).stdout) as { max_new_tokens: number; n: number };
  assert.equal((await run()).max_new_tokens, want);
  assert.equal((await run('--max-new-tokens', '5')).max_new_tokens, 5, 'an explicit --max-new-tokens wins');
});
