// The graphs of the layered train step (layered.ts): the decoder cut at layer boundaries, so each
// session holds one piece and no graph ever sees every weight at once.
//
//   embed        E, input_ids                         -> h0 = E[ids]                      [B, T, D]
//   layer.fwd    layer.* weights, h, mask, positions  -> h.next                           [B, T, D]
//   layer.bwd    same + dh.next                       -> dh, d.layer.* (forward recomputed inside)
//   head.norm    h_L, norm w                          -> hn = norm(h_L)                   [B, T, D]
//   head.fwd     hn, head[c0:c1], ids, 1/τ            -> max, sum_exp, z_next [B, T]       (per vocab chunk)
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
// With a top-k divergence (student/train/divergences.ts) the head graphs also take the teacher's
// ids S [B, T, k]: head.fwd returns z at the ids that fall in its chunk (z_top, 0 elsewhere; the host
// sums chunks, each id lies in one), the loss graph takes log π_θ(S) = z_top − lse as `top_at` and
// returns d.top_at, and head.bwd adds those ids' terms, ∂ log p(S_j) / ∂z_v = 1[v = S_j] − softmax(z)_v:
//
//   dz   = (onehot_c(y)·g + Σ_j onehot_c(S_j)·g_j − exp(z_c − lse)·(g + Σ_j g_j)) / τ     g_j = d.top_at
//
// lse and the log-probs are position-aligned like everywhere in opd (index t holds token t's value,
// 0 at t = 0). Every other backward comes from autodiff. One layer graph serves all layers: the
// weights are inputs named `layer.<HF suffix>`.

import { type DType, Graph, type Tensor, add, and, cast, concat, cumsum, dimAdd, dimValue, equal, exp, expand, gatherElements, greaterOrEqual, less, linear, scalar, flattenRows, gather, grad, matmul, mul, pad, reduceMax, reduceSum, rmsNorm, scatterElements, slice, squeeze, sub, topK as topK_, transpose, unsqueeze, where } from '../../engine/index.ts';
import type { StudentTopk } from './policy.ts';
import type { MetricSpec } from '../../engine/train/graph.ts';
import { type ModelConfig, tensorShapes } from '../model/config.ts';
import type { FrozenChunk } from '../model/frozen.ts';
import { attentionBias, concatAttend, layer, ropeTables } from '../model/lm.ts';

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

/** The final norm: hn = RMSNorm(h_L) [B, T, D]. */
export function headNormGraph(c: ModelConfig, dtype: DType): Graph {
  const g = new Graph('layered.head.norm');
  const h = g.input('h', ['B', 'T', c.hiddenSize], dtype);
  g.output('hn', rmsNorm(h, g.input(NORM, [c.hiddenSize], dtype), c.rmsNormEps));
  return g;
}

/**
 * One vocabulary chunk of the log-softmax's forward, position-aligned ([B, T], 0 at t = 0):
 * m = max_c z, s = Σ_c exp(z − m), zy = z of the next token where it falls in this chunk, else 0.
 * The host folds chunks into lse = M + log S with the running-max rule (layered.ts), so the
 * [B, T, V] logits never exist at once (one graph over all chunks lets ORT run them side by side).
 */
export function headForwardChunkGraph(c: ModelConfig, dtype: DType, frozen?: FrozenChunk, topK?: number): Graph {
  const g = new Graph(frozen ? `lora.head.fwd.${frozen.index}` : 'layered.head.fwd');
  const h = headChunk(g, c, dtype, frozen);
  headForwardOutputs(g, h, topK ? topInChunk(g, h.w, h.start, topK) : null);
  return g;
}

/** The gradient of Σ g·log p over vocabulary rows [start, start + rows) (see the header). */
export function headBackwardGraph(c: ModelConfig, dtype: DType, frozen?: FrozenChunk, topK?: number): Graph {
  const g = new Graph(frozen ? `lora.head.bwd.${frozen.index}` : 'layered.head.bwd');
  const h = headChunk(g, c, dtype, frozen);
  headBackwardOutputs(g, dtype, h, !frozen, topK ? topInChunk(g, h.w, h.start, topK) : null);
  return g;
}

