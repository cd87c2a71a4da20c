// Engine benchmark: one train step (forward + backward + AdamW in one graph) of a transformer block
// at d_model 512, 8 heads, MLP 1408, seq 256, batch 8, against this machine's MatMul peak.
//
// Analytic FLOPs per step (stated here, used for MFU):
//   linear params  P = 4·D² + 3·D·F                    (q, k, v, o; gate, up, down)
//   forward        2·P·N + 4·B·T²·D                     (N = B·T tokens; QKᵀ and A·V over the full T×T)
//   train step     3 × forward                          (backward ≈ 2 × forward; norms, softmax, AdamW
//                                                        and elementwise work are not counted)

import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Graph } from '../engine/index.ts';
import { hostTensor } from '../engine/runtime/host.ts';
import { Rng, normalArray } from '../engine/rng.ts';
import { type BlockConfig, blockRegression, initBlock } from '../engine/testing/toy.ts';
import { finishTrainStep } from '../engine/train/graph.ts';
import { Trainer } from '../engine/train/trainer.ts';
import { matmulPeakGflops } from './peak.ts';
import { osThreads, profileByOp, round, timeMs } from './util.ts';

export async function engineBench(log: (s: string) => void): Promise<Record<string, unknown>> {
  const threads = osThreads();
  const peak = await matmulPeakGflops(threads);
  log(`matmul peak ${peak.gflops.toFixed(1)} GFLOP/s (${JSON.stringify(peak.bySize)})`);

  const c: BlockConfig = { dModel: 512, heads: 8, kvHeads: 8, ffn: 1408, ropeTheta: 10000, eps: 1e-6 };
  const [B, T] = [8, 256];
  const P = 4 * c.dModel ** 2 + 3 * c.dModel * c.ffn;
  const flops = 3 * (2 * P * B * T + 4 * B * T * T * c.dModel);

  const rng = new Rng(0);
  const feeds = {
    x: hostTensor('float32', [B, T, c.dModel], normalArray(rng, B * T * c.dModel, 1)),
    target: hostTensor('float32', [B, T, c.dModel], normalArray(rng, B * T * c.dModel, 1)),
    position_ids: hostTensor('int64', [B, T], BigInt64Array.from({ length: B * T }, (_, i) => BigInt(i % T))),
  };
  const build = () => {
    const g = new Graph('block-train');
    return finishTrainStep(g, blockRegression(g, c, B, T).loss, { adamw: { maxGradNorm: 1 } });
  };
  const trainer = await Trainer.create(build(), initBlock(rng, 'layers.0', c), { threads });
  const ms = await timeMs(() => trainer.step(feeds, 1e-4), 5, 2);
  await trainer.release();
  const achieved = flops / (ms / 1e3) / 1e9;
  log(`block train step ${ms.toFixed(1)} ms, ${achieved.toFixed(1)} GFLOP/s, MFU ${(achieved / peak.gflops).toFixed(3)}`);

  const profiled = await Trainer.create(build(), initBlock(new Rng(0), 'layers.0', c), { threads, profileFile: join(tmpdir(), `opd-bench-${process.pid}`) });
  for (let i = 0; i < 3; i++) await profiled.step(feeds, 1e-4);
  const profile = await profiled.endProfiling();
  await profiled.release();

  return {
    threads,
    matmul_peak_gflops: round(peak.gflops),
    matmul_gflops_by_size: Object.fromEntries(Object.entries(peak.bySize).map(([k, v]) => [k, round(v)])),
    block: { d_model: c.dModel, heads: c.heads, ffn: c.ffn, seq: T, batch: B, params: P + 2 * c.dModel },
    train_step_ms: round(ms),
    train_step_gflop: round(flops / 1e9),
    train_step_gflops: round(achieved),
    train_step_mfu: round(achieved / peak.gflops),
    kernel_time_share_by_op: profile ? profileByOp(profile) : null,
  };
}
