// Small helpers shared by the benchmark suites.

import { availableParallelism } from 'node:os';
import { readFileSync, rmSync } from 'node:fs';

export const osThreads = (): number => availableParallelism();

/**
 * The environment bin/opd.mjs's launcher gives `opd` (glibc's mmap threshold fixed at 1 MiB unless
 * already set): bench phases that train at real size run in children under it, as `opd` would.
 */
export const launcherEnv = (): NodeJS.ProcessEnv => ({ ...process.env, MALLOC_MMAP_THRESHOLD_: process.env.MALLOC_MMAP_THRESHOLD_ ?? '1048576' });

export const round = (x: number, digits = 3): number => Number(x.toPrecision(digits));

/** Median wall time in ms of `reps` calls after `warmup` untimed ones. */
export async function timeMs(fn: () => Promise<unknown>, reps: number, warmup = 1): Promise<number> {
  for (let i = 0; i < warmup; i++) await fn();
  const ts: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    await fn();
    ts.push(performance.now() - t0);
  }
  ts.sort((a, b) => a - b);
  return ts[Math.floor(ts.length / 2)]!;
}

/** Total kernel time per ONNX op type from an ORT profile (Chrome trace JSON), as shares of the sum. */
export function profileByOp(file: string): Record<string, number> {
  const events = JSON.parse(readFileSync(file, 'utf8')) as Array<{ cat?: string; name?: string; dur?: number; args?: { op_name?: string } }>;
  rmSync(file, { force: true });
  const byOp: Record<string, number> = {};
  let total = 0;
  for (const e of events) {
    if (e.cat !== 'Node' || !e.name?.endsWith('_kernel_time') || !e.args?.op_name) continue;
    byOp[e.args.op_name] = (byOp[e.args.op_name] ?? 0) + (e.dur ?? 0);
    total += e.dur ?? 0;
  }
  const top = Object.entries(byOp).sort((a, b) => b[1] - a[1]).slice(0, 8);
  return Object.fromEntries(top.map(([k, v]) => [k, round(v / total, 2)]));
}
