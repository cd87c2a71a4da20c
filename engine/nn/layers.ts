// Composite layers written from primitives (they have no VJP rules of their own): linear, RMSNorm,
// SwiGLU, rotary embeddings (Hugging Face's rotate-half convention), causal attention with grouped
// KV heads, and the token log-prob / cross-entropy patterns of language-model losses.
//
// Weights use Hugging Face layouts: a Linear weight is [out, in] and y = x·Wᵀ (+ b).

import { type Dim, ShapeError } from '../ir/dims.ts';
import type { DType, Graph, Tensor } from '../ir/graph.ts';
import { scalar } from '../ops/core.ts';
import { add, cast as castTo, cos, div, less, mul, neg, sigmoid, sin, sqrt, sub, where } from '../ops/elementwise.ts';
import { gatherElements } from '../ops/indexing.ts';
import { gemmT, logSoftmax, matmul, softmax, trilu } from '../ops/nn.ts';
import { reduceMean, sumAll as reduceSumAll } from '../ops/reduce.ts';
import { concat, expand, flattenRows, reshape, slice, squeeze, transpose, unsqueeze } from '../ops/shape.ts';

/** y = x·Wᵀ + b.   x [..., in], w [out, in], b [out] -> [..., out] */
export function linear(x: Tensor, w: Tensor, b?: Tensor): Tensor {
  // A frozen weight (an initializer) goes through Gemm, which reads it in place (see ops/nn.ts).
  const y = x.graph.isConstant(w) ? reshape(gemmT(flattenRows(x), w), [...x.shape.slice(0, -1), w.shape[0]!]) : matmul(x, transpose(w, [1, 0]));
  return b ? add(y, b) : y;
}

/** RMSNorm: x / sqrt(mean(x²) + eps) · w.   x [..., D], w [D] */
export function rmsNorm(x: Tensor, w: Tensor, eps: number): Tensor {
  const ms = reduceMean(mul(x, x), -1, true); // [..., 1]
  return mul(div(x, sqrt(add(ms, eps))), w);
}

export function silu(x: Tensor): Tensor {
  return mul(x, sigmoid(x));
}

/** SwiGLU MLP: down(silu(gate(x)) · up(x)).   gate/up [F, D], down [D, F] */
export function swiglu(x: Tensor, wGate: Tensor, wUp: Tensor, wDown: Tensor): Tensor {
  return linear(mul(silu(linear(x, wGate)), linear(x, wUp)), wDown);
}

/**
 * Rotary tables for integer positions: cos and sin, each [..., Dh] (the half-size frequency table
 * concatenated with itself, as HF does). inv_freq_i = theta^(-2i/Dh).
 */
export function ropeTables(positions: Tensor, headDim: number, theta: number, dtype: DType = 'float32'): { cos: Tensor; sin: Tensor } {
  const g = positions.graph;
  const half = headDim / 2;
  const invFreq = new Float32Array(half).map((_, i) => Math.pow(theta, (-2 * i) / headDim));
  const pos = unsqueeze(castTo(positions, dtype), -1); // [..., 1]
  const freqs = mul(pos, g.constant(dtype === 'float64' ? Float64Array.from(invFreq) : invFreq, [half], dtype)); // [..., Dh/2]
  const emb = concat([freqs, freqs], -1); // [..., Dh]
  return { cos: cos(emb), sin: sin(emb) };
}

/** x·cos + rotate_half(x)·sin with rotate_half(x) = [-x₂, x₁].   x [B, H, T, Dh], cos/sin [B, 1, T, Dh] */
export function applyRope(x: Tensor, cosT: Tensor, sinT: Tensor): Tensor {
  const dh = x.shape[x.rank - 1] as number;
  const x1 = slice(x, [0], [dh / 2], [-1]);
  const x2 = slice(x, [dh / 2], [dh], [-1]);
  return add(mul(x, cosT), mul(concat([neg(x2), x1], -1), sinT));
}

/** Additive causal bias [T, T]: 0 on and below the diagonal, -1e9 above (finite, so no NaN rows). */
export function causalBias(g: Graph, t: Dim, dtype: DType = 'float32'): Tensor {
  const ones = expand(scalar(g, 1, dtype), [t, t]);
  const lower = trilu(ones, false, 0); // 1 where key <= query
  return mul(sub(lower, 1), 1e9);
}

/** Additive key-padding bias [B, 1, 1, T] from a 0/1 mask [B, T] (0 = padding). */
export function paddingBias(mask: Tensor, dtype: DType = 'float32'): Tensor {
  const m = castTo(mask, dtype);
  return reshape(mul(sub(m, 1), 1e9), [mask.shape[0]!, 1, 1, mask.shape[1]!]);
}

/**
 * Scaled dot-product attention with grouped KV heads, without repeating K/V in memory: queries are
 * viewed as [B, Hkv, rep, T, Dh] and broadcast against K/V [B, Hkv, 1, S, Dh].
 *   q [B, H, T, Dh], k/v [B, Hkv, S, Dh], bias broadcastable to [B, 1, T, S] -> [B, H, T, Dh]
 */
export function attention(q: Tensor, k: Tensor, v: Tensor, bias: Tensor | null): Tensor {
  const [b, h, t, dh] = q.shape;
  const hkv = k.shape[1]!;
  if (typeof h !== 'number' || typeof hkv !== 'number' || h % hkv !== 0)
    throw new ShapeError('attention', `query heads ${h} must be a multiple of KV heads ${hkv}`);
  const rep = h / hkv;
  const scale = 1 / Math.sqrt(dh as number);
  const q5 = reshape(q, [b!, hkv, rep, t!, dh!]);
  const k5 = unsqueeze(k, 2); // [B, Hkv, 1, S, Dh]
  const v5 = unsqueeze(v, 2);
  let scores = mul(matmul(q5, transpose(k5, [0, 1, 2, 4, 3])), scale); // [B, Hkv, rep, T, S]
  if (bias) scores = add(scores, bias.rank === 4 ? unsqueeze(bias, 2) : bias);
  const out = matmul(softmax(scores, -1), v5); // [B, Hkv, rep, T, Dh]
  return reshape(out, [b!, h, t!, dh!]);
}

/** log p(ids) under logits: log_softmax(logits)[..., id].   logits [..., V], ids [...] int64 -> [...] */
export function tokenLogprobs(logits: Tensor, ids: Tensor): Tensor {
  const lp = logSoftmax(logits, -1);
  return squeeze(gatherElements(lp, unsqueeze(ids, -1), -1), -1);
}

/** Mean cross-entropy over positions where mask = 1.   logits [B, T, V], ids/mask [B, T] */
export function maskedCrossEntropy(logits: Tensor, ids: Tensor, mask: Tensor): Tensor {
  const m = castTo(mask, logits.dtype);
  const nll = neg(tokenLogprobs(logits, ids)); // [B, T]
  const total = reduceSumAll(mul(nll, m));
  const count = reduceSumAll(m);
  return div(total, where(less(count, 1), 1, count));
}
