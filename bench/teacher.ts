// Teacher benchmark: a ~100M-parameter Qwen2-shaped teacher (hidden 768, 12 heads,
// MLP 2304, 13 layers, byte vocabulary 264 tied) scoring 16 sequences of 512 tokens
//   local:  LocalTeacher (its worker thread runs the scoring graph)
//   served: opd teacher serve on loopback, read by HttpTeacher with 8 requests in flight
// FLOPs per scored batch: 2·P_mm·N + 4·N·T·D·L (P_mm as in bench/lm.ts, LM head included).

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Rng } from '../engine/rng.ts';
import { parseConfig } from '../student/model/config.ts';
import { initModelDir } from '../student/model/init.ts';
import { HttpTeacher } from '../teacher/http.ts';
import { LocalTeacher } from '../teacher/local.ts';
import { TeacherServer } from '../teacher/server.ts';
import type { TeacherRequest } from '../teacher/types.ts';
import { matmulParams } from './lm.ts';
import { matmulPeakGflops } from './peak.ts';
import { osThreads, round } from './util.ts';

const config = {
  architectures: ['Qwen2ForCausalLM'],
  vocab_size: 264, // the byte tokenizer's, so the directory is a complete HF model with a tokenizer
  hidden_size: 768,
  intermediate_size: 2304,
  num_hidden_layers: 13,
  num_attention_heads: 12,
  num_key_value_heads: 12,
  max_position_embeddings: 1024,
  tie_word_embeddings: true,
};

async function best(fn: () => Promise<unknown>, reps: number): Promise<number> {
  await fn();
  let ms = Infinity;
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    await fn();
    ms = Math.min(ms, performance.now() - t0);
  }
  return ms;
}

export async function teacherBench(log: (s: string) => void): Promise<Record<string, unknown>> {
  const threads = osThreads();
  const peak = await matmulPeakGflops(threads);
  const dir = join(mkdtempSync(join(tmpdir(), 'opd-bench-teacher-')), 'teacher');
  const m = await initModelDir(dir, config, 0);
  const c = parseConfig(config);
  const [B, T] = [16, 512];
  const rng = new Rng(2);
  const reqs: TeacherRequest[] = Array.from({ length: B }, () => ({ ids: Array.from({ length: T }, () => rng.int(c.vocabSize)), start: 64 }));
  const N = B * T;
  const flops = 2 * matmulParams(c) * N + 4 * N * T * c.hiddenSize * c.numLayers;
  const local = await LocalTeacher.open(dir, { threads, batchTokens: 4096 });
  try {
    const localMs = await best(() => local.score(reqs), 2);
    log(`local: ${localMs.toFixed(0)} ms for ${N} tokens`);
    const server = await TeacherServer.start(local, { modelName: 'bench' });
    const http = new HttpTeacher({ url: server.url, model: 'bench', flavor: 'vllm', concurrency: 8, identity: { tokenizerFingerprint: local.identity.tokenizerFingerprint, vocabSize: c.vocabSize } });
    const servedMs = await best(() => http.score(reqs), 2);
    log(`served: ${servedMs.toFixed(0)} ms for ${N} tokens (${server.stats.runs} scoring runs for ${server.stats.completions} requests)`);
    await http.close();
    await server.close();
    return {
      threads,
      teacher_params: m.config ? round(matmulParams(c) / 1e6) + 'M matmul' : null,
      matmul_peak_gflops: round(peak.gflops),
      local_tokens_per_s: round(N / (localMs / 1e3)),
      local_mfu: round(flops / (localMs / 1e3) / 1e9 / peak.gflops),
      served_tokens_per_s: round(N / (servedMs / 1e3)),
      served_over_local: round(localMs / servedMs),
    };
  } finally {
    await local.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
