// The graphs of the layered train step (layered.ts): the decoder cut at layer boundaries, so each
// session holds one piece and no graph ever sees every weight at once.
//
//   embed        E, input_ids                         -> h0 = E[ids]                      [B, T, D]
//   layer.fwd    layer.* weights, h, mask, positions  -> h.next                           [B, T, D]
//   layer.bwd    same + dh.next                       -> dh, d.layer.* (forward recomputed inside)
//   head.fwd     h_L, norm w, head [V, D], ids, 1/τ   -> logprobs, lse [B, T], hn = norm(h_L)
//   loss         logprobs + the loss's own inputs     -> loss, metrics, d.logprobs        [B, T]
//   head.bwd     hn, head[c0:c1], ids, lse, d.logprobs -> d.head_chunk [C, D], dhn         (per vocab chunk)
//   norm.bwd     h_L, norm w, dhn                     -> dh, d.model.norm.weight
//
// head.bwd is the hand-written gradient of log p(y) = z_y − lse over one vocabulary chunk
// (z = hn·Wᵀ/τ; ∂ log p / ∂z_v = 1[v = y] − softmax(z)_v), so [tokens × V] logits never exist at
// once, neither in the forward (running logsumexp over chunks) nor in the backward:
//
//   dz   = g ⊙ (onehot_c(y) − exp(z_c − lse)) / τ       [B, T−1, C]   g = d.logprobs, shifted
//   dW_c = dzᵀ · hn                                     [C, D]
//   dhn += dz · W_c                                     [B, T−1, D]
//
// lse and the log-probs are position-aligned like everywhere in opd (index t holds token t's value,
// 0 at t = 0). Every other backward comes from autodiff. One layer graph serves all layers: the
// weights are inputs named `layer.<HF suffix>`.

import { type DType, Graph, type Tensor, cast, dimAdd, equal, exp, flattenRows, gather, grad, matmul, mul, pad, rmsNorm, slice, sub, transpose, unsqueeze } from '../../engine/index.ts';
import type { MetricSpec } from '../../engine/train/graph.ts';
import { type ModelConfig, tensorShapes } from '../model/config.ts';
import { attentionBias, concatAttend, layer, ropeTables } from '../model/lm.ts';
import { tokenLogprobsChunked } from '../model/logprobs.ts';

export const EMBED = 'model.embed_tokens.weight';
export const NORM = 'model.norm.weight';
const LAYER0 = 'model.layers.0.';

/** [HF suffix, shape] of one layer's weights (every layer has the same). */
export function layerSuffixes(c: ModelConfig): Array<[string, number[]]> {
  return tensorShapes(c)
    .filter(([n]) => n.startsWith(LAYER0))
    .map(([n, s]) => [n.slice(LAYER0.length), s]);
}

export function embedGraph(c: ModelConfig, dtype: DType): Graph {
  const g = new Graph('layered.embed');
  const e = g.input(EMBED, [c.vocabSize, c.hiddenSize], dtype);
  g.output('h', gather(e, g.input('input_ids', ['B', 'T'], 'int64'))); // [B, T, D]
  return g;
}

/** Inputs shared by both layer graphs and the layer's output. */
function layerBody(g: Graph, c: ModelConfig, dtype: DType) {
  const p: Record<string, Tensor> = {};
  const weights = layerSuffixes(c).map(([s, shape]) => (p[`layer.${s}`] = g.input(`layer.${s}`, shape, dtype)));
  const h = g.input('h', ['B', 'T', c.hiddenSize], dtype); // [B, T, D]
  const mask = g.input('attention_mask', ['B', 'T'], 'int64');
  const positions = g.input('position_ids', ['B', 'T'], 'int64');
  const rope = ropeTables(positions, c.invFreq, dtype); // [B, 1, T, Dh]
  const out = layer(c, p, 'layer', h, rope, attentionBias(mask, 'T', 'T', dtype), undefined, concatAttend).h; // [B, T, D]
  return { weights, h, out };
}

export function layerForwardGraph(c: ModelConfig, dtype: DType): Graph {
  const g = new Graph('layered.layer.fwd');
  g.output('h.next', layerBody(g, c, dtype).out);
  return g;
}

export function layerBackwardGraph(c: ModelConfig, dtype: DType): Graph {
  const g = new Graph('layered.layer.bwd');
  const { weights, h, out } = layerBody(g, c, dtype);
  const dy = g.input('dh.next', ['B', 'T', c.hiddenSize], dtype);
  const [dh, ...dw] = grad(out, [h, ...weights], { dy });
  g.output('dh', dh!);
  layerSuffixes(c).forEach(([s], i) => g.output(`d.layer.${s}`, dw[i]!));
  return g;
}

