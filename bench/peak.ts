// The yardstick: the best fp32 MatMul throughput ONNX Runtime reaches on this machine, measured on
// square products n = 512..2048 with the same thread count as the figure it is compared to.

import { osThreads } from './util.ts';
import { compile } from '../engine/exec.ts';
import { Graph, matmul } from '../engine/index.ts';
import { hostTensor } from '../engine/runtime/host.ts';
import { Rng, normalArray } from '../engine/rng.ts';

export async function matmulPeakGflops(threads = osThreads(), sizes = [512, 1024, 1536, 2048]): Promise<{ gflops: number; bySize: Record<number, number> }> {
  const bySize: Record<number, number> = {};
  const rng = new Rng(0);
  for (const n of sizes) {
    const g = new Graph(`matmul${n}`);
    g.output('c', matmul(g.input('a', [n, n]), g.input('b', [n, n])));
    const s = await compile(g, { threads });
    const feeds = { a: hostTensor('float32', [n, n], normalArray(rng, n * n, 1)), b: hostTensor('float32', [n, n], normalArray(rng, n * n, 1)) };
    await s.run(feeds); // warm-up
    const reps = Math.max(3, Math.round(2e10 / (2 * n ** 3)));
    let best = Infinity;
    for (let i = 0; i < reps; i++) {
      const t0 = performance.now();
      await s.run(feeds);
      best = Math.min(best, performance.now() - t0);
    }
    bySize[n] = (2 * n ** 3) / (best / 1e3) / 1e9;
    await s.release();
  }
  return { gflops: Math.max(...Object.values(bySize)), bySize };
}
