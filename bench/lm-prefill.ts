// Prefill benchmark: one forward over a batch of prompts (8 × 256 tokens) through the prefill graph
// (KV cache out, logits of the last position only). FLOPs: see bench/lm.ts.

import { compile } from '../engine/exec.ts';
import { Rng } from '../engine/rng.ts';
import type { ModelConfig } from '../student/model/config.ts';
import { packSequences, weightFeeds } from '../student/model/runner.ts';
import type { Weights } from '../student/model/weights.ts';
import { buildPrefillGraph } from '../student/generate/graphs.ts';
import { matmulParams } from './lm.ts';
import { timeMs } from './util.ts';

export async function prefillBench(c: ModelConfig, w: Weights, opts: { threads: number; log: (s: string) => void; batch?: number; seq?: number }) {
  const [B, T] = [opts.batch ?? 8, opts.seq ?? 256];
  const rng = new Rng(1);
  const packed = packSequences(Array.from({ length: B }, () => Array.from({ length: T }, () => rng.int(c.vocabSize))), 0, 'left');
  const session = await compile(buildPrefillGraph(c), { threads: opts.threads });
  const feeds = { ...weightFeeds(c, w), input_ids: packed.input_ids, attention_mask: packed.attention_mask, position_ids: packed.position_ids };
  const ms = await timeMs(() => session.run(feeds, ['logits']), 5, 1);
  await session.release();
  const N = B * T;
  const head = c.vocabSize * c.hiddenSize;
  const flops = 2 * (matmulParams(c) - head) * N + 2 * head * B + 4 * N * T * c.hiddenSize * c.numLayers;
  opts.log(`prefill ${B}×${T}: ${ms.toFixed(0)} ms`);
  return { ms, tokensPerS: N / (ms / 1e3), gflops: flops / (ms / 1e3) / 1e9 };
}
