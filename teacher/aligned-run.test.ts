// The aligned teacher inside a real run (the tiny GRPO-OPD job, 2 steps, through runPersisted):
// - same tokenizer and rendering: a run whose teacher is wrapped in an AlignedTeacher ends on the same
//   bytes (rollout shards and checkpoint) as the run with the bare teacher — the exact path unchanged;
// - identical tokenizers forced through the aligned path (the teacher's tokenizer under another
//   fingerprint): every span is one token and the stored teacher values equal the exact run's (§10
//   reduces to §2), within float32 rounding.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { tableToRollouts } from '../data/schemas.ts';
import { readShard } from '../data/store/shards.ts';
import type { Tokenizer } from '../data/tokenizer/types.ts';
import { runPersisted, shardName } from '../pipeline/recipes/persisted.ts';
import { TINY_SETTINGS, tinyJob } from '../pipeline/recipes/tiny-job.ts';
import { openRunDir } from '../pipeline/rundir.ts';
import { AlignedTeacher } from './aligned.ts';
import type { Teacher } from './types.ts';

const root = mkdtempSync(join(tmpdir(), 'opd-aligned-run-'));
const models = join(root, 'models');
const settings = { ...TINY_SETTINGS, steps: 2 };

function disguised(tok: Tokenizer): Tokenizer {
  return Object.assign(Object.create(Object.getPrototypeOf(tok)), tok, { fingerprint: () => 'disguised' });
}

async function run(name: string, wrap: (t: Teacher, tok: Tokenizer) => Teacher): Promise<string> {
  const dir = join(root, name);
  await mkdir(dir, { recursive: true });
  const { job, close, tokenizerFrom } = await tinyJob(models, settings);
  try {
    const r = await runPersisted(await openRunDir(dir), { ...job, teacher: wrap(job.teacher!, job.student.tokenizer) }, { checkpointEvery: 2, keepLast: 2, tokenizerFrom });
    await r.close();
  } finally {
    await close();
  }
  return dir;
}

const sha = (f: string) => createHash('sha256').update(readFileSync(f)).digest('hex');
const files = (dir: string) => [
  ...readdirSync(join(dir, 'shards')).filter((f) => f.endsWith('.arrow')).map((f) => join('shards', f)),
  ...['model/model.safetensors', 'optimizer.safetensors', 'state.json'].map((f) => join('checkpoints', 'step-000002', f)),
];
const rows = (dir: string, step: number) => tableToRollouts(readShard(join(dir, 'shards'), `${shardName(step)}.arrow`));

test('same tokenizer: a run through the AlignedTeacher ends on the exact path run bytes; forced alignment stores the same teacher values', { timeout: 240_000 }, async () => {
  const exact = await run('exact', (t) => t);
  const wrapped = await run('wrapped', (t, tok) => new AlignedTeacher(t, { student: tok, teacher: tok }));
  const ref = files(exact);
  assert.ok(ref.filter((f) => f.startsWith('shards')).length === 2, `two rollout shards: ${ref}`);
  assert.deepEqual(files(wrapped), ref);
  for (const f of ref) assert.equal(sha(join(wrapped, f)), sha(join(exact, f)), `${f} is byte-identical`);

  const forced = await run('forced', (t, tok) => new AlignedTeacher(t, { student: tok, teacher: disguised(tok) }));
  const [a, b] = [rows(exact, 1), rows(forced, 1)];
  assert.deepEqual(b.map((r) => r.completionIds), a.map((r) => r.completionIds), 'step 1 samples the same completions');
  let compared = 0;
  a.forEach((r, i) =>
    r.teacherLogprobs.forEach((v, t) => {
      assert.ok(Math.abs(b[i]!.teacherLogprobs[t]! - v) <= 1e-6, `rollout ${i} token ${t}: ${b[i]!.teacherLogprobs[t]} vs ${v}`);
      compared++;
    }),
  );
  assert.ok(compared > 20, `${compared} teacher values compared`);
});
