// The yardstick: the best fp32 MatMul throughput ONNX Runtime reaches on this machine, measured on
// square products n = 512..2048 and on the models' own shapes ([m, k] · [k, n] as MatMul, and as
// Gemm with a transposed weight, which is how linear layers on frozen weights run), with the same
// thread count as the figure it is compared to. The peak is the best of all of them.

import { osThreads } from './util.ts';
import { compile } from '../engine/exec.ts';
import { Graph, gemmT, matmul } from '../engine/index.ts';
import { hostTensor } from '../engine/runtime/host.ts';
import { Rng, normalArray } from '../engine/rng.ts';

export async function matmulPeakGflops(
  threads = osThreads(),
  sizes = [512, 1024, 1536, 2048],
  shapes: ReadonlyArray<readonly [number, number, number]> = [],
): Promise<{ gflops: number; bySize: Record<string, number> }> {
  const bySize: Record<string, number> = {};
  const rng = new Rng(0);
  const cases: Array<[string, number, number, number, boolean]> = sizes.map((n) => [String(n), n, n, n, false]);
  for (const [m, k, n] of shapes) cases.push([`${m}x${k}x${n}`, m, k, n, false], [`${m}x${k}x${n}T`, m, k, n, true]);
  for (const [label, m, k, n, transB] of cases) {
    const g = new Graph(`matmul${label}`);
    const a = g.input('a', [m, k]);
    const b = g.input('b', transB ? [n, k] : [k, n]);
    g.output('c', transB ? gemmT(a, b) : matmul(a, b));
    const s = await compile(g, { threads });
    const feeds = { a: hostTensor('float32', [m, k], normalArray(rng, m * k, 1)), b: hostTensor('float32', transB ? [n, k] : [k, n], normalArray(rng, k * n, 1)) };
    await s.run(feeds); // warm-up
    const flops = 2 * m * k * n;
    const reps = Math.max(3, Math.round(2e10 / flops));
    let best = Infinity;
    for (let i = 0; i < reps; i++) {
      const t0 = performance.now();
      await s.run(feeds);
      best = Math.min(best, performance.now() - t0);
    }
    bySize[label] = flops / (best / 1e3) / 1e9;
    await s.release();
  }
  return { gflops: Math.max(...Object.values(bySize)), bySize };
}