/**
 * head.fwd and head.bwd of one frozen chunk in one graph, so one session maps the chunk's rows
 * (RSS counts a mapped page once per mapping). ORT runs every node whatever is fetched: the forward
 * pass runs it with lse, d.logprobs (and d.top_at) at zero and fetches the forward outputs, paying
 * the backward's dz·W product too (one [tokens × rows × D] matmul, about 3 % of a LoRA step).
 */
export function headChunkGraph(c: ModelConfig, dtype: DType, frozen: FrozenChunk, topK?: number): Graph {
  const g = new Graph(`lora.head.${frozen.index}`);
  const h = headChunk(g, c, dtype, frozen);
  const top = topK ? topInChunk(g, h.w, h.start, topK) : null;
  headForwardOutputs(g, h, top);
  headBackwardOutputs(g, dtype, h, false, top);
  return g;
}

type HeadChunk = ReturnType<typeof headChunk>;
type TopInChunk = ReturnType<typeof topInChunk> & { topK: number };

function headForwardOutputs(g: Graph, h: HeadChunk, t: TopInChunk | null): void {
  const { z, onehot, start } = h;
  if (t) {
    const topK = t.topK;
    g.output('z_top', pad(where(t.inChunk, gatherElements(z, t.local, -1), 0), [0, 1, 0, 0, 0, 0])); // [B, T, k]
    // the student's own top-k within the chunk (for the overlap metric; the host merges chunks): k columns of
    // −1e30 appended so a chunk with fewer than k rows still has k candidates, none of which can win
    const filler = expand(scalar(g, -1e30, z.dtype), [z.shape[0]!, z.shape[1]!, topK]);
    const [vals, idx] = topK_(concat([z, filler], -1), topK, -1);
    g.output('own_top_z', pad(vals, [0, 1, 0, 0, 0, 0]));
    g.output('own_top_ids', pad(add(idx, start), [0, 1, 0, 0, 0, 0]));
  }
  const m = reduceMax(z, -1, true); // [B, T−1, 1]
  const front = (y: Tensor) => pad(y, [0, 1, 0, 0]); // [B, T]
  g.output('max', front(squeeze(m, -1)));
  g.output('sum_exp', front(reduceSum(exp(sub(z, m)), -1, false)));
  g.output('z_next', front(reduceSum(mul(z, onehot), -1, false)));
}

function headBackwardOutputs(g: Graph, dtype: DType, h: HeadChunk, headGrad: boolean, t: TopInChunk | null): void {
  const { w, prev, z, onehot, invTemp } = h;
  const lse = g.input('lse', ['B', 'T'], dtype);
  const dlogp = g.input('d.logprobs', ['B', 'T'], dtype);
  const p = exp(sub(z, unsqueeze(predicted(lse), -1))); // softmax restricted to the chunk
  const gy = unsqueeze(predicted(dlogp), -1); // [B, T−1, 1]
  let dz = mul(sub(onehot, p), gy); // [B, T−1, C]
  if (t) {
    const gk = predicted(g.input('d.top_at', ['B', 'T', t.topK], dtype)); // [B, T−1, k]
    const hits = scatterElements(mul(z, 0), t.local, where(t.inChunk, gk, 0), -1, 'add'); // Σ_j onehot(S_j)·g_j
    dz = sub(add(mul(onehot, gy), hits), mul(p, add(gy, reduceSum(gk, -1, true))));
  }
  dz = mul(dz, invTemp);
  if (headGrad) g.output('d.head_chunk', matmul(transpose(flattenRows(dz), [1, 0]), flattenRows(prev))); // [C, D]
  g.output('dhn', pad(matmul(dz, w), [0, 0, 0, 0, 1, 0])); // [B, T, D], zero at the last position
}

