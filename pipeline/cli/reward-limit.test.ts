// docs/reliability.md "reward time limit" (issue 13 item 5), through `opd run`:
// - a reward module whose promise never settles ends the run with exit 1 and a message naming the
//   module, the record and the limit (it used to exit 13 with no output: an unsettled top-level await);
// - a reward module that busy-loops runs in its own worker thread, so the run still answers signals:
//   SIGTERM is acknowledged and a second one exits at once with 143 (R13), long before the limit.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { tinyModels, tinyRunConfig } from '../recipes/tiny-job.ts';

const bin = new URL('../../bin/opd.mjs', import.meta.url).pathname;

/** `opd ARGS` in a child; `onRunning` gets the process and its stderr so far. A child still running after 120 s is killed (the test then fails instead of hanging). */
function opd(args: string[], onRunning?: (p: ReturnType<typeof spawn>, stderr: () => string) => void) {
  const p = spawn(process.execPath, [bin, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  p.stderr!.on('data', (d) => (stderr += d));
  const guard = setTimeout(() => p.kill('SIGKILL'), 120_000);
  onRunning?.(p, () => stderr);
  return new Promise<{ code: number | null; stderr: string }>((resolve) => p.on('exit', (code) => (clearTimeout(guard), resolve({ code, stderr }))));
}

/** A config whose reward is the module `body` (it gets METRICS: the run's metrics file, MARK: a marker path). */
async function setup(name: string, body: string, rewardTimeoutMs: number) {
  const root = mkdtempSync(join(tmpdir(), `opd-reward-limit-${name}-`));
  const m = await tinyModels(join(root, 'models'));
  const metrics = join(root, 'runs', name, 'metrics.jsonl');
  const mark = join(root, 'in-reward');
  writeFileSync(join(root, 'r.mjs'), `import { existsSync, writeFileSync } from 'node:fs';\nconst METRICS = ${JSON.stringify(metrics)}, MARK = ${JSON.stringify(mark)};\n${body}\n`);
  const c = tinyRunConfig(root, m, { run: { name, steps: 20, checkpointEvery: 100, evalEvery: 0, evalPrompts: 4 }, rollout: { rewardTimeoutMs } });
  writeFileSync(join(root, 'c.json'), JSON.stringify({ ...c, rewards: [{ type: 'module', path: join(root, 'r.mjs') }] }));
  return { config: join(root, 'c.json'), mark, module: join(root, 'r.mjs') };
}

test('a reward module that never settles ends the run with exit 1 naming the module, the record and the limit', { timeout: 180_000 }, async () => {
  // settles during start-up (held-out evaluation), never once training has begun
  const s = await setup('never', `export default (_p, c, r) => existsSync(METRICS) ? new Promise(() => {}) : (c.trim() === r.answer ? 1 : 0);`, 1000);
  const r = await opd(['run', s.config]);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, new RegExp(`reward module ${s.module.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} \\(export "default"\\) did not return within 1000 ms for record \\S+ \\(the reward time limit, rollout\\.rewardTimeoutMs = 1000\\)`));
});

test('SIGTERM while a reward module busy-loops: the run still answers, and a second SIGTERM exits 143 at once', { timeout: 180_000 }, async () => {
  const s = await setup('busy', `export default (_p, c, r) => { if (existsSync(METRICS)) { writeFileSync(MARK, 'x'); for (;;) {} } return c.trim() === r.answer ? 1 : 0; };`, 600_000);
  const r = await opd(['run', s.config], (p, stderr) => {
    let sent = 0;
    const poll = setInterval(() => {
      if (sent === 0 && existsSync(s.mark)) (sent = 1), p.kill('SIGTERM');
      // the second signal once the first was acknowledged: the main thread ran its handler
      if (sent === 1 && /SIGTERM: finishing the current step/.test(stderr())) (sent = 2), p.kill('SIGTERM');
    }, 20);
    p.on('exit', () => clearInterval(poll));
  });
  assert.equal(r.code, 143, r.stderr);
  assert.match(r.stderr, /second SIGTERM: exiting now/);
});
