// The demo's model cache: a recipe trains once and is then reused, a changed recipe retrains, and
// the printed `opd model init` + `opd sft` commands rebuild the same weights bit for bit.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { DEMO_STUDENT, type DemoModelRecipe, ensureDemoModel, recipeCommands, writeDemoData } from './demo.ts';

const repo = new URL('../../', import.meta.url).pathname;
const sha = (f: string) => createHash('sha256').update(readFileSync(f)).digest('hex');

test('demo models: trained once, reused, retrained on a recipe change, and reproduced by the printed commands', { timeout: 120_000 }, async () => {
  const root = mkdtempSync(join(tmpdir(), 'opd-demo-'));
  const recipe: DemoModelRecipe = { ...DEMO_STUDENT, name: 'tiny-student', demos: 40, sft: { ...DEMO_STUDENT.sft, steps: 6, batchSize: 8 } };
  const first = await ensureDemoModel(root, recipe, { runtime: { threads: 1 } });
  assert.equal(first.trained, true);
  const weights = join(first.dir, 'model.safetensors');
  const [hash, mtime] = [sha(weights), statSync(weights).mtimeMs];
  assert.equal(readFileSync(join(root, 'data', 'arithmetic-2digit-add-train-40.jsonl'), 'utf8').trim().split('\n').length, 40);

  const again = await ensureDemoModel(root, recipe, { runtime: { threads: 1 } });
  assert.equal(again.trained, false, 'same recipe: cached');
  assert.equal(statSync(weights).mtimeMs, mtime, 'weights not rewritten');

  const changed = await ensureDemoModel(root, { ...recipe, sft: { ...recipe.sft, steps: 7 } }, { runtime: { threads: 1 } });
  assert.equal(changed.trained, true, 'changed recipe: retrained');
  assert.notEqual(sha(weights), hash, 'one more step changes the weights');
  await ensureDemoModel(root, recipe, { runtime: { threads: 1 } }); // back to the 6-step recipe
  assert.equal(sha(weights), hash, 'retraining the same recipe reproduces the same bytes');

  // the printed commands, run through the CLI into a second root, give the same file
  const other = mkdtempSync(join(tmpdir(), 'opd-demo-cli-'));
  mkdirSync(join(other, 'data'));
  writeDemoData(other, recipe.task, recipe.demos);
  for (const cmd of recipeCommands(other, recipe)) {
    const args = cmd.split(' ').slice(1);
    await promisify(execFile)(process.execPath, [join(repo, 'bin/opd.mjs'), ...args, ...(args[0] === 'sft' ? ['--threads', '1'] : [])], { cwd: repo });
  }
  assert.equal(sha(join(other, recipe.name, 'model.safetensors')), hash, 'opd model init + opd sft rebuild the demo model bit for bit');
});
