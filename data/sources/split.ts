// A held-out test split cut from a loaded prompt file, deterministic in the run seed.
//
// Each record is ranked by hash32(seed, id) (ids are unique within a load: duplicates are rejects),
// and the round(fraction × n) lowest-ranked records — at least one — form the test split; the rest
// train. Both splits keep file order. The choice depends only on (seed, ids, fraction), never on
// where a record sits in the file, so re-ordering the file keeps the split, and the two splits are
// disjoint by construction. Throws when either split would be empty.

import type { TaskRecord } from '../tasks/types.ts';
import { hash32 } from '../tasks/split.ts';

export interface HeldOutSplit {
  train: TaskRecord[];
  test: TaskRecord[];
}

/** Hold out `fraction` of `records` (0 < fraction < 1) for testing, chosen by `seed`; see the header. */
export function holdOut(records: readonly TaskRecord[], fraction: number, seed: number): HeldOutSplit {
  if (!(fraction > 0 && fraction < 1)) throw new RangeError(`holdOut: fraction must be in (0, 1), got ${fraction}`);
  if (!Number.isInteger(seed)) throw new RangeError(`holdOut: seed must be an integer, got ${seed}`);
  const n = records.length;
  const k = Math.max(1, Math.round(fraction * n));
  if (k >= n) throw new Error(`holding out ${fraction} of ${n} records leaves none to train on; use a smaller data.test fraction or a larger file`);
  const rank = records.map((r, i) => ({ i, h: hash32(`held-out\u0000${seed}\u0000${r.id}`) }));
  rank.sort((a, b) => a.h - b.h || a.i - b.i);
  const test = new Set(rank.slice(0, k).map((x) => x.i));
  return { train: records.filter((_, i) => !test.has(i)), test: records.filter((_, i) => test.has(i)) };
}
