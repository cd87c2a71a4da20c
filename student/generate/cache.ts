// The host side of the KV cache: per layer, K and V in fixed-size slot buffers [B, Hkv, C, Dh]
// (C = capacity) and the slot mask [B, C+1] the decode graph reads (graphs.ts). Each decode run
// returns only the new token's K/V [B, Hkv, 1, Dh], which `append` writes into the next free slot
// (B·Hkv·Dh floats per layer); slots not yet written stay masked out.
//
// Why: ORT never writes into our buffers and the decode graph's input shapes stay constant between
// growths, so a step copies O(B·Hkv·Dh) floats out of ORT instead of the whole cache, and ORT's
// memory plan is reused. Capacity grows by `chunk` slots at a time (one host copy of the cache per
// chunk), so unused slots cost at most `chunk` columns of attention per step.

import { type HostTensor, hostTensor } from '../../engine/runtime/host.ts';
import type { ModelConfig } from '../model/config.ts';
import { newKey, newValue, pastKey, pastValue, presentKey, presentValue } from './graphs.ts';

export class KvCache {
  /** Slots written so far (prompt width + decoded tokens). */
  used: number;
  private k: Float32Array[] = []; // per layer [B, Hkv, C, Dh]
  private v: Float32Array[] = [];
  private mask: BigInt64Array; // [B, C+1]; column C is the token being decoded

  private constructor(
    private readonly c: ModelConfig,
    private readonly b: number,
    private capacity: number,
    /** Slots this generation can ever need; capacity never exceeds it. */
    private readonly limit: number,
    private readonly chunk: number,
  ) {
    this.used = 0;
    this.mask = new BigInt64Array(b * (capacity + 1));
    for (let i = 0; i < c.numLayers; i++) {
      this.k.push(new Float32Array(this.rows * capacity * c.headDim));
      this.v.push(new Float32Array(this.rows * capacity * c.headDim));
    }
  }

  /**
   * A cache holding the prefill's present K/V [B, Hkv, T, Dh] and prompt mask [B, T], with room for
   * up to `limit` slots in all (prompt width + decode steps), allocated `chunk` slots at a time.
   */
  static fromPrefill(c: ModelConfig, out: Record<string, HostTensor>, promptMask: HostTensor, limit: number, chunk = 128): KvCache {
    const [b, t] = promptMask.dims as [number, number];
    const cache = new KvCache(c, b, Math.min(limit, t + chunk), limit, chunk);
    for (let i = 0; i < c.numLayers; i++) {
      cache.write(cache.k[i]!, out[presentKey(i)]!, t); // [B, Hkv, T, Dh]
      cache.write(cache.v[i]!, out[presentValue(i)]!, t);
    }
    const m = promptMask.data as BigInt64Array;
    for (let r = 0; r < b; r++) cache.mask.set(m.subarray(r * t, (r + 1) * t), r * (cache.capacity + 1));
    cache.used = t;
    return cache;
  }

  /** past.* and attention_mask feeds for decoding one token; `active[r]` = row r still generates. */
  feeds(active: readonly boolean[]): Record<string, HostTensor> {
    if (this.used === this.capacity) this.grow();
    const cap = this.capacity;
    for (let r = 0; r < this.b; r++) this.mask[r * (cap + 1) + cap] = active[r] ? 1n : 0n;
    const dims = [this.b, this.c.numKvHeads, cap, this.c.headDim];
    const feeds: Record<string, HostTensor> = { attention_mask: hostTensor('int64', [this.b, cap + 1], this.mask) };
    for (let i = 0; i < this.c.numLayers; i++) {
      feeds[pastKey(i)] = hostTensor('float32', dims, this.k[i]!); // [B, Hkv, C, Dh], no copy
      feeds[pastValue(i)] = hostTensor('float32', dims, this.v[i]!);
    }
    return feeds;
  }

  /** Store a decode run's new.* K/V [B, Hkv, 1, Dh] in the next slot, visible to later steps of active rows. */
  append(out: Record<string, HostTensor>, active: readonly boolean[]): void {
    for (let i = 0; i < this.c.numLayers; i++) {
      this.write(this.k[i]!, out[newKey(i)]!, 1, this.used);
      this.write(this.v[i]!, out[newValue(i)]!, 1, this.used);
    }
    const cap = this.capacity;
    for (let r = 0; r < this.b; r++) this.mask[r * (cap + 1) + this.used] = active[r] ? 1n : 0n;
    this.used++;
  }

  /** Output names the decode run must fetch for `append`. */
  fetches(): string[] {
    return Array.from({ length: this.c.numLayers }, (_, i) => [newKey(i), newValue(i)]).flat();
  }

  private get rows(): number {
    return this.b * this.c.numKvHeads;
  }

  /** Copy src [B, Hkv, n, Dh] into slots [at, at + n) of dst [B, Hkv, C, Dh]. */
  private write(dst: Float32Array, src: HostTensor, n: number, at = 0): void {
    const [dh, cap] = [this.c.headDim, this.capacity];
    const data = src.data as Float32Array;
    for (let r = 0; r < this.rows; r++) dst.set(data.subarray(r * n * dh, (r + 1) * n * dh), (r * cap + at) * dh);
  }

  /** Move to `chunk` more slots (bounded by the limit); one copy of everything written. */
  private grow(): void {
    const [old, cap] = [this.capacity, Math.min(this.limit, this.capacity + this.chunk)];
    if (cap === old) throw new Error(`KvCache: all ${this.limit} slots are used; the generation loop asked for more steps than it planned`);
    const dh = this.c.headDim;
    const regrow = (a: Float32Array) => {
      const out = new Float32Array(this.rows * cap * dh);
      for (let r = 0; r < this.rows; r++) out.set(a.subarray(r * old * dh, (r * old + this.used) * dh), r * cap * dh);
      return out;
    };
    this.k = this.k.map(regrow);
    this.v = this.v.map(regrow);
    const mask = new BigInt64Array(this.b * (cap + 1));
    for (let r = 0; r < this.b; r++) mask.set(this.mask.subarray(r * (old + 1), r * (old + 1) + this.used), r * (cap + 1));
    this.mask = mask;
    this.capacity = cap;
  }
}
