// docs/reliability.md R9, wired into the job: `opd run` (startRun, in-process) with a local teacher whose
// tokenizer gives two ids another meaning runs on the aligned path (teacher/aligned.ts): buildJob
// wraps the teacher and logs the tokenizer diff and the path, and the run trains. A teacher whose
// tokenizer cannot be aligned (a lower-casing normalizer: its tokens no longer spell the text) is
// refused by the preflight, saying why, before the held-out evaluation and before any rollout: the
// run directory gets no metrics, no shards and no checkpoint. (teacher/preflight.test.ts tests the
// decision itself.)

import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { AlignedTeacher } from '../../teacher/aligned.ts';
import { PreflightError } from '../../teacher/preflight.ts';
import { buildJob, prepareRunDir } from '../job.ts';
import { parseRunConfig } from '../config.ts';
import { tinyModels, tinyRunConfig } from '../recipes/tiny-job.ts';
import { startRun } from './commands/run.ts';

/** A copy of the teacher whose byte-level vocabulary has "A" and "B" swapped (ids 65 and 66); with `lowercase`, also a Lowercase normalizer. */
function swappedTeacher(teacher: string, out: string, lowercase = false): string {
  cpSync(teacher, out, { recursive: true });
  const file = join(out, 'tokenizer.json');
  const tok = JSON.parse(readFileSync(file, 'utf8')) as { model: { vocab: Record<string, number> }; normalizer: unknown };
  assert.deepEqual([tok.model.vocab.A, tok.model.vocab.B], [65, 66], 'the tiny teacher has the byte-level vocabulary');
  [tok.model.vocab.A, tok.model.vocab.B] = [66, 65];
  if (lowercase) tok.normalizer = { type: 'Lowercase' };
  writeFileSync(file, JSON.stringify(tok));
  return out;
}

const nothingWritten = (dir: string) => {
  for (const f of ['metrics.jsonl', 'eval-before.json', 'summary.json']) assert.ok(!existsSync(join(dir, f)), `no ${f}: refused before any work`);
  for (const d of ['shards', 'checkpoints']) {
    const entries = existsSync(join(dir, d)) ? readdirSync(join(dir, d)).filter((f) => f !== 'manifest.json') : [];
    assert.deepEqual(entries, [], `nothing in ${d}/`);
  }
};

test('opd run refuses a teacher whose tokenizer cannot be aligned before any rollout, saying why', { timeout: 120_000 }, async () => {
  const root = mkdtempSync(join(tmpdir(), 'opd-r9-'));
  const m = await tinyModels(join(root, 'models'));
  const teacher = swappedTeacher(m.teacher, join(root, 'models', 'teacher-lower'), true);
  const raw = tinyRunConfig(root, m, { run: { name: 'r9', steps: 2, evalPrompts: 4 } });
  const c = parseRunConfig({ ...raw, teachers: [{ id: 't', kind: 'local', path: teacher }] }, 'r9 test');
  await assert.rejects(startRun(c, { quiet: true }), (e: unknown) => {
    assert.ok(e instanceof PreflightError, `a PreflightError, got ${String(e)}`);
    assert.match(e.message, /tokenizers differ and the teacher's scores cannot be aligned/);
    assert.match(e.message, /do not spell the text back/, 'says why');
    assert.match(e.message, /id 65/, 'shows the tokenizer diff');
    return true;
  });
  nothingWritten(join(root, 'runs', 'r9'));
});

test('opd run with a teacher of another tokenizer runs on the aligned path and trains', { timeout: 180_000 }, async () => {
  const root = mkdtempSync(join(tmpdir(), 'opd-r9-'));
  const m = await tinyModels(join(root, 'models'));
  const teacher = swappedTeacher(m.teacher, join(root, 'models', 'teacher-swapped'));
  const raw = tinyRunConfig(root, m, { run: { name: 'r9-aligned', steps: 2, evalPrompts: 4 } });
  const c = parseRunConfig({ ...raw, teachers: [{ id: 't', kind: 'local', path: teacher }] }, 'r9 test');
  const lines: string[] = [];
  const log = { info: (s: string) => lines.push(s), warn: (s: string) => lines.push(s) };
  const job = await buildJob(c, await prepareRunDir(c, {}), { log });
  try {
    assert.ok(job.teachers.single instanceof AlignedTeacher, 'the teacher is wrapped');
    assert.ok(lines.some((l) => /^teacher t: tokenizers differ/.test(l)), lines.join('\n'));
    assert.ok(lines.some((l) => /^teacher t: scoring path: aligned/.test(l)), lines.join('\n'));
  } finally {
    await job.close();
  }
  const ok = await startRun({ ...c, run: { ...c.run, name: 'r9-aligned-run' } }, { quiet: true });
  assert.equal(ok.steps, 2);

  // control: the unchanged teacher takes the exact path
  const same = await buildJob(parseRunConfig({ ...raw, run: { ...raw.run, name: 'r9-same' } }, 'r9 control'), join(root, 'runs', 'r9-aligned'));
  try {
    assert.ok(!(same.teachers.single instanceof AlignedTeacher));
  } finally {
    await same.close();
  }
});
