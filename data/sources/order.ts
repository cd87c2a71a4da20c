// Deterministic epoch order over a data set, so a resumed run draws exactly the prompts the
// uninterrupted run would have (R4). Epoch e visits the records in shuffledOrder(n, seed, e), a
// Fisher–Yates permutation seeded by hash(seed, epoch); an EpochCursor {epoch, index} — saved in the
// checkpoint — says where the next draw starts, and takeNext crosses epoch boundaries itself.

import { Rng } from '../../engine/rng.ts';
import { hash32 } from '../tasks/split.ts';

/** Position of the next record to draw: `index` into epoch `epoch`'s permutation. */
export interface EpochCursor {
  epoch: number;
  index: number;
}

function checkCount(what: string, v: number, min: number): void {
  if (!Number.isInteger(v) || v < min) throw new Error(`${what} must be an integer >= ${min}, got ${v}`);
}

/** A permutation of 0..n-1, the same for the same (n, seed, epoch) and different across epochs. */
export function shuffledOrder(n: number, seed: number, epoch: number): number[] {
  checkCount('shuffledOrder: n', n, 0);
  checkCount('shuffledOrder: epoch', epoch, 0);
  if (!Number.isInteger(seed)) throw new Error(`shuffledOrder: seed must be an integer, got ${seed}`);
  const rng = new Rng(hash32(`epoch-order\u0000${seed}\u0000${epoch}`));
  const a = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

/** The next `count` record indices from `cursor`, and the cursor after them (a finished epoch rolls to {epoch + 1, 0}). */
export function takeNext(n: number, seed: number, cursor: EpochCursor, count: number): { indices: number[]; cursor: EpochCursor } {
  checkCount('takeNext: n', n, 1);
  checkCount('takeNext: count', count, 0);
  checkCount('takeNext: cursor.index', cursor.index, 0);
  if (cursor.index > n) throw new Error(`takeNext: cursor.index ${cursor.index} is past the end of a ${n}-record epoch`);
  let { epoch, index } = cursor;
  let order = shuffledOrder(n, seed, epoch);
  const indices: number[] = [];
  while (indices.length < count) {
    if (index === n) [epoch, index, order] = [epoch + 1, 0, shuffledOrder(n, seed, epoch + 1)];
    indices.push(order[index++]!);
  }
  return { indices, cursor: index === n ? { epoch: epoch + 1, index: 0 } : { epoch, index } };
}
