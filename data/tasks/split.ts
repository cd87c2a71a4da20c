// Train/test membership by hashing the problem, and the shared draw loop of generated tasks.
//
// A problem belongs to the test split iff hash(task name, split key) / 2^32 < testFraction. The hash
// ignores the seed, so train and test are disjoint for every pair of seeds, and raising testFraction
// only moves problems from train into test (the 0.1 test set is a subset of the 0.2 one). The split
// key is the prompt unless a task chooses a coarser one (word problems hash their numbers, so a test
// problem's operands never appear in train under another name or item).
// Hash: FNV-1a over the UTF-8 bytes, then murmur3's fmix32 finaliser to spread the low bits.

import { Rng } from '../../engine/rng.ts';
import type { Split, TaskRecord } from './types.ts';

const encoder = new TextEncoder();

/** A 32-bit unsigned hash of `text`, stable across platforms and Node versions. */
export function hash32(text: string): number {
  let h = 0x811c9dc5;
  for (const byte of encoder.encode(text)) h = Math.imul(h ^ byte, 0x01000193);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Which split the problem with `key` belongs to. */
export function splitOf(taskName: string, key: string, testFraction: number): Split {
  return hash32(`${taskName}\u0000${key}`) / 2 ** 32 < testFraction ? 'test' : 'train';
}

/** One drawn problem before it becomes a record. */
export interface Problem {
  prompt: string;
  answer: string;
  /** What the split hashes; defaults to the prompt. */
  splitKey?: string;
  tag?: string;
  meta?: Record<string, unknown>;
}

export interface DrawSpec {
  taskName: string;
  testFraction: number;
  /** Draw one problem from the whole space (both splits); must use only `rng` for randomness. */
  draw(rng: Rng): Problem;
}

/**
 * Draw problems with `seed` until `n` distinct prompts of `split` are found. Ids are
 * `<task>:<split>:<seed>:<index>`. Gives up (with an error saying what to change) after a budget of
 * draws, which happens when the split holds fewer than about `n` problems.
 */
export function generateSplit(spec: DrawSpec, split: Split, n: number, seed: number): TaskRecord[] {
  if (!Number.isInteger(n) || n < 0) throw new Error(`${spec.taskName}: n must be a non-negative integer, got ${n}`);
  if (!Number.isInteger(seed)) throw new Error(`${spec.taskName}: seed must be an integer, got ${seed}`);
  const rng = new Rng(hash32(`${spec.taskName}\u0000${split}\u0000${seed}`));
  const seen = new Set<string>();
  const out: TaskRecord[] = [];
  const budget = 50 * n + 10_000;
  for (let attempt = 0; out.length < n; attempt++) {
    if (attempt >= budget)
      throw new Error(
        `${spec.taskName}: found only ${out.length} distinct ${split} problems in ${budget} draws, asked for ${n}; ` +
          `the ${split} split is too small — ask for fewer, make the task harder (more digits / larger values) or change testFraction`,
      );
    const p = spec.draw(rng);
    if (seen.has(p.prompt) || splitOf(spec.taskName, p.splitKey ?? p.prompt, spec.testFraction) !== split) continue;
    seen.add(p.prompt);
    out.push(toRecord(p, `${spec.taskName}:${split}:${seed}:${out.length}`));
  }
  return out;
}

function toRecord(p: Problem, id: string): TaskRecord {
  const r: TaskRecord = { id, prompt: p.prompt, answer: p.answer };
  if (p.tag !== undefined) r.tag = p.tag;
  if (p.meta !== undefined) r.meta = p.meta;
  return r;
}

/** An integer uniform in [lo, hi] (inclusive). */
export function intIn(rng: Rng, lo: number, hi: number): number {
  return lo + rng.int(hi - lo + 1);
}

/** A uniformly chosen element of a non-empty list. */
export function pick<T>(rng: Rng, items: readonly T[]): T {
  return items[rng.int(items.length)]!;
}
