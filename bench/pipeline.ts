// Pipeline benchmark: wall time of one GRPO-OPD step split by stage, the share of it spent outside
// ONNX Runtime runs, and end-to-end tokens/s, on models big enough that ORT should dominate:
//   student: Qwen2-shaped, hidden 256, 4 layers, MLP 704, 4/2 heads, byte vocabulary (~3.4M params)
//   teacher: hidden 512, 6 layers, MLP 1408, 8/4 heads (~16M params), in its worker thread
// A step: 8 prompts × G 8 rollouts of up to 48 new tokens (sampled, T = 1), rewards, teacher scores,
// advantages (additive blend), one PPO train step, the rollout shard, the metrics line and a
// committed checkpoint — the real runPersisted loop. Random weights: timing does not depend on
// what the models know, and an EOS is rare, so rollouts run to the token limit.
//
// outside_ort_fraction = 1 − |∪ ORT run intervals ∩ step| / step wall time, where the intervals
// are every Session.run in the main thread plus the teacher worker's runs (engine/runtime/
// ort-clock.ts). Yardsticks: the MatMul peak of this machine (step MFU from analytic FLOPs:
// 2·P per generated or scored token, 6·P per trained token, P = matmul parameters as in lm.ts)
// and the target fraction 0.10. The checkpoint is timed separately (it runs after the step).

import { mkdtempSync, rmSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { combine } from '../data/rewards/index.ts';
import { createTask } from '../data/tasks/registry.ts';
import { loadTokenizer } from '../data/tokenizer/hf.ts';
import { absoluteNow, ortClock } from '../engine/runtime/ort-clock.ts';
import { openRunDir } from '../pipeline/rundir.ts';
import type { OpdSettings } from '../pipeline/recipes/opd.ts';
import { runPersisted } from '../pipeline/recipes/persisted.ts';
import { initModelDir, tinyConfig } from '../student/model/init.ts';
import { openTeacher } from '../teacher/open.ts';
import { matmulParams } from './lm.ts';
import { matmulPeakGflops } from './peak.ts';
import { osThreads, round } from './util.ts';

const STEPS = 5; // the first is a warm-up (session compilation), the median of the rest is reported

export async function pipelineBench(log: (s: string) => void): Promise<Record<string, unknown>> {
  const threads = osThreads();
  const peak = await matmulPeakGflops(threads);
  const root = mkdtempSync(join(tmpdir(), 'opd-bench-pipeline-'));
  try {
    const student = await initModelDir(join(root, 'student'), tinyConfig({ hidden_size: 256, intermediate_size: 704, num_hidden_layers: 4, num_attention_heads: 4, num_key_value_heads: 2 }), 0);
    const teacherDir = join(root, 'teacher');
    const tm = await initModelDir(teacherDir, tinyConfig({ hidden_size: 512, intermediate_size: 1408, num_hidden_layers: 6, num_attention_heads: 8, num_key_value_heads: 4 }), 1);
    const tok = await loadTokenizer(join(root, 'student'));
    const task = createTask('arithmetic', { digits: 3, ops: ['+', '-'] });
    const { teacher } = await openTeacher({ kind: 'local', path: teacherDir }, { threads });
    const settings: OpdSettings = {
      steps: STEPS, promptsPerStep: 8,
      sampling: { groupSize: 8, maxNewTokens: 48, temperature: 1 },
      advantages: { groupMode: 'mean', eps: 1e-6, baseline: 0, blend: { mode: 'additive', rewardWeight: 1 }, gamma: 0 },
      lambda: { kind: 'constant', lambda: 1 }, loss: { type: 'ppo', clipLow: 0.2, clipHigh: 0.2 }, aggregation: 'token_mean', maskTruncated: false,
      epochs: 1, minibatches: 1, microBatches: 1, lr: 1e-5, warmupSteps: 0, weightDecay: 0, adamw: { beta1: 0.9, beta2: 0.999, eps: 1e-8, maxGradNorm: 1 },
      maxConsecutiveSkips: 3, seed: 0, runtime: { threads },
    };
    const runDir = join(root, 'run');
    await mkdir(runDir);
    const steps: Array<Record<string, number>> = [];
    ortClock.enable();
    const r = await runPersisted(await openRunDir(runDir), {
      student: { config: student.config, weights: student.weights, tokenizer: tok }, teacher,
      prompts: task.generate('train', 64, 0), reward: await combine(task.reward), settings,
    }, {
      checkpointEvery: 1, keepLast: 1, tokenizerFrom: join(root, 'student'),
      onStep: (rec, _s, info) => {
        const now = absoluteNow();
        const checkpointMs = (info.checkpointSeconds ?? 0) * 1e3;
        const end = now - checkpointMs; // the checkpoint ran after the step's own window
        const wall = rec.metrics.step_s! * 1e3;
        const busy = ortClock.busyWithin(end - wall, end);
        ortClock.take();
        const tokens = rec.metrics.prompt_tokens! + rec.metrics.completion_tokens!;
        steps.push({ ...rec.metrics, checkpoint_s: checkpointMs / 1e3, outside: 1 - busy / wall, tokens });
        log(`step ${rec.step}: ${wall.toFixed(0)} ms (generate ${(rec.metrics.generate_s! * 1e3).toFixed(0)}, teacher ${(rec.metrics.teacher_s! * 1e3).toFixed(0)}, train ${(rec.metrics.train_s! * 1e3).toFixed(0)}), outside ORT ${(100 * (1 - busy / wall)).toFixed(1)} %, checkpoint ${checkpointMs.toFixed(0)} ms`);
      },
    });
    ortClock.enable(false);
    await r.close();
    await teacher.close();
    const timed = steps.slice(1);
    const med = (k: string) => {
      const v = timed.map((s) => s[k]!).sort((a, b) => a - b);
      return v[Math.floor(v.length / 2)]!;
    };
    const [Ps, Pt] = [matmulParams(student.config), matmulParams(tm.config)];
    const tokens = med('tokens');
    const completion = med('completion_tokens');
    const flops = 2 * Ps * completion + 2 * Pt * tokens + 6 * Ps * tokens;
    return {
      threads,
      matmul_peak_gflops: round(peak.gflops),
      student_matmul_params_M: round(Ps / 1e6),
      teacher_matmul_params_M: round(Pt / 1e6),
      rollouts_per_step: 64,
      step_s: round(med('step_s')),
      generate_s: round(med('generate_s')),
      reward_s: round(med('reward_s')),
      teacher_s: round(med('teacher_s')),
      train_s: round(med('train_s')),
      checkpoint_s: round(med('checkpoint_s')),
      outside_ort_fraction: round(med('outside'), 2),
      outside_ort_target: 0.1,
      tokens_per_s: round(tokens / med('step_s')),
      step_mfu: round(flops / med('step_s') / 1e9 / peak.gflops, 2),
    };
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}
