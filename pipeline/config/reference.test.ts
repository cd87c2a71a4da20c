// The config reference and the config file format: docs/config.md matches the generator, every
// numeric field states its unit, comments are accepted, `--set` problems name the override, the
// starting config of `opd config --init` is a valid config, and input paths resolve against the
// current directory.

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { GENERATED_MARKER, withReference } from '../cli/commands/config.ts';
import { checkInputPaths, configDoc, docRows, loadRunConfig, parseRunConfig, RunConfigSchema, unitOf } from '../config.ts';
import { starterConfig, starterValue } from './init.ts';
import { stripJsonComments } from './jsonc.ts';

const tmp = () => mkdtempSync(join(tmpdir(), 'opd-config-ref-'));

test('docs/config.md is the generator output below its marker (run `npm run docs:config` after a schema change)', () => {
  const docs = readFileSync(new URL('../../docs/config.md', import.meta.url), 'utf8');
  const at = docs.indexOf(GENERATED_MARKER);
  assert.ok(at > 0, 'docs/config.md has a hand-written part above the marker');
  assert.equal(docs.slice(at + GENERATED_MARKER.length), `\n\n${configDoc()}`, 'docs/config.md drifted from `opd config --doc`: run npm run docs:config');
  assert.equal(withReference(docs, configDoc()), docs, 'regenerating keeps the hand-written part');
  for (const r of docRows(RunConfigSchema)) assert.ok(docs.includes(`| \`${r.path}\` |`) || docs.includes(`### \`${r.path}\``), `${r.path} is documented`);
});

test('every field has a doc, and every numeric field states its unit', () => {
  for (const r of docRows(RunConfigSchema)) {
    assert.ok(r.doc.trim(), `${r.path} has a doc`);
    if (/^(integer|number)\b/.test(r.type)) assert.notEqual(unitOf(r.doc), '', `${r.path} states a unit: "${r.doc}"`);
  }
  assert.equal(unitOf('Timeout of one attempt (ms)'), 'ms');
  assert.equal(unitOf('Rollouts sampled per prompt, G (count; 1 only with ...)'), 'count');
  assert.equal(unitOf('τ (unitless; keep 1 unless you mean it)'), 'unitless');
  assert.equal(unitOf('No unit here (0 = off)'), '');
});

test('config files may hold // and /* */ comments outside strings; JSON errors say line and column', () => {
  const text = '{\n  // a comment\n  "a": "http://x//y", /* block\n spanning */ "b": "/* kept */"\n}';
  const stripped = stripJsonComments(text);
  assert.deepEqual(JSON.parse(stripped), { a: 'http://x//y', b: '/* kept */' });
  assert.equal(stripped.split('\n').length, text.split('\n').length, 'newlines kept, so positions still match the file');
  const dir = tmp();
  writeFileSync(join(dir, 'bad.json'), '{\n  // ok\n  "student": "s",\n  "data": {"task": "arithmetic"},,\n}');
  assert.throws(() => loadRunConfig(join(dir, 'bad.json')), { name: 'ConfigError', message: /bad\.json: cannot read a JSON config \(.*\(line 4, column 34\)\)$/ });
});

test('a --set value that fails is reported against the --set, a file value against the file', () => {
  const dir = tmp();
  const file = join(dir, 'c.json');
  writeFileSync(file, JSON.stringify({ student: 's', data: { task: 'arithmetic' }, rollout: { promptsPerStep: 0 }, algo: { blend: { mode: 'grpo' } } }));
  assert.throws(() => loadRunConfig(file, ['rollout.groupSize=0']), (e: Error) => {
    assert.deepEqual(e.message.split('\n'), [`--set rollout.groupSize=0: rollout.groupSize: 0 is not an integer ≥ 1`, `${file}: rollout.promptsPerStep: 0 is not an integer ≥ 1`]);
    return true;
  });
  assert.throws(() => loadRunConfig(file, ['rollout={"promptsPerStep": 1, "groupSize": 0}']), { message: /^--set rollout=\{"promptsPerStep": 1, "groupSize": 0\}: rollout\.groupSize: 0 is not/ });
});

test('opd config --init: the starting config is JSON with a comment above every field, and valid as written', () => {
  const text = starterConfig(RunConfigSchema);
  const dir = tmp();
  writeFileSync(join(dir, 'start.json'), text);
  const c = loadRunConfig(join(dir, 'start.json'));
  assert.deepEqual(JSON.parse(stripJsonComments(text)), starterValue(RunConfigSchema));
  assert.equal(c.data && 'path' in c.data ? c.data.path : null, 'data/train.jsonl');
  assert.equal(c.rollout.groupSize, parseRunConfig({ student: 's', data: { task: 'arithmetic' }, algo: { blend: { mode: 'grpo' } } }, 'd').rollout.groupSize, 'DEFAULT values are the schema defaults');
  const lines = text.split('\n');
  lines.forEach((l, i) => {
    if (/^\s*"[^"]+": /.test(l) && !/^\s*"(type|weight|id|kind)"/.test(l)) assert.match(lines[i - 1]!, /^\s*\/\/ /, `a comment above line ${i + 1}: ${l}`);
  });
  assert.match(text, /\/\/ Training steps: each samples promptsPerStep × G rollouts and trains on them \(steps\)\n\s*\/\/ \[integer ≥ 1, default 100\]\n\s*"steps": 100,/);
});

test('input paths resolve against the current directory, not the config file folder; each missing one names its field', () => {
  const root = tmp();
  mkdirSync(join(root, 'cfg'));
  mkdirSync(join(root, 'models', 's'), { recursive: true });
  writeFileSync(join(root, 'cfg', 'train.jsonl'), '{"prompt":"1+1=","answer":"2"}\n');
  writeFileSync(join(root, 'cfg', 'r.mjs'), 'export default () => 1;\n');
  writeFileSync(join(root, 'cfg', 'c.json'), JSON.stringify({ student: 'models/s', data: { path: 'train.jsonl' }, rewards: [{ type: 'module', path: 'r.mjs' }], algo: { blend: { mode: 'grpo' } } }));
  const c = loadRunConfig(join(root, 'cfg', 'c.json'));
  assert.throws(() => checkInputPaths(c, 'cfg/c.json', [], root), (e: Error) => {
    assert.deepEqual(e.message.split('\n'), [
      `cfg/c.json: data.path: no such file "train.jsonl" (relative paths resolve against the current directory: ${join(root, 'train.jsonl')}); expected the prompt file`,
      `cfg/c.json: rewards[0].path: no such file "r.mjs" (relative paths resolve against the current directory: ${join(root, 'r.mjs')}); expected the reward module`,
    ]);
    return true;
  });
  assert.throws(() => checkInputPaths(c, 'cfg/c.json', [], join(root, 'cfg')), (e: Error) => {
    assert.match(e.message, /^cfg\/c\.json: student: no such directory "models\/s" \(relative paths resolve against the current directory: .*cfg\/models\/s\); expected the student model directory$/);
    return true;
  }, 'run from the config folder, the file and module are found but the student is not');
  assert.throws(() => checkInputPaths(c, 'cfg/c.json', ['data.path=train.jsonl'], root), { message: /^--set data\.path=train\.jsonl: data\.path: no such file/ }, 'a path set by --set is reported against it');
});
