// The two inference graphs of KV-cache generation, built from the same `decoder` as scoring and
// training (student/model/lm.ts), so generation and scoring share every op of the model.
//
// prefill: the whole left-padded prompt batch at once.
//   inputs  weights, input_ids / attention_mask / position_ids [B, T]
//   outputs logits [B, V] of the LAST column only (its hidden state is picked before the LM head,
//           so prefill never materialises [B, T, V]); present.<i>.key / present.<i>.value
//           [B, Hkv, T, Dh] per layer.
// decode: one new token per row after P cache slots. P is the symbolic dim 'P', so ONE graph serves
//   every cache size; the mask covers the P slots plus the new token = (P+1) columns.
//   inputs  weights, input_ids / position_ids [B, 1], attention_mask [B, P+1] (slot s is visible
//           iff mask[b, s] = 1; the last column is the new token itself), past.<i>.key /
//           past.<i>.value [B, Hkv, P, Dh]
//   outputs logits [B, V]; new.<i>.key / new.<i>.value [B, Hkv, 1, Dh]: the new token's K/V only.
//
// Slots, not positions: a cached key's position lives in its RoPE rotation and attention ignores
// slot order, so the host keeps fixed-size slot buffers with unused slots masked out and writes
// each step's new.* into a free slot (cache.ts). Why not output present = past ‖ new [B, Hkv, P+1,
// Dh] and feed it back: that moves the whole cache out of ORT every step and changes every input
// shape every step, so ORT re-plans its memory per token (measured on the yardstick model, batch 1:
// per-token time 2.96× higher at P ≈ 1024 than at 128; 1100 tokens took 28 s against 6.1 s).
//
// Cost per decoded token is linear in P and reads the cache once: `cachedAttend` scores q against
// past and new keys separately ([B, H, 1, P] + [B, H, 1, 1]), softmaxes them jointly, and mixes
// past and new values separately, so the cache is never copied (lm.ts's default Concat of past and
// new copies it per layer: ratio P≈1024 / P≈128 ≈ 1.5-1.75 instead of ≈ 1.2-1.3). Nothing is
// quadratic in the length.

import {
  type Dim,
  type DType,
  Graph,
  type Tensor,
  add,
  concat,
  dimAdd,
  dimValue,
  gather,
  linear,
  matmul,
  mul,
  reduceSum,
  reshape,
  slice,
  softmax,
  sub,
  transpose,
  unsqueeze,
} from '../../engine/index.ts';
import type { ModelConfig } from '../model/config.ts';
import { type Attend, type KV, type Params, type WeightDeclarer, attentionBias, decoder, inputWeights, lmHead } from '../model/lm.ts';

/** Names of the cache tensors of layer `i`, shared by the host loop and the graphs. */
export const pastKey = (i: number) => `past.${i}.key`;
export const pastValue = (i: number) => `past.${i}.value`;
export const presentKey = (i: number) => `present.${i}.key`;
export const presentValue = (i: number) => `present.${i}.value`;
export const newKey = (i: number) => `new.${i}.key`;
export const newValue = (i: number) => `new.${i}.value`;

export interface GraphOptions {
  /** Compute dtype of weights and activations; default float32. */
  dtype?: DType;
  /** How weights enter the graph; default all as inputs (a LoRA student: frozen.ts). */
  weights?: WeightDeclarer;
}

export function buildPrefillGraph(c: ModelConfig, opts: GraphOptions = {}): Graph {
  const g = new Graph('prefill');
  const dtype = opts.dtype ?? 'float32';
  const p = (opts.weights ?? inputWeights)(g, c, dtype);
  const ids = g.input('input_ids', ['B', 'T'], 'int64');
  const mask = g.input('attention_mask', ['B', 'T'], 'int64');
  const positions = g.input('position_ids', ['B', 'T'], 'int64');
  const bias = attentionBias(mask, 'T', 'T', dtype); // [B, 1, T, T]
  const { hidden, present } = decoder(c, p, { ids, positions, bias }); // hidden [B, T, D]
  // Left padding puts every row's last prompt token in the last column. (A Gather at T−1 rather
  // than a Slice: the dim algebra cannot prove that T − (T−1) = 1.)
  const lastCol = sub(dimValue(g, 'T', 'int64'), 1); // [] int64
  const last = unsqueeze(gather(hidden, lastCol, 1), 1); // [B, 1, D]
  g.output('logits', lastLogits(c, p, last));
  outputPresent(g, present);
  return g;
}

