// Decode benchmark: greedy KV-cache generation (student/generate) of the ~20M-parameter Qwen2-shaped
// yardstick model (hidden 512, 6 layers, 8 heads, 8 KV heads, MLP 1408, vocab 512, tied
// embeddings), which PyTorch decodes at 38 tok/s at batch 1 and 207 tok/s at batch 16.
//
// Figures (prefill excluded; a decode step = one decode run + host-side sampling for every row;
// each figure is the fastest of `reps` runs after a warm-up, as the cores may be shared):
//   decode_tokens_per_s_b{1,16}  rows × decode steps / decode wall time, prompt 32, 128 decode steps
//                                (the whole decode phase, its slower first steps included)
//   decode_ratio_1024_128        steady-state time per decode step after a 1024-token prompt / after
//                                a 128-token one (batch 1, steps 16..80); ≤ 1.5 means the per-token
//                                cost barely grows with the length
// Run directly (`node --import tsx bench/lm-decode.ts [--profile]`) for the yardstick model.

import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Rng } from '../engine/rng.ts';
import type { RuntimeOptions } from '../engine/runtime/session.ts';
import { Generator } from '../student/generate/generate.ts';
import { type ModelConfig, paramCount, parseConfig } from '../student/model/config.ts';
import { initWeights } from '../student/model/init.ts';
import { weightFeeds } from '../student/model/runner.ts';
import type { Weights } from '../student/model/weights.ts';
import { osThreads, profileByOp, round } from './util.ts';

export interface DecodeBenchOptions extends RuntimeOptions {
  /** New tokens per throughput run (default 128). */
  newTokens?: number;
  /** Repetitions per figure; the fastest is reported, since other jobs share the cores (default 5). */
  reps?: number;
  /** Also profile decode steps at P ≈ 1024 and report kernel time by op. */
  profile?: boolean;
  log?: (s: string) => void;
}

export interface DecodeBenchResult {
  decode_tokens_per_s_b1: number;
  decode_tokens_per_s_b16: number;
  decode_ratio_1024_128: number;
  decode_ms_per_step: Record<string, number>;
  threads: number;
  params: number;
  kernel_time_share_by_op_p1024?: Record<string, number> | null;
}

/** The yardstick model's config.json. */
export function yardstickConfig(): Record<string, unknown> {
  return {
    architectures: ['Qwen2ForCausalLM'],
    vocab_size: 512,
    hidden_size: 512,
    intermediate_size: 1408,
    num_hidden_layers: 6,
    num_attention_heads: 8,
    num_key_value_heads: 8,
    max_position_embeddings: 2048,
    tie_word_embeddings: true,
  };
}

export async function decodeBench(c: ModelConfig, weights: Weights, opts: DecodeBenchOptions = {}): Promise<DecodeBenchResult> {
  const log = opts.log ?? (() => {});
  const threads = opts.threads ?? osThreads();
  const reps = opts.reps ?? 5;
  const gen = await Generator.create(c, () => weightFeeds(c, weights), { ...opts, threads, profileFile: undefined });
  try {
    /** Fastest decode phase (ms) of `reps` generations of `steps` decode steps after a prompt of `promptLen`. */
    const decodeMs = async (batch: number, promptLen: number, steps: number) => {
      const prompts = randomPrompts(c, batch, promptLen);
      const ms: number[] = [];
      for (let r = 0; r <= reps; r++) {
        await gen.generate(prompts, { maxNewTokens: steps + 1, temperature: 0, stopTokenIds: [], rng: new Rng(0), padId: 0 });
        if (r > 0) ms.push(gen.lastStats!.decodeMs); // r = 0 warms up
      }
      return Math.min(...ms);
    };
    // The first ~10 steps after a prefill run up to 2× slower (measured; not ORT thread spinning),
    // so time per step at a position is taken in steady state: steps 16..80 after the prompt,
    // as the difference of an 80-step and a 16-step decode (the cache does not grow in either).
    const steadyMsPerStep = async (promptLen: number) => ((await decodeMs(1, promptLen, 80)) - (await decodeMs(1, promptLen, 16))) / 64;
    const newTokens = opts.newTokens ?? 128;
    const step: Record<string, number> = {};
    step.b1 = (await decodeMs(1, 32, newTokens)) / newTokens;
    log(`batch 1: ${step.b1.toFixed(2)} ms/step, ${(1000 / step.b1).toFixed(1)} tok/s`);
    step.b16 = (await decodeMs(16, 32, newTokens)) / newTokens;
    log(`batch 16: ${step.b16.toFixed(2)} ms/step, ${((16 * 1000) / step.b16).toFixed(1)} tok/s`);
    step.p128 = await steadyMsPerStep(128);
    step.p1024 = await steadyMsPerStep(1024);
    log(`batch 1 at P≈128: ${step.p128.toFixed(2)} ms/step, at P≈1024: ${step.p1024.toFixed(2)} ms/step`);
    const out: DecodeBenchResult = {
      decode_tokens_per_s_b1: round(1000 / step.b1),
      decode_tokens_per_s_b16: round((16 * 1000) / step.b16),
      decode_ratio_1024_128: round(step.p1024 / step.p128),
      decode_ms_per_step: Object.fromEntries(Object.entries(step).map(([k, v]) => [k, round(v)])),
      threads,
      params: paramCount(c),
    };
    if (opts.profile) out.kernel_time_share_by_op_p1024 = await profileDecode(c, weights, { ...opts, threads });
    return out;
  } finally {
    await gen.release();
  }
}

/** Kernel time by op over 16 decode steps at P ≈ 1024, batch 1. */
async function profileDecode(c: ModelConfig, weights: Weights, opts: RuntimeOptions): Promise<Record<string, number> | null> {
  const gen = await Generator.create(c, () => weightFeeds(c, weights), { ...opts, profileFile: join(tmpdir(), `opd-decode-${process.pid}`) });
  try {
    await gen.generate(randomPrompts(c, 1, 1024), { maxNewTokens: 17, temperature: 0, stopTokenIds: [], rng: new Rng(0), padId: 0 });
    const file = gen.endProfiling().decode;
    return file ? profileByOp(file) : null;
  } finally {
    await gen.release();
  }
}

function randomPrompts(c: ModelConfig, batch: number, len: number): number[][] {
  const rng = new Rng(batch * 7919 + len);
  return Array.from({ length: batch }, () => Array.from({ length: len }, () => rng.int(c.vocabSize)));
}

/** The bench/main.ts suite signature: the yardstick model, random init. */
export async function lmDecodeSuite(log: (s: string) => void): Promise<Record<string, unknown>> {
  const c = parseConfig(yardstickConfig());
  return { ...(await decodeBench(c, initWeights(c, 0), { log, profile: true })) };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const c = parseConfig(yardstickConfig());
  const r = await decodeBench(c, initWeights(c, 0), { log: (s) => console.error(s), profile: process.argv.includes('--profile') });
  console.log(JSON.stringify(r));
}
