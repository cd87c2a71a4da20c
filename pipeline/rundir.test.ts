// Run directory: creation and naming, metrics.jsonl append / torn last line / truncation on resume
// (the resumed file must equal the uninterrupted one byte for byte), the frozen config, and
// compareConfigs / checkResumeConfig for R14, checked against hand-written expected diffs.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { CorruptArtifactError } from '../data/store/shards.ts';
import {
  ConfigChangedError, appendMetrics, checkResumeConfig, compareConfigs, createRunDir, formatChanges, openRunDir,
  readFrozenConfig, readMetrics, runDirPaths, truncateMetricsAfter, writeFrozenConfig,
} from './rundir.ts';

const roots: string[] = [];
after(() => roots.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));
const tmp = () => {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'opd-rundir-'));
  roots.push(d);
  return d;
};

test('createRunDir: date + hex names, unique, with the layout; a given name is never reused', async () => {
  const root = tmp();
  const when = new Date(Date.UTC(2025, 0, 31, 9, 5, 7));
  const a = await createRunDir(root, undefined, when);
  const b = await createRunDir(root, undefined, when);
  assert.match(a.name, /^20250131-090507-[0-9a-f]{6}$/);
  assert.notEqual(a.name, b.name);
  assert.deepEqual(fs.readdirSync(a.dir).sort(), ['checkpoints', 'report', 'shards']);
  assert.deepEqual(a, runDirPaths(a.dir));
  assert.equal(a.metrics, path.join(root, a.name, 'metrics.jsonl'));
  assert.equal(a.summary, path.join(root, a.name, 'summary.json'));
  const named = await createRunDir(root, 'exp1');
  assert.equal(named.name, 'exp1');
  await assert.rejects(createRunDir(root, 'exp1'), /already exists/);
  await assert.rejects(createRunDir(root, '../x'), /not a plain directory name/);
  assert.deepEqual(await openRunDir(named.dir), named);
  await assert.rejects(openRunDir(path.join(root, 'nope')), /does not exist/);
});

test('appendMetrics writes one line per step; non-finite values stay visible', async () => {
  const run = (await createRunDir(tmp(), 'r')).dir;
  await appendMetrics(run, { step: 1, loss: 0.5 });
  await appendMetrics(run, { step: 2, loss: NaN, grad: -Infinity });
  assert.equal(fs.readFileSync(runDirPaths(run).metrics, 'utf8'), '{"step":1,"loss":0.5}\n{"step":2,"loss":"NaN","grad":"-Infinity"}\n');
  assert.deepEqual(readMetrics(run), [{ step: 1, loss: 0.5 }, { step: 2, loss: 'NaN', grad: '-Infinity' }]);
  await assert.rejects(appendMetrics(run, { step: 1.5 }), /integer/);
  assert.deepEqual(readMetrics((await createRunDir(tmp(), 'empty')).dir), []);
});

test('resume: truncateMetricsAfter drops later steps and a torn line; the result equals an uninterrupted run', async () => {
  const root = tmp();
  const record = (step: number) => ({ step, loss: 1 / step, reward: step % 2 });
  const straight = (await createRunDir(root, 'straight')).dir;
  for (let s = 1; s <= 6; s++) await appendMetrics(straight, record(s));

  const killed = (await createRunDir(root, 'killed')).dir;
  for (let s = 1; s <= 4; s++) await appendMetrics(killed, record(s)); // checkpoint at 2, killed while writing 5
  fs.appendFileSync(runDirPaths(killed).metrics, '{"step":5,"lo');
  assert.equal(readMetrics(killed).length, 4);
  await assert.rejects(appendMetrics(killed, record(5)), (e) => e instanceof CorruptArtifactError && /incomplete/.test(e.message));
  assert.equal(await truncateMetricsAfter(killed, 2), 3); // steps 3, 4 and the torn line
  assert.equal(await truncateMetricsAfter(killed, 2), 0);
  for (let s = 3; s <= 6; s++) await appendMetrics(killed, record(s));
  assert.ok(fs.readFileSync(runDirPaths(killed).metrics).equals(fs.readFileSync(runDirPaths(straight).metrics)));

  assert.equal(await truncateMetricsAfter(killed, -1), 6);
  assert.equal(fs.readFileSync(runDirPaths(killed).metrics, 'utf8'), '');
  assert.equal(await truncateMetricsAfter((await createRunDir(root, 'none')).dir, 3), 0);
});

test('a malformed complete line is a CorruptArtifactError naming the line, never skipped', async () => {
  const run = (await createRunDir(tmp(), 'r')).dir;
  fs.writeFileSync(runDirPaths(run).metrics, '{"step":1}\nnot json\n{"step":3}\n');
  assert.throws(() => readMetrics(run), (e) => e instanceof CorruptArtifactError && /line 2 is not JSON/.test(e.message));
  fs.writeFileSync(runDirPaths(run).metrics, '{"step":1}\n{"loss":2}\n');
  await assert.rejects(truncateMetricsAfter(run, 5), /line 2 is not an object with an integer "step"/);
});

