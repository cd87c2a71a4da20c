// A run with a teacher of another tokenizer, end to end: the tiny byte-level student distilled from the
// tiny BPE teacher (pipeline/recipes/tiny-bpe-teacher.ts). buildJob's preflight takes the aligned path;
// the run trains 2 steps; the rollout shard's teacher values carry the teacher's signal (they differ
// from the sampler's log-probs) and are finite; the teacher saw its own token ids.

import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { tableToRollouts } from '../../data/schemas.ts';
import { readShard } from '../../data/store/shards.ts';
import { loadTokenizer } from '../../data/tokenizer/hf.ts';
import { AlignedTeacher } from '../../teacher/aligned.ts';
import { startRun } from '../cli/commands/run.ts';
import { parseRunConfig } from '../config.ts';
import { buildJob, prepareRunDir } from '../job.ts';
import { tinyBpeTeacher } from './tiny-bpe-teacher.ts';
import { tinyModels, tinyRunConfig } from './tiny-job.ts';

test('tiny byte student, tiny BPE teacher: aligned path, 2 steps train, the shard holds the teacher signal', { timeout: 300_000 }, async () => {
  const root = mkdtempSync(join(tmpdir(), 'opd-bpe-teacher-'));
  const m = await tinyModels(join(root, 'models'));
  const teacher = await tinyBpeTeacher(join(root, 'models', 'teacher-bpe'));
  const tTok = await loadTokenizer(teacher);
  assert.ok(tTok.vocabSize > 256 + 3 + 10, `${tTok.vocabSize} tokens: merges learned`);
  assert.equal(tTok.idToToken(tTok.eosTokenIds[0]!), '<|im_end|>');
  const raw = tinyRunConfig(root, { ...m, teacher }, { run: { name: 'bpe', steps: 2, evalPrompts: 4 } });
  const c = parseRunConfig(raw, 'bpe teacher test');

  const lines: string[] = [];
  const probe = parseRunConfig({ ...raw, run: { ...raw.run, name: 'probe' } }, 'bpe teacher probe');
  const job = await buildJob(probe, await prepareRunDir(probe), { log: { info: (s: string) => lines.push(s), warn: (s: string) => lines.push(s) } });
  try {
    assert.ok(job.teachers.single instanceof AlignedTeacher);
    assert.ok(lines.some((l) => /scoring path: aligned \(the tokenizers differ\)/.test(l)), lines.join('\n'));
    assert.ok(lines.some((l) => /EOS ids: student \[258 "<\|eos\|>"\], teacher \[\d+ "<\|im_end\|>"\]/.test(l)), lines.join('\n'));
  } finally {
    await job.close();
  }

  const summary = await startRun(c, { quiet: true });
  assert.equal(summary.steps, 2);
  const shards = join(root, 'runs', 'bpe', 'shards');
  const rows = readdirSync(shards).filter((f) => f.endsWith('.arrow')).flatMap((f) => tableToRollouts(readShard(shards, f)));
  assert.equal(rows.length, 2 * 4 * 4);
  let differs = 0;
  for (const r of rows) {
    assert.equal(r.teacherLogprobs.length, r.completionIds.length);
    assert.ok(r.teacherLogprobs.every(Number.isFinite));
    differs += r.teacherLogprobs.filter((v, t) => Math.abs(v - r.samplerLogprobs[t]!) > 1e-4).length;
  }
  assert.ok(differs > rows.length, `${differs} completion tokens carry a teacher signal`);
});

test('with chat templates (data.chatTemplate always): the teacher renders ChatML, the student its own; the student EOS pairs with <|im_end|>', { timeout: 300_000 }, async () => {
  const root = mkdtempSync(join(tmpdir(), 'opd-bpe-chat-'));
  const m = await tinyModels(join(root, 'models'));
  const teacher = await tinyBpeTeacher(join(root, 'models', 'teacher-bpe'));
  const raw = tinyRunConfig(root, { ...m, teacher }, { run: { name: 'chat', steps: 1, evalPrompts: 4 }, data: { chatTemplate: 'always' } });
  const c = parseRunConfig(raw, 'bpe chat test');
  const lines: string[] = [];
  const job = await buildJob(c, await prepareRunDir(c), { log: { info: (s: string) => lines.push(s), warn: (s: string) => lines.push(s) } });
  try {
    const text = lines.join('\n');
    assert.match(text, /student's template: "<\|user\|>What is 64 plus 85\?<\|assistant\|>"/);
    assert.match(text, /teacher's template: "<\|im_start\|>user\\nWhat is 64 plus 85\?<\|im_end\|>\\n<\|im_start\|>assistant\\n"/);
    assert.match(text, /scoring path: aligned \(the tokenizers differ\): the teacher scores the conversation rendered by its own template .* paired with teacher id \d+ "<\|im_end\|>"/);
    const t = job.teachers.single as AlignedTeacher;
    const tTok = await loadTokenizer(teacher);
    const rec = job.data.train[0]!;
    const prompt = job.tokenizer.encode(`<|user|>${rec.prompt}<|assistant|>`, { addSpecialTokens: false });
    const p = t.plan({ ids: [...prompt, 55, 258], start: prompt.length, context: { prompt: rec.prompt, samplerLogprobs: [-1, -1] } }, 0);
    assert.ok(tTok.decode(p.request.ids.slice(0, p.request.start)).startsWith(`<|im_start|>user\n${rec.prompt}<|im_end|>`));
    assert.equal(tTok.idToToken(p.request.ids.at(-1)!), '<|im_end|>');
  } finally {
    await job.close();
  }
});