/** Final norm and the chunked log-softmax of the next tokens. */
export function headForwardGraph(c: ModelConfig, dtype: DType, chunk: number): Graph {
  const g = new Graph('layered.head.fwd');
  const h = g.input('h', ['B', 'T', c.hiddenSize], dtype);
  const w = g.input('head', [c.vocabSize, c.hiddenSize], dtype);
  const ids = g.input('input_ids', ['B', 'T'], 'int64');
  const invTemp = g.input('inv_temperature', [], dtype);
  const hn = rmsNorm(h, g.input(NORM, [c.hiddenSize], dtype), c.rmsNormEps); // [B, T, D]
  const tm1 = dimAdd('T', -1);
  const lp = tokenLogprobsChunked(slice(hn, [0], [tm1], [1]), w, slice(ids, [1], ['T'], [1]), { chunk, invTemp });
  const front = (y: Tensor) => pad(y, [0, 1, 0, 0]); // [B, T]: zero at t = 0
  g.output('logprobs', front(lp.logprobs));
  g.output('lse', front(lp.lse));
  g.output('hn', hn);
  return g;
}

/** The gradient of Σ g·log p over vocabulary rows [start, start + rows) (see the header). */
export function headBackwardGraph(c: ModelConfig, dtype: DType, rows: number): Graph {
  const g = new Graph(`layered.head.bwd.${rows}`);
  const D = c.hiddenSize;
  const hn = g.input('hn', ['B', 'T', D], dtype);
  const w = g.input('head_chunk', [rows, D], dtype); // [C, D]
  const ids = g.input('input_ids', ['B', 'T'], 'int64');
  const lse = g.input('lse', ['B', 'T'], dtype);
  const dlogp = g.input('d.logprobs', ['B', 'T'], dtype);
  const invTemp = g.input('inv_temperature', [], dtype);
  const start = g.input('chunk_start', [], 'int64');
  const tm1 = dimAdd('T', -1);
  const next = (x: Tensor) => slice(x, [1], ['T'], [1]); // [B, T−1]: the predicted positions
  const prev = slice(hn, [0], [tm1], [1]); // [B, T−1, D]
  const z = mul(matmul(prev, transpose(w, [1, 0])), invTemp); // [B, T−1, C]
  const p = exp(sub(z, unsqueeze(next(lse), -1))); // softmax restricted to the chunk
  const cols = g.constant(BigInt64Array.from({ length: rows }, (_, i) => BigInt(i)), [rows], 'int64');
  const onehot = cast(equal(unsqueeze(sub(next(ids), start), -1), cols), dtype); // [B, T−1, C]
  const dz = mul(mul(sub(onehot, p), unsqueeze(next(dlogp), -1)), invTemp); // [B, T−1, C]
  g.output('d.head_chunk', matmul(transpose(flattenRows(dz), [1, 0]), flattenRows(prev))); // [C, D]
  g.output('dhn', pad(matmul(dz, w), [0, 0, 0, 0, 1, 0])); // [B, T, D], zero at the last position
  return g;
}

export function normBackwardGraph(c: ModelConfig, dtype: DType): Graph {
  const g = new Graph('layered.norm.bwd');
  const h = g.input('h', ['B', 'T', c.hiddenSize], dtype);
  const w = g.input(NORM, [c.hiddenSize], dtype);
  const dy = g.input('dhn', ['B', 'T', c.hiddenSize], dtype);
  const [dh, dw] = grad(rmsNorm(h, w, c.rmsNormEps), [h, w], { dy });
  g.output('dh', dh!);
  g.output(`d.${NORM}`, dw!);
  return g;
}

/** A loss on aligned log-probs [B, T]: what the fused step's objective computes after the model. */
export type LogprobObjective = (g: Graph, logprobs: Tensor) => { loss: Tensor; metrics?: Record<string, MetricSpec> };

export function lossGraph(objective: LogprobObjective, dtype: DType): { graph: Graph; metrics: string[]; combine: Record<string, 'sum' | 'mean' | 'max' | 'min'> } {
  const g = new Graph('layered.loss');
  const logp = g.input('logprobs', ['B', 'T'], dtype);
  const o = objective(g, logp);
  const metrics: string[] = [];
  const combine: Record<string, 'sum' | 'mean' | 'max' | 'min'> = {};
  for (const [name, m] of Object.entries(o.metrics ?? {})) {
    const t = 'value' in m ? m.value : m;
    g.output(name, t);
    metrics.push(name);
    combine[name] = 'value' in m ? m.combine : 'mean';
  }
  g.output('loss', o.loss);
  g.output('d.logprobs', grad(o.loss, [logp])[0]!);
  return { graph: g, metrics, combine };
}
