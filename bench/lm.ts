// LM benchmark for the ~20M-parameter Qwen2-shaped yardstick student (hidden 512, 6 layers, 8 heads,
// 8 KV heads, MLP 1408, vocab 512, tied embeddings; PyTorch 1.13 CPU trains it at ~660 tokens/s at
// batch 8 × 123 and greedy-decodes 38 / 207 tokens/s at batch 1 / 16 on this machine).
//
// Analytic FLOPs (MFU = achieved / MatMul peak of the same run):
//   P_mm = L·(D·(H+2·Hkv)·Dh + H·Dh·D + 3·D·F) + V·D      matmul weights, LM head included
//   forward over N tokens in rows of T:  2·P_mm·N + 4·N·T·D·L   (QKᵀ and A·V over full T×T rows)
//   train step = 3 × forward;  prefill = forward (its LM head runs on the last position only,
//   so prefill counts 2·(P_mm − V·D)·N + 2·V·D·B instead of 2·P_mm·N)

import { Rng } from '../engine/rng.ts';
import { Trainer } from '../engine/train/trainer.ts';
import { type ModelConfig, matmulParams, parseConfig } from '../student/model/config.ts';
import { initWeights } from '../student/model/init.ts';
import { buildSftTrainStep, packSftBatch } from '../student/train/step.ts';
import { decodeBench, yardstickConfig } from './lm-decode.ts';
import { prefillBench } from './lm-prefill.ts';
import { matmulPeakGflops } from './peak.ts';
import { osThreads, round, timeMs } from './util.ts';

export { matmulParams };

async function trainBench(c: ModelConfig, threads: number, log: (s: string) => void) {
  const [B, T] = [8, 123];
  const rng = new Rng(0);
  const examples = Array.from({ length: B }, () => ({
    promptIds: Array.from({ length: 20 }, () => rng.int(c.vocabSize)),
    completionIds: Array.from({ length: T - 20 }, () => rng.int(c.vocabSize)),
  }));
  const feeds = packSftBatch(examples, { padId: 0 });
  const trainer = await Trainer.create(buildSftTrainStep(c, { weightDecay: 0.01, adamw: { maxGradNorm: 1 } }), Object.fromEntries(initWeights(c, 0)), { threads });
  const ms = await timeMs(() => trainer.step(feeds, 1e-4), 5, 2);
  await trainer.release();
  const tokens = B * T;
  const flops = 3 * (2 * matmulParams(c) * tokens + 4 * tokens * T * c.hiddenSize * c.numLayers);
  log(`train step ${ms.toFixed(0)} ms for ${tokens} tokens`);
  return { ms, tokensPerS: tokens / (ms / 1e3), gflops: flops / (ms / 1e3) / 1e9 };
}

export async function lmBench(log: (s: string) => void): Promise<Record<string, unknown>> {
  const threads = osThreads();
  const raw = yardstickConfig();
  const c = parseConfig(raw);
  // the peak includes this model's own products (prefill rows × its projections), not only squares
  const rows = 8 * 256;
  const [D, F, q, kv] = [c.hiddenSize, c.intermediateSize, c.numHeads * c.headDim, c.numKvHeads * c.headDim];
  const peak = await matmulPeakGflops(threads, undefined, [[rows, D, q], [rows, D, kv], [rows, D, F], [rows, F, D], [rows, q, D]]);
  log(`matmul peak ${peak.gflops.toFixed(1)} GFLOP/s`);
  const train = await trainBench(c, threads, log);
  const prefill = await prefillBench(c, initWeights(c, 0), { threads, log });
  const decode = await decodeBench(c, initWeights(c, 0), { threads, log });
  return {
    threads,
    config: raw,
    matmul_params: matmulParams(c),
    matmul_peak_gflops: round(peak.gflops),
    prefill_tokens_per_s: round(prefill.tokensPerS),
    prefill_mfu: round(prefill.gflops / peak.gflops),
    decode_tokens_per_s_b1: round(decode.decode_tokens_per_s_b1),
    decode_tokens_per_s_b16: round(decode.decode_tokens_per_s_b16),
    decode_ratio_1024_128: round(decode.decode_ratio_1024_128),
    train_tokens_per_s: round(train.tokensPerS),
    train_mfu: round(train.gflops / peak.gflops),
    pytorch_yardstick: { train_tokens_per_s: 660, decode_tokens_per_s_b1: 38, decode_tokens_per_s_b16: 207, source: 'issue #3: PyTorch 1.13 CPU eager, OpenBLAS, 2 threads, this machine' },
  };
}