/** [B, T−1]: the positions a token is predicted at (1..T−1). */
const predicted = (x: Tensor) => slice(x, [1], ['T'], [1]);

/**
 * What both head graphs start from: the chunk's rows (an input of any row count C, or a frozen
 * chunk's initializer), the states before each next token, their scaled logits z = prev·wᵀ/τ, and
 * the one-hot of the next token within the chunk.
 */
function headChunk(g: Graph, c: ModelConfig, dtype: DType, frozen?: FrozenChunk) {
  const D = c.hiddenSize;
  const hn = g.input('hn', ['B', 'T', D], dtype);
  const w = frozen ? g.external(frozen.ref, [frozen.rows, D], dtype) : g.input('head_chunk', ['C', D], dtype); // [C, D]
  const ids = g.input('input_ids', ['B', 'T'], 'int64');
  const invTemp = g.input('inv_temperature', [], dtype);
  const start = g.input('chunk_start', [], 'int64');
  const prev = slice(hn, [0], [dimAdd('T', -1)], [1]); // [B, T−1, D]
  const z = mul(linear(prev, w), invTemp); // [B, T−1, C]; linear reads an initializer in place (Gemm)
  const onehot = cast(equal(unsqueeze(sub(predicted(ids), start), -1), columnIds(g, w)), dtype); // [B, T−1, C]
  return { w, prev, z, onehot, invTemp, start };
}

/** The teacher's top-k ids [B, T−1, k] relative to this chunk: which fall in it, and their column (0 where not). */
function topInChunk(g: Graph, w: Tensor, start: Tensor, topK: number) {
  const rel = sub(predicted(g.input('teacher_top_ids', ['B', 'T', topK], 'int64')), start); // [B, T−1, k]
  const inChunk = and(greaterOrEqual(rel, scalar(g, 0, 'int64')), less(rel, dimValue(g, w.shape[0]!, 'int64')));
  return { inChunk, local: where(inChunk, rel, scalar(g, 0, 'int64')), topK };
}

/** 0, 1, …, C−1 for the chunk's row count (symbolic C, or a frozen chunk's fixed rows). */
function columnIds(g: Graph, w: Tensor): Tensor {
  return cumsum(expand(scalar(g, 1, 'int64'), [w.shape[0]!]), 0, { exclusive: true }); // [C] int64
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

/**
 * A loss on aligned log-probs [B, T]: what the fused step's objective computes after the model; with a
 * top-k divergence also on the log-probs at the teacher's top-k ids ([B, T, k]).
 */
export type LogprobObjective = (g: Graph, logprobs: Tensor, topk?: StudentTopk) => { loss: Tensor; metrics?: Record<string, MetricSpec> };

export function lossGraph(objective: LogprobObjective, dtype: DType, topK?: number): { graph: Graph; metrics: string[]; combine: Record<string, 'sum' | 'mean' | 'max' | 'min'> } {
  const g = new Graph('layered.loss');
  const logp = g.input('logprobs', ['B', 'T'], dtype);
  const topAt = topK ? g.input('top_at', ['B', 'T', topK], dtype) : undefined;
  const ownTop = topK ? g.input('student_top_ids', ['B', 'T', topK], 'int64') : undefined;
  const o = objective(g, logp, topAt && { logprobs: topAt, topIds: ownTop });
  const metrics: string[] = [];
  const combine: Record<string, 'sum' | 'mean' | 'max' | 'min'> = {};
  for (const [name, m] of Object.entries(o.metrics ?? {})) {
    const t = 'value' in m ? m.value : m;
    g.output(name, t);
    metrics.push(name);
    combine[name] = 'value' in m ? m.combine : 'mean';
  }
  g.output('loss', o.loss);
  const [dlogp, dtop] = grad(o.loss, topAt ? [logp, topAt] : [logp]);
  g.output('d.logprobs', dlogp!);
  if (dtop) g.output('d.top_at', dtop);
  return { graph: g, metrics, combine };
}
