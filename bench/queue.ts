// Queue benchmark (issue 14): seconds per GRPO-OPD step in-process vs as the controller of a local
// redis-server with 2 `opd worker` processes, and the queue's own overhead per job.
// Models and step as in the pipeline bench (student ~3.4M, teacher ~16M matmul params; 8 prompts ×
// G 8 × up to 48 new tokens), sampled in slices of 4 prompts (2 rollout jobs and 2 teacher jobs a
// step). Both runs use the same threads per ORT session, so they end on the same bytes (checked).
// overhead per job = the controller's add-to-result time − the work time the worker reports
// (Redis round trips, the weights fetch once per step, Arrow encode/decode, pick-up latency);
// its target is ≤ 5 % of a step. On one machine the workers compete with the controller for the
// same cores, so the queued step shows the queue's cost, not a speed-up.

import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { combine } from '../data/rewards/index.ts';
import { createTask } from '../data/tasks/registry.ts';
import { loadTokenizer } from '../data/tokenizer/hf.ts';
import { openRunDir } from '../pipeline/rundir.ts';
import type { OpdSettings } from '../pipeline/recipes/opd.ts';
import { runPersisted } from '../pipeline/recipes/persisted.ts';
import { queueJob } from '../pipeline/queue/controller.ts';
import { hasRedis, spawnWorker, startRedis } from '../pipeline/queue/redis-server.ts';
import { initModelDir, tinyConfig } from '../student/model/init.ts';
import { loadModelDir } from '../student/model/weights.ts';
import { openTeacher } from '../teacher/open.ts';
import { osThreads, round } from './util.ts';

const STEPS = 4; // the first is a warm-up (sessions compile, workers open their models), the median of the rest is reported

export async function queueBench(log: (s: string) => void): Promise<Record<string, unknown>> {
  if (!hasRedis()) throw new Error('the queue bench needs redis-server (apt-get install redis-server)');
  const threads = osThreads();
  const root = mkdtempSync(join(tmpdir(), 'opd-bench-queue-'));
  const redis = await startRedis();
  try {
    const sdir = join(root, 'student');
    const tdir = join(root, 'teacher');
    await initModelDir(sdir, tinyConfig({ hidden_size: 256, intermediate_size: 704, num_hidden_layers: 4, num_attention_heads: 4, num_key_value_heads: 2 }), 0);
    await initModelDir(tdir, tinyConfig({ hidden_size: 512, intermediate_size: 1408, num_hidden_layers: 6, num_attention_heads: 8, num_key_value_heads: 4 }), 1);
    const task = createTask('arithmetic', { digits: 3, ops: ['+', '-'] });
    const settings: OpdSettings = {
      steps: STEPS, promptsPerStep: 8,
      sampling: { groupSize: 8, maxNewTokens: 48, temperature: 1, slicePrompts: 4 },
      advantages: { groupMode: 'mean', eps: 1e-6, baseline: 0, blend: { mode: 'additive', rewardWeight: 1 }, gamma: 0 },
      lambda: { kind: 'constant', lambda: 1 }, loss: { type: 'ppo', clipLow: 0.2, clipHigh: 0.2 }, aggregation: 'token_mean', maskTruncated: false,
      epochs: 1, minibatches: 1, microBatches: 1, lr: 1e-5, warmupSteps: 0, weightDecay: 0, adamw: { beta1: 0.9, beta2: 0.999, eps: 1e-8, maxGradNorm: 1 },
      maxConsecutiveSkips: 3, seed: 0, runtime: { threads },
    };
    const once = async (name: string, queue?: string) => {
      const [student, tok, { teacher }] = await Promise.all([loadModelDir(sdir), loadTokenizer(sdir), openTeacher({ kind: 'local', path: tdir }, { threads })]);
      const job = { student: { config: student.config, weights: student.weights, tokenizer: tok }, teacher, prompts: task.generate('train', 64, 0), reward: await combine(task.reward), settings };
      const ctl = queue ? await queueJob(job, [{ id: 't', spec: { id: 't', kind: 'local', path: tdir }, teacher }], { url: queue }) : null;
      const dir = join(root, name);
      await mkdir(dir);
      const steps: number[] = [];
      const r = await runPersisted(await openRunDir(dir), job, {
        checkpointEvery: STEPS, keepLast: 1, tokenizerFrom: sdir,
        onStep: (rec) => {
          steps.push(rec.metrics.step_s!);
          log(`${name} step ${rec.step}: ${(rec.metrics.step_s! * 1e3).toFixed(0)} ms (generate ${(rec.metrics.generate_s! * 1e3).toFixed(0)}, teacher ${(rec.metrics.teacher_s! * 1e3).toFixed(0)}, train ${(rec.metrics.train_s! * 1e3).toFixed(0)})`);
        },
      });
      await r.close();
      await ctl?.close();
      await teacher.close();
      const ck = join(dir, 'checkpoints', `step-${String(STEPS).padStart(6, '0')}`, 'model', 'model.safetensors');
      return { step_s: median(steps.slice(1)), weights: createHash('sha256').update(readFileSync(ck)).digest('hex'), timings: ctl?.timings ?? [] };
    };
    const local = await once('in-process');
    const workers = await Promise.all([spawnWorker(redis.url), spawnWorker(redis.url)]);
    let queued: Awaited<ReturnType<typeof once>>;
    try {
      queued = await once('queued', redis.url);
    } finally {
      await Promise.all(workers.map((w) => w.stop()));
    }
    const perStep = queued.timings.length / STEPS;
    const timed = queued.timings.slice(perStep); // after the warm-up step
    const overhead = median(timed.map((t) => t.roundTrip_s - t.work_s));
    return {
      threads,
      workers: 2,
      jobs_per_step: perStep,
      in_process_step_s: round(local.step_s),
      queued_step_s: round(queued.step_s),
      queue_overhead_per_job_s: round(overhead),
      queue_overhead_fraction_of_step: round(overhead / queued.step_s, 2),
      queue_overhead_target: 0.05,
      same_final_weights: local.weights === queued.weights,
    };
  } finally {
    await redis.stop();
    rmSync(root, { recursive: true, force: true });
  }
}

function median(v: number[]): number {
  const s = [...v].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? NaN;
}
