// `opd config` and the config side of `opd run`, in child processes: --doc prints the reference,
// `opd run` accepts what --init writes (placeholders at their relative paths, run from that folder),
// and a config error -- or a missing input path -- is reported before onnxruntime is imported.

import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { configDoc } from '../config.ts';
import { tinyModels } from '../recipes/tiny-job.ts';
import { opdIn } from './opd-bin.ts';


/** Fails any import of onnxruntime-node in the process it is preloaded into. */
const GUARD = `import { register } from 'node:module';
register('data:text/javascript,' + encodeURIComponent("export async function resolve(s, c, next) { if (s === 'onnxruntime-node') throw new Error('onnxruntime-node was imported'); return next(s, c); }"));
`;


test('opd config --doc prints the reference; --init refuses to replace a file without --force', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'opd-config-cli-'));
  const doc = await opdIn(dir, ['config', '--doc']);
  assert.equal(doc.code, 0, doc.stderr);
  assert.equal(doc.stdout, configDoc());
  assert.equal((await opdIn(dir, ['config', '--init', 'a.json'])).code, 0);
  const again = await opdIn(dir, ['config', '--init', 'a.json']);
  assert.equal(again.code, 2);
  assert.match(again.stderr, /a\.json exists; pass --force to replace it/);
  assert.equal((await opdIn(dir, ['config'])).code, 2, 'one of --doc or --init');
});

test('opd run accepts the config opd config --init writes, as written', { timeout: 180_000 }, async () => {
  const root = mkdtempSync(join(tmpdir(), 'opd-config-init-'));
  await tinyModels(join(root, 'models')); // models/student and models/teacher: the starter's placeholders
  mkdirSync(join(root, 'data'));
  const records = Array.from({ length: 20 }, (_, i) => ({ prompt: `${i % 10}+${(i * 3) % 10}=`, answer: String((i % 10) + ((i * 3) % 10)) }));
  writeFileSync(join(root, 'data', 'train.jsonl'), records.map((r) => JSON.stringify(r)).join('\n') + '\n');
  const init = await opdIn(root, ['config', '--init', 'start.json']);
  assert.equal(init.code, 0, init.stderr);
  assert.match(readFileSync(join(root, 'start.json'), 'utf8'), /^\s*\/\/ /m, 'the file carries comments');
  const sizes = ['run.steps=2', 'rollout.promptsPerStep=2', 'rollout.groupSize=2', 'rollout.maxNewTokens=4', 'runtime.threads=1'];
  const r = await opdIn(root, ['run', 'start.json', ...sizes.flatMap((s) => ['--set', s])]);
  assert.equal(r.code, 0, r.stderr);
  const dir = join(root, 'runs', 'my-run');
  assert.equal(r.stdout.trim(), dir, 'run.outDir "runs" resolved against the current directory');
  assert.ok(existsSync(join(dir, 'summary.json')));
  assert.equal(JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')).student, 'models/student', 'the frozen config keeps paths as written');
});

test('config errors and missing input paths are reported before onnxruntime is imported', { timeout: 60_000 }, async () => {
  const root = mkdtempSync(join(tmpdir(), 'opd-config-fast-'));
  const guard = join(root, 'guard.mjs');
  writeFileSync(guard, GUARD);
  mkdirSync(join(root, 'cfg'));
  writeFileSync(join(root, 'cfg', 'train.jsonl'), '{"prompt":"1+1=","answer":"2"}\n');
  writeFileSync(join(root, 'cfg', 'c.json'), JSON.stringify({ student: { builtin: 'tiny' }, data: { path: 'train.jsonl' }, rewards: [{ type: 'numeric_match' }], algo: { blend: { mode: 'grpo' } } }));

  const bad = await opdIn(root, ['run', 'cfg/c.json', '--set', 'rollout.groupSize=0'], [guard]);
  assert.equal(bad.code, 1);
  assert.equal(bad.stderr.trim(), 'opd run: --set rollout.groupSize=0: rollout.groupSize: 0 is not an integer ≥ 1');

  const missing = await opdIn(root, ['run', 'cfg/c.json'], [guard]);
  assert.equal(missing.code, 1);
  assert.equal(missing.stderr.trim(), `opd run: cfg/c.json: data.path: no such file "train.jsonl" (relative paths resolve against the current directory: ${join(root, 'train.jsonl')}); expected the prompt file`);

  const control = await opdIn(root, ['generate', '--model', 'm', '--prompt', 'x'], [guard]);
  assert.match(control.stderr, /onnxruntime-node was imported/, 'the guard trips when a command does import onnxruntime');
});
