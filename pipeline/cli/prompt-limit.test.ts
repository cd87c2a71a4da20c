// docs/reliability.md R12, wired into the job: `opd run` applies data.maxPromptTokens / onTooLong to a prompt
// file (counted in the student's tokens, BOS included), writes the rejects into the run directory,
// stops above maxRejectFraction before any rollout, and never trains on a prompt over the limit.

import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { tableToRollouts } from '../../data/schemas.ts';
import { listShards, readShard } from '../../data/store/shards.ts';
import { parseRunConfig } from '../config.ts';
import { tinyModels, tinyRunConfig } from '../recipes/tiny-job.ts';
import { startRun } from './commands/run.ts';

test('opd run: prompts over data.maxPromptTokens are rejected (or filtered) at load, never trained on', { timeout: 120_000 }, async () => {
  const root = mkdtempSync(join(tmpdir(), 'opd-r12-'));
  const m = await tinyModels(join(root, 'models'));
  const short = Array.from({ length: 8 }, (_, i) => ({ id: `s${i}`, prompt: `${i}+1=`, answer: String(i + 1) }));
  const long = [0, 1].map((i) => ({ id: `long${i}`, prompt: `What is ${i} plus one, in a long sentence? ${i}+1=`, answer: String(i + 1) }));
  const file = join(root, 'prompts.jsonl');
  writeFileSync(file, [...short.slice(0, 4), long[0], ...short.slice(4), long[1]].map((r) => JSON.stringify(r)).join('\n') + '\n');
  const config = (name: string, data: Record<string, unknown>) => {
    const raw = tinyRunConfig(root, m, { run: { name, steps: 2, evalPrompts: 4 } });
    return parseRunConfig({ ...raw, data: { path: file, maxPromptTokens: 12, ...data }, rewards: [{ type: 'numeric_match', weight: 1 }] }, name);
  };

  await assert.rejects(startRun(config('strict', { onTooLong: 'reject', maxRejectFraction: 0.01 }), { quiet: true }), /prompt|reject/i);
  const strict = join(root, 'runs', 'strict');
  assert.ok(!existsSync(join(strict, 'metrics.jsonl')), 'stopped before any rollout');
  const rejects = readFileSync(join(strict, 'rejects.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { line: number; reason: string });
  assert.deepEqual(rejects.map((r) => r.line), [5, 10]);
  for (const r of rejects) assert.match(r.reason, /prompt too long: \d+ tokens > data\.maxPromptTokens 12/);

  for (const onTooLong of ['reject', 'filter']) {
    const s = await startRun(config(`ok-${onTooLong}`, { onTooLong, maxRejectFraction: 0.5 }), { quiet: true });
    assert.equal(s.steps, 2);
    const shards = join(s.run_dir, 'shards');
    const ids = listShards(shards).flatMap((sh) => tableToRollouts(readShard(shards, sh.file)).map((r) => r.promptId));
    assert.ok(ids.length > 0 && ids.every((id) => id.startsWith('s')), `only short prompts are trained on (${onTooLong}): ${[...new Set(ids)]}`);
  }
});
