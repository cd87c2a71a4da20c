// `opd run` on conversational data (issue 12 items 1-2): a prompt file whose records are TRL
// conversational prompts or a `messages` column trains through the student's chat template — every
// rollout's prompt ids are the rendered template (+ generation prompt, no second BOS), the teacher
// (same tokenizer and template: the exact path) scores them — while a plain-string run's rollouts
// keep tokenizer.encode(prompt), BOS included, exactly as before. Expected ids are computed here
// from data/chat.ts and the byte tokenizer, not read back from an earlier run.

import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { tableToRollouts } from '../../data/schemas.ts';
import { listShards, readShard } from '../../data/store/shards.ts';
import { ByteTokenizer } from '../../data/tokenizer/byte.ts';
import { parseRunConfig } from '../config.ts';
import { tinyModels, tinyRunConfig } from '../recipes/tiny-job.ts';
import { startRun } from './commands/run.ts';

const tok = new ByteTokenizer();

test('opd run: conversational prompts are sampled and scored in the template; plain prompts exactly as before', { timeout: 180_000 }, async () => {
  const root = mkdtempSync(join(tmpdir(), 'opd-chat-run-'));
  const m = await tinyModels(join(root, 'models'));
  const sys = { role: 'system', content: 'Add.' };
  const rows = Array.from({ length: 8 }, (_, i) =>
    i % 2 === 0
      ? { id: `c${i}`, prompt: [sys, { role: 'user', content: `${i}+1=` }], answer: String(i + 1) }
      : { id: `c${i}`, messages: [{ role: 'user', content: `${i}+1=` }, { role: 'assistant', content: String(i + 1) }], answer: String(i + 1) },
  );
  const chatFile = join(root, 'chat.jsonl');
  writeFileSync(chatFile, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
  const plainFile = join(root, 'plain.jsonl');
  writeFileSync(plainFile, rows.map((r, i) => JSON.stringify({ id: r.id, prompt: `${i}+1=`, answer: r.answer })).join('\n') + '\n');
  const run = async (name: string, file: string) => {
    const raw = tinyRunConfig(root, m, { run: { name, steps: 2 } });
    const s = await startRun(parseRunConfig({ ...raw, data: { path: file }, rewards: [{ type: 'numeric_match', weight: 1 }] }, name), { quiet: true });
    assert.equal(s.steps, 2);
    const shards = join(s.run_dir, 'shards');
    return listShards(shards).flatMap((sh) => tableToRollouts(readShard(shards, sh.file)));
  };

  const expectedChat = (id: string) => {
    const i = Number(id.slice(1));
    const text = i % 2 === 0 ? `<|system|>Add.<|user|>${i}+1=<|assistant|>` : `<|user|>${i}+1=<|assistant|>`;
    return tok.encode(text, { addSpecialTokens: false });
  };
  const chat = await run('chat', chatFile);
  assert.ok(chat.length > 0);
  for (const r of chat) {
    assert.deepEqual(r.promptIds, expectedChat(r.promptId), `rollout of ${r.promptId}: the rendered template`);
    assert.notEqual(r.promptIds[0], tok.bosTokenId, 'no BOS added in front of the template');
    assert.equal(r.teacherLogprobs.length, r.completionIds.length, 'the teacher scored every completion token');
  }

  const plain = await run('plain', plainFile);
  assert.ok(plain.length > 0);
  for (const r of plain) assert.deepEqual(r.promptIds, tok.encode(`${r.promptId.slice(1)}+1=`), `rollout of ${r.promptId}: tokenizer.encode(prompt), BOS included`);
});
