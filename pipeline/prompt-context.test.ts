// Issue 13 item 8: every prompt, train and held-out, is checked against what the student can take
// (max_position_embeddings − rollout.maxNewTokens) when the data loads, before any step, and a prompt
// over it is named by its file line and record id (not by its row in a generation batch, steps later).

import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, test } from 'node:test';
import { initModelDir, tinyConfig } from '../student/model/init.ts';
import { parseRunConfig } from './config.ts';
import { buildJob, prepareRunDir } from './job.ts';
import { tinyRunConfig } from './recipes/tiny-job.ts';

let root: string;
let models: { teacher: string; student: string };

before(async () => {
  root = mkdtempSync(join(tmpdir(), 'opd-context-'));
  models = { teacher: join(root, 'models', 'teacher'), student: join(root, 'models', 'student') };
  await initModelDir(models.teacher, tinyConfig(), 1);
  await initModelDir(models.student, tinyConfig({ hidden_size: 32, intermediate_size: 64 }), 2); // max_position_embeddings 512
});

const jsonl = (name: string, recs: object[]) => {
  const file = join(root, name);
  writeFileSync(file, recs.map((r) => JSON.stringify(r)).join('\n') + '\n');
  return file;
};
const short = (i: number) => ({ id: `s${i}`, prompt: `${i}+1=`, answer: String(i + 1) });
// 600 bytes: 601 tokens with BOS in the byte tokenizer, over 512 − 4
const huge = { id: 'huge', prompt: `${'x'.repeat(596)}1+1=`, answer: '2' };

async function build(name: string, data: Record<string, unknown>, rollout: Record<string, unknown> = {}) {
  const raw = tinyRunConfig(root, models, { run: { name, steps: 1, evalPrompts: 2 }, rollout });
  const isFile = 'path' in data;
  const c = parseRunConfig({ ...raw, data: isFile ? data : { ...raw.data, ...data }, ...(isFile ? { rewards: [{ type: 'numeric_match', weight: 1 }] } : {}) }, name);
  const job = await buildJob(c, await prepareRunDir(c));
  await job.close();
  return job;
}

test('a train prompt longer than the context is refused at load, naming the file line and record id', async () => {
  const file = jsonl('train.jsonl', [short(0), short(1), short(2), short(3), huge, short(4), short(5)]);
  await assert.rejects(build('train-long', { path: file }), (e: Error) => {
    assert.match(e.message, new RegExp(`data\\.path .*train\\.jsonl line 5 \\(id "huge"\\): the prompt has 601 tokens, more than the 508 the model can take \\(the student's max_position_embeddings 512 − rollout\\.maxNewTokens 4\\)`));
    assert.match(e.message, /data\.maxPromptTokens/, 'says how to fix it');
    return true;
  });
  // the configured policy comes first: filtered (or rejected under the threshold), it is not an error
  const job = await build('train-filtered', { path: file, maxPromptTokens: 100, onTooLong: 'filter' });
  assert.deepEqual(job.data.train.map((r) => r.id).sort(), ['s0', 's1', 's2', 's3', 's4', 's5']);
});

test('a held-out prompt longer than the context is refused at load too', async () => {
  const train = jsonl('train-ok.jsonl', [0, 1, 2, 3, 4, 5].map(short));
  const held = jsonl('held.jsonl', [short(7), huge]);
  await assert.rejects(build('test-long', { path: train, test: held }), /data\.test .*held\.jsonl line 2 \(id "huge"\): the prompt has 601 tokens/);
});

test('built-in task prompts are checked against the context too, naming the record id', async () => {
  // arithmetic prompts are ~6 bytes: with maxNewTokens 508 only 4 tokens are left for them
  await assert.rejects(build('task-long', {}, { maxNewTokens: 508 }), /data\.task arithmetic \(train\) record "arithmetic:train:\d+:\d+": the prompt has \d+ tokens, more than the 4 the model can take/);
  const job = await build('task-ok', {});
  assert.equal(job.data.train.length, 40);
});