test('frozen config: written once, read back, replace only when asked, plain JSON only', async () => {
  const run = (await createRunDir(tmp(), 'r')).dir;
  const config = { model: { path: '/m', dtype: 'F32' }, seed: 3, data: { files: ['a.jsonl'] } };
  await writeFrozenConfig(run, config);
  assert.deepEqual(readFrozenConfig(run), config);
  await assert.rejects(writeFrozenConfig(run, { ...config, seed: 4 }), /frozen/);
  await writeFrozenConfig(run, { ...config, seed: 4 }, { replace: true });
  assert.equal((readFrozenConfig(run) as { seed: number }).seed, 4);
  const other = (await createRunDir(tmp(), 'r')).dir;
  await assert.rejects(writeFrozenConfig(other, { lr: NaN }), /config\.lr is NaN/);
  await assert.rejects(writeFrozenConfig(other, { a: [1, undefined] }), /config\.a\[1\] is undefined/);
  await assert.rejects(writeFrozenConfig(other, { when: new Date(0) }), /config\.when is a Date object/);
  assert.throws(() => readFrozenConfig(other), /does not exist/);
  fs.writeFileSync(runDirPaths(other).config, '{"a":');
  assert.throws(() => readFrozenConfig(other), CorruptArtifactError);
});

const OLD = {
  model: { path: '/models/qwen-0.5b', tokenizer: '/models/qwen-0.5b' },
  data: { files: ['a.jsonl', 'b.jsonl'], maxPromptTokens: 256 },
  seed: 1,
  train: { steps: 100, lr: 1e-5, schedule: { warmup: 10 } },
  teacher: { url: 'http://127.0.0.1:8000' },
};

test('compareConfigs lists every changed, added and removed leaf; ignored paths cover their subtree', () => {
  assert.deepEqual(compareConfigs(OLD, structuredClone(OLD)), []);
  const next = {
    model: { path: '/models/qwen-1.5b', tokenizer: '/models/qwen-0.5b', dtype: 'BF16' },
    data: { files: ['a.jsonl', 'c.jsonl', 'd.jsonl'], maxPromptTokens: 256 },
    seed: 2,
    train: { steps: 200, lr: 1e-5, schedule: { warmup: 20 } },
  };
  assert.deepEqual(compareConfigs(OLD, next, { ignore: ['train.steps', 'train.schedule'] }), [
    { path: 'data.files[1]', kind: 'changed', old: 'b.jsonl', new: 'c.jsonl' },
    { path: 'data.files[2]', kind: 'added', old: undefined, new: 'd.jsonl' },
    { path: 'model.dtype', kind: 'added', old: undefined, new: 'BF16' },
    { path: 'model.path', kind: 'changed', old: '/models/qwen-0.5b', new: '/models/qwen-1.5b' },
    { path: 'seed', kind: 'changed', old: 1, new: 2 },
    { path: 'teacher', kind: 'removed', old: { url: 'http://127.0.0.1:8000' }, new: undefined },
  ]);
  // a type change is one change at that path, not one per leaf
  assert.deepEqual(compareConfigs({ a: { b: 1 } }, { a: [1] }), [{ path: 'a', kind: 'changed', old: { b: 1 }, new: [1] }]);
  assert.deepEqual(compareConfigs({ x: null }, { x: 0 }), [{ path: 'x', kind: 'changed', old: null, new: 0 }]);
});

test('checkResumeConfig (R14): refused with what changed, unless ignored or overridden', async () => {
  const run = (await createRunDir(tmp(), 'r')).dir;
  await writeFrozenConfig(run, OLD);
  const next = { ...OLD, seed: 7, model: { ...OLD.model, tokenizer: '/tok/other' } };
  assert.throws(() => checkResumeConfig(run, next), (e: unknown) => {
    assert.ok(e instanceof ConfigChangedError);
    assert.deepEqual(e.changes.map((c) => c.path), ['model.tokenizer', 'seed']);
    assert.match(e.message, /model\.tokenizer: "\/models\/qwen-0\.5b" -> "\/tok\/other"/);
    assert.match(e.message, /seed: 1 -> 7/);
    assert.match(e.message, /pass --force to accept/);
    return true;
  });
  assert.equal(checkResumeConfig(run, next, { override: true }).length, 2);
  assert.deepEqual(checkResumeConfig(run, { ...OLD, train: { ...OLD.train, steps: 500 } }, { ignore: ['train.steps'] }), []);
  assert.equal(formatChanges([{ path: 'teacher.url', kind: 'removed', old: 'u', new: undefined }]), '  teacher.url: "u" -> (absent)');
});