export function buildDecodeGraph(c: ModelConfig, opts: GraphOptions = {}): Graph {
  const g = new Graph('decode');
  const dtype = opts.dtype ?? 'float32';
  const p = (opts.weights ?? inputWeights)(g, c, dtype);
  const s: Dim = dimAdd('P', 1); // cached positions plus the new one
  const ids = g.input('input_ids', ['B', 1], 'int64');
  const positions = g.input('position_ids', ['B', 1], 'int64');
  const mask = g.input('attention_mask', ['B', s], 'int64');
  const past: KV[] = [];
  for (let i = 0; i < c.numLayers; i++) {
    const shape = ['B', c.numKvHeads, 'P', c.headDim];
    past.push({ k: g.input(pastKey(i), shape, dtype), v: g.input(pastValue(i), shape, dtype) }); // [B, Hkv, P, Dh]
  }
  const bias = attentionBias(mask, 1, s, dtype); // [B, 1, 1, P+1]
  const { hidden, present } = decoder(c, p, { ids, positions, bias, past, attend: cachedAttend }); // hidden [B, 1, D]
  g.output('logits', lastLogits(c, p, hidden));
  present.forEach((kv, i) => {
    g.output(newKey(i), kv.k); // [B, Hkv, 1, Dh]
    g.output(newValue(i), kv.v);
  });
  return g;
}

/**
 * Attention of one new token over the cache without joining them: q [B, H, 1, Dh], fresh K/V
 * [B, Hkv, 1, Dh], past [B, Hkv, P, Dh], bias [B, 1, 1, P+1] (last column = the new token).
 * Grouped KV heads: with one query position, the rep = H/Hkv query heads of a KV head are the rows
 * of one [rep, Dh] × [Dh, P] product, so the cache is used as fed (never reshaped, repeated or
 * copied; a Reshape of a graph input is a copy in ORT). present = fresh.
 */
export const cachedAttend: Attend = (q, fresh, past, bias) => {
  if (!past) throw new Error('cachedAttend: decoding needs a past');
  const [b, h, , dh] = q.shape as [Dim, number, Dim, number];
  const hkv = fresh.k.shape[1] as number;
  const [pLen, s] = [past.k.shape[2]!, dimAdd(past.k.shape[2]!, 1)];
  const q4 = reshape(q, [b, hkv, h / hkv, dh]); // [B, Hkv, rep, Dh]
  const sPast = matmul(q4, transpose(past.k, [0, 1, 3, 2])); // [B, Hkv, rep, P]
  const sNew = reduceSum(mul(q4, fresh.k), -1, true); // [B, Hkv, rep, 1]
  const scores = add(mul(concat([sPast, sNew], -1), 1 / Math.sqrt(dh)), bias); // [B, Hkv, rep, P+1]
  const probs = softmax(scores, -1);
  const pPast = slice(probs, [0], [pLen], [-1]); // [B, Hkv, rep, P]
  const pNew = slice(probs, [pLen], [s], [-1]); // [B, Hkv, rep, 1]
  const out = add(matmul(pPast, past.v), mul(pNew, fresh.v)); // [B, Hkv, rep, Dh]
  return { out: reshape(out, [b, h, 1, dh]), present: fresh }; // out [B, H, 1, Dh]
};

/** Logits of one position per row: h [B, 1, D] -> [B, V]. */
function lastLogits(c: ModelConfig, p: Params, h: Tensor): Tensor {
  const logits = linear(h, lmHead(c, p)); // [B, 1, V]
  return reshape(logits, [h.shape[0]!, c.vocabSize]); // [B, V]
}

function outputPresent(g: Graph, present: KV[]): void {
  present.forEach((kv, i) => {
    g.output(presentKey(i), kv.k);
    g.output(presentValue(i), kv.v);
  });
}
