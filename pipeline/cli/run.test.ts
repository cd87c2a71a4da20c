// `opd run` end to end on tiny models: the run directory's artifacts, the automatic resume, and
// the refusal to resume under a changed config without --force (R14).

import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { tinyModels, tinyRunConfig } from '../recipes/tiny-job.ts';
import { opd } from './opd-bin.ts';


test('opd run writes config, shards, metrics, checkpoints and summary; a changed config is refused', { timeout: 120_000 }, async () => {
  const root = mkdtempSync(join(tmpdir(), 'opd-run-cli-'));
  const m = await tinyModels(join(root, 'models'));
  const config = tinyRunConfig(root, m, { run: { name: 'r', steps: 3, checkpointEvery: 2, keepCheckpoints: 2, evalPrompts: 5 }, data: { testSize: 20 } });
  writeFileSync(join(root, 'c.json'), JSON.stringify(config));
  const r = await opd('run', join(root, 'c.json'));
  assert.equal(r.code, 0, r.stderr);
  const dir = join(root, 'runs', 'r');
  assert.equal(r.stdout.trim(), dir, 'prints the run directory');
  for (const f of ['config.json', 'metrics.jsonl', 'log.jsonl', 'summary.json', 'report.html', 'shards/manifest.json', 'checkpoints/step-000003/COMMITTED', 'checkpoints/step-000002/model/model.safetensors'])
    assert.ok(existsSync(join(dir, f)), `${f} exists`);
  assert.equal(readFileSync(join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n').length, 3);
  assert.ok(existsSync(join(root, 'runs', 'score-cache', 'manifest.json')), 'teacher scores cached for reruns');
  const summary = JSON.parse(readFileSync(join(dir, 'summary.json'), 'utf8'));
  for (const k of ['teacher_accuracy', 'student_before_accuracy', 'student_after_accuracy']) assert.ok(summary[k] >= 0 && summary[k] <= 1, `summary.${k} = ${summary[k]}`);

  const html = readFileSync(join(dir, 'report.html'), 'utf8');
  assert.match(html, /<svg[^>]*aria-label="mean reward of the sampled rollouts"/);
  for (const f of ['reward', 'accuracy', 'teacher_kl', 'loss', 'heatmap']) assert.ok(existsSync(join(dir, "report", `${f}.png`)), `report/${f}.png`);
  assert.equal((html.match(/title="teacher − student = /g) ?? []).length > 0, true, 'heat-map cells carry the teacher − student gap');

  const changed = await opd('run', join(root, 'c.json'), '--set', 'run.seed=5');
  assert.equal(changed.code, 1);
  assert.match(changed.stderr, /run\.seed: 0 -> 5/);
  const again = await opd('resume', dir);
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stderr, /resuming from .*step-000003/);
});

test('opd run with two teachers routed by prompt tag, one-step-stale sampling and a cosine lr', { timeout: 120_000 }, async () => {
  const root = mkdtempSync(join(tmpdir(), 'opd-run-routed-'));
  const m = await tinyModels(join(root, 'models'));
  const base = tinyRunConfig(root, m, { run: { name: 'routed', steps: 3, checkpointEvery: 3, evalPrompts: 4 }, data: { taskConfig: { digits: 1, ops: ['+', '-'] } } });
  const config = {
    ...base,
    teachers: [{ id: 'adder', kind: 'local', path: m.teacher }, { id: 'subtracter', kind: 'local', path: m.teacher }],
    routing: { byTag: { add: 'adder', sub: 'subtracter' } },
    train: { optimizer: { lr: 0.002, schedule: 'cosine' } },
    runtime: { threads: 1, oneStepStale: true },
  };
  writeFileSync(join(root, 'c.json'), JSON.stringify(config));
  const r = await opd('run', join(root, 'c.json'));
  assert.equal(r.code, 0, r.stderr);
  const metrics = readFileSync(join(root, 'runs', 'routed', 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, number>);
  assert.equal(metrics.length, 3);
  assert.ok(metrics.every((l) => Number.isFinite(l.teacher_kl)), 'every rollout got a teacher score through its route');
  assert.ok(metrics[2]!.lr < metrics[0]!.lr, 'cosine decay');

  const untagged = { ...config, run: { ...config.run, name: 'bad' }, routing: { byTag: { add: 'adder' } } };
  writeFileSync(join(root, 'bad.json'), JSON.stringify(untagged));
  const bad = await opd('run', join(root, 'bad.json'));
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /tag 'sub', which routes to no teacher; known tags: add/);
});
