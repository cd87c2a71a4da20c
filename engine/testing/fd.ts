// Helpers for finite-difference gradient tests: seeded input samplers and the error measure.
//
// Every draw comes from the project's seeded `Rng`, seeded per test case from its name, so a case's
// numbers do not change when other cases are added. "Dyadic" samples are multiples of 2^-10 with
// |x| <= 4, and dyadic directions multiples of 2^-10 in [-1, 1]: with a step h = 2^-7, x ± h·v then
// needs at most 20 significant bits and is exact in float32, so no rounding enters the feeds.

import { Rng } from '../rng.ts';

/**
 * How to draw an input: standard normal; uniform in [0.5, 2] (for log, sqrt, division, pow bases);
 * or a shuffled grid of values at least 0.05 apart (for max and top-k, so a small step never
 * changes which element wins).
 */
export type Kind = 'normal' | 'positive' | 'distinct';

export const DYADIC_STEP = 2 ** -7;

/** A generator seeded from a string (FNV-1a), so each test case has its own stream. */
export function rngFor(name: string): Rng {
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193) >>> 0;
  return new Rng(h);
}

const quantize = (x: number) => Math.round(x * 1024) / 1024;

export function sample(rng: Rng, n: number, kind: Kind, dyadic: boolean): number[] {
  let xs: number[];
  if (kind === 'normal') xs = Array.from({ length: n }, () => rng.normal());
  else if (kind === 'positive') xs = Array.from({ length: n }, () => 0.5 + 1.5 * rng.uniform());
  else {
    const grid = Array.from({ length: n }, (_, i) => -1 + (2 * i) / Math.max(1, n - 1));
    for (let i = n - 1; i > 0; i--) {
      const j = rng.int(i + 1);
      [grid[i], grid[j]] = [grid[j]!, grid[i]!];
    }
    xs = grid.map((x) => x * Math.max(1, n / 40)); // keep the spacing >= 0.05 for any n
  }
  return dyadic ? xs.map((x) => Math.max(-4, Math.min(4, quantize(x)))) : xs;
}

/** A random direction: normal, or dyadic in [-1, 1]. */
export function direction(rng: Rng, n: number, dyadic: boolean): number[] {
  return Array.from({ length: n }, () => (dyadic ? quantize(2 * rng.uniform() - 1) : rng.normal()));
}

export function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

/** |a - n| / max(1e-8, |a| + |n|): symmetric, and bounded by 1 when the two disagree in sign. */
export function relErr(a: number, n: number): number {
  return Math.abs(a - n) / Math.max(1e-8, Math.abs(a) + Math.abs(n));
}
