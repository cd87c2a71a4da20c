// docs/reliability.md R9, wired into the job: `opd run` (startRun, in-process) with a local teacher whose
// tokenizer gives two ids another meaning is refused by the preflight, naming the first differing
// id, before the held-out evaluation and before any rollout: the run directory gets no metrics, no
// shards and no checkpoint. (teacher/preflight.test.ts tests the comparison itself.)

import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { PreflightError } from '../../teacher/preflight.ts';
import { parseRunConfig } from '../config.ts';
import { tinyModels, tinyRunConfig } from '../recipes/tiny-job.ts';
import { startRun } from './commands/run.ts';

/** A copy of the teacher whose byte-level vocabulary has "A" and "B" swapped (ids 65 and 66). */
function swappedTeacher(teacher: string, out: string): string {
  cpSync(teacher, out, { recursive: true });
  const file = join(out, 'tokenizer.json');
  const tok = JSON.parse(readFileSync(file, 'utf8')) as { model: { vocab: Record<string, number> } };
  assert.deepEqual([tok.model.vocab.A, tok.model.vocab.B], [65, 66], 'the tiny teacher has the byte-level vocabulary');
  [tok.model.vocab.A, tok.model.vocab.B] = [66, 65];
  writeFileSync(file, JSON.stringify(tok));
  return out;
}

test('opd run refuses a teacher with a different tokenizer before any rollout, naming the id', { timeout: 120_000 }, async () => {
  const root = mkdtempSync(join(tmpdir(), 'opd-r9-'));
  const m = await tinyModels(join(root, 'models'));
  const teacher = swappedTeacher(m.teacher, join(root, 'models', 'teacher-swapped'));
  const raw = tinyRunConfig(root, m, { run: { name: 'r9', steps: 2, evalPrompts: 4 } });
  const c = parseRunConfig({ ...raw, teachers: [{ id: 't', kind: 'local', path: teacher }] }, 'r9 test');

  await assert.rejects(startRun(c, { quiet: true }), (e: unknown) => {
    assert.ok(e instanceof PreflightError, `a PreflightError, got ${String(e)}`);
    assert.match(e.message, /tokenizers differ/);
    assert.match(e.message, /id 65/, 'names the first differing id');
    return true;
  });
  const dir = join(root, 'runs', 'r9');
  for (const f of ['metrics.jsonl', 'eval-before.json', 'summary.json']) assert.ok(!existsSync(join(dir, f)), `no ${f}: refused before any work`);
  for (const d of ['shards', 'checkpoints']) {
    const entries = existsSync(join(dir, d)) ? readdirSync(join(dir, d)).filter((f) => f !== 'manifest.json') : [];
    assert.deepEqual(entries, [], `nothing in ${d}/`);
  }

  // control: the unchanged teacher passes the same preflight and the run trains
  const ok = await startRun(parseRunConfig({ ...raw, run: { ...raw.run, name: 'r9-same' } }, 'r9 control'), { quiet: true });
  assert.equal(ok.steps, 2);
});
