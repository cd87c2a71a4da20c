// When ONNX Runtime was busy: a per-thread record of run intervals in absolute milliseconds
// (performance.timeOrigin + performance.now(), comparable across worker threads). Off by default
// and then free; the pipeline benchmark turns it on to split a step's wall time into time inside
// ORT runs and time outside them. Intervals may overlap (concurrent sessions, a teacher worker):
// busy time is their union, never their sum.

export const absoluteNow = (): number => performance.timeOrigin + performance.now();

let enabled = false;
let intervals: Array<[number, number]> = [];

export const ortClock = {
  get enabled(): boolean {
    return enabled;
  },
  enable(on = true): void {
    enabled = on;
    intervals = [];
  },
  /** Record one busy interval (no-op while disabled). */
  record(start: number, end: number): void {
    if (enabled) intervals.push([start, end]);
  },
  /** Add intervals measured elsewhere (e.g. reported by a worker thread). */
  merge(more: ReadonlyArray<readonly [number, number]>): void {
    if (enabled) for (const [a, b] of more) intervals.push([a, b]);
  },
  /** The recorded intervals, and forget them. */
  take(): Array<[number, number]> {
    const out = intervals;
    intervals = [];
    return out;
  },
  /** Busy milliseconds inside [t0, t1] (union of the recorded intervals, clipped). */
  busyWithin(t0: number, t1: number): number {
    return unionWithin(intervals, t0, t1);
  },
};

/** Length of the union of `spans` clipped to [t0, t1]. */
export function unionWithin(spans: ReadonlyArray<readonly [number, number]>, t0: number, t1: number): number {
  const clipped = spans.map(([a, b]) => [Math.max(a, t0), Math.min(b, t1)] as const).filter(([a, b]) => b > a).sort((x, y) => x[0] - y[0]);
  let total = 0;
  let [cs, ce] = [-Infinity, -Infinity];
  for (const [a, b] of clipped) {
    if (a > ce) {
      if (ce > cs) total += ce - cs;
      [cs, ce] = [a, b];
    } else ce = Math.max(ce, b);
  }
  if (ce > cs) total += ce - cs;
  return total;
}
