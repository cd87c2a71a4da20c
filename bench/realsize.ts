// `npm run bench -- realsize`: examples/real-size/run.json end to end (issue 11, item 6): a
// Qwen3-0.6B-shaped LoRA student and a Qwen3-1.7B-shaped teacher, 2 steps of 4 prompts × G 4.
// Builds the random-init models once (examples/real-size/make-models.sh), runs the job, then runs
// it again killed with SIGKILL after its first step and started again, and compares the two runs'
// final adapters byte for byte. `opd` is started as a program (bin/opd.mjs's launcher, as `npx opd` does). Reports wall seconds and the peak RSS / PSS of each `opd run`.

import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { round } from './util.ts';

const root = new URL('..', import.meta.url).pathname;
const bin = join(root, 'bin/opd.mjs');
const sha = (f: string) => createHash('sha256').update(readFileSync(f)).digest('hex');

/** `opd run` in a child; samples its RSS and PSS; `killAfterStep` sends SIGKILL once metrics has that many lines. */
function opdRun(name: string, killAfterStep?: number): Promise<{ code: number | null; signal: string | null; wall_s: number; peak_rss_gb: number; peak_pss_gb: number }> {
  const t0 = performance.now();
  const child = spawn(bin, ['run', 'examples/real-size/run.json', '--set', `run.name=${name}`], { cwd: root, stdio: ['ignore', 'ignore', 'inherit'] });
  let rss = 0;
  let pss = 0;
  const poll = setInterval(() => {
    try {
      const s = readFileSync(`/proc/${child.pid}/smaps_rollup`, 'utf8');
      rss = Math.max(rss, Number(/^Rss:\s+(\d+)/m.exec(s)![1]) / 1e6);
      pss = Math.max(pss, Number(/^Pss:\s+(\d+)/m.exec(s)![1]) / 1e6);
      const metrics = join(root, 'runs', name, 'metrics.jsonl');
      if (killAfterStep && existsSync(metrics) && readFileSync(metrics, 'utf8').trim().split('\n').length >= killAfterStep) child.kill('SIGKILL');
    } catch {
      // not started yet, or gone
    }
  }, 1000);
  return new Promise((resolve) => {
    child.on('exit', (code, signal) => {
      clearInterval(poll);
      resolve({ code, signal, wall_s: round((performance.now() - t0) / 1e3), peak_rss_gb: round(rss), peak_pss_gb: round(pss) });
    });
  });
}

export async function realSizeBench(log: (s: string) => void): Promise<Record<string, unknown>> {
  log('realsize: building the random-init models (once) ...');
  execFileSync(join(root, 'examples/real-size/make-models.sh'), { stdio: ['ignore', 'ignore', 'inherit'] });
  for (const n of ['real-size-a', 'real-size-b']) rmSync(join(root, 'runs', n), { recursive: true, force: true });
  log('realsize: uninterrupted run ...');
  const a = await opdRun('real-size-a');
  if (a.code !== 0) throw new Error(`the real-size run failed (exit ${a.code})`);
  log('realsize: a run killed after step 1, then resumed ...');
  const killed = await opdRun('real-size-b', 1);
  const resumed = await opdRun('real-size-b');
  if (resumed.code !== 0) throw new Error(`the resumed real-size run failed (exit ${resumed.code})`);
  const adapter = (n: string) => sha(join(root, 'runs', n, 'lora/adapter/adapter_model.safetensors'));
  const moments = (n: string) => sha(join(root, 'runs', n, 'checkpoints/step-000002/optimizer.safetensors'));
  const metricsA = readFileSync(join(root, 'runs/real-size-a/metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  return {
    config: 'examples/real-size/run.json: Qwen3-0.6B-shaped student, LoRA r16 on every projection, Qwen3-1.7B-shaped teacher, 2 steps of 4 prompts x G 4, 16 new tokens',
    run: a,
    step_s: metricsA.map((m) => round(m.step_s as number)),
    killed_run: { signal: killed.signal, wall_s: killed.wall_s },
    resumed_run: resumed,
    resume_exact: adapter('real-size-a') === adapter('real-size-b') && moments('real-size-a') === moments('real-size-b'),
  };
}
