// The Llama/Qwen2/Qwen3-family decoder, written once against engine ops. Every graph opd runs on a
// model (scoring, prefill, decode, train step, SFT, the local teacher) is built from `decoder` and
// `tokenLogprobsChunked` here; they differ only in their inputs and what they output.
//
// Weights are graph inputs named with their HF tensor names, never initializers: one copy of the
// weights in host memory feeds every session, training graphs update them in place, and models
// over 2 GB never meet protobuf's size limit.
//
// Parameter shapes (HF layout; Linear weights are [out, in]):
//   embed_tokens [V, D]; per layer: input_layernorm [D], q_proj [H·Dh, D] (+bias), k_proj/v_proj
//   [Hkv·Dh, D] (+bias), q_norm/k_norm [Dh] (Qwen3), o_proj [D, H·Dh], post_attention_layernorm [D],
//   gate_proj/up_proj [F, D], down_proj [D, F]; norm [D]; lm_head [V, D] unless tied.

import {
  type Dim,
  type DType,
  type Graph,
  type Tensor,
  add,
  applyRope,
  attention,
  cast,
  concat,
  linear,
  mul,
  reshape,
  rmsNorm,
  silu,
  transpose,
  unsqueeze,
  gather,
  sub,
  trilu,
  expand,
  scalar,
  cos,
  sin,
} from '../../engine/index.ts';
import { param } from '../../engine/train/graph.ts';
import { type ModelConfig, decays, tensorShapes } from './config.ts';

export type Params = Record<string, Tensor>;

/** The params key of LoRA's scale α/r (a rank-0 constant), present when adapters are. */
export const LORA_SCALE = 'lora.scale';

/** How a graph gets its weights: all as graph inputs (declareWeights), or a frozen base plus adapters (frozen.ts). */
export type WeightDeclarer = (g: Graph, c: ModelConfig, dtype: DType) => Params;
export const inputWeights: WeightDeclarer = (g, c, dtype) => declareWeights(g, c, { trainable: false, dtype });


/** Declare every weight as a graph input; trainable ones through `param` (with weight decay). */
export function declareWeights(g: Graph, c: ModelConfig, opts: { trainable: boolean; weightDecay?: number; dtype?: DType }): Params {
  const p: Params = {};
  const dtype = opts.dtype ?? 'float32';
  for (const [name, shape] of tensorShapes(c)) {
    p[name] = opts.trainable
      ? param(g, name, shape, { dtype, weightDecay: decays(name) ? (opts.weightDecay ?? 0) : 0 })
      : g.input(name, shape, dtype);
  }
  return p;
}

/** K and V of one layer: [B, Hkv, S, Dh]. */
export interface KV {
  k: Tensor;
  v: Tensor;
}

export interface DecoderInputs {
  ids: Tensor; // [B, T] int64
  positions: Tensor; // [B, T] int64 (RoPE positions; left padding makes them start later)
  bias: Tensor; // additive attention bias, broadcastable to [B, 1, T, S]
  past?: KV[]; // per layer, S_past positions already cached
  /** One layer's attention over past + new K/V; default `concatAttend` (decoding overrides it). */
  attend?: Attend;
}

/**
 * Attention of one layer: q [B, H, T, Dh], the T new positions' K/V `fresh` [B, Hkv, T, Dh], the
 * cached `past` [B, Hkv, P, Dh] -> out [B, H, T, Dh] and the K/V the decoder returns as `present`.
 */
export type Attend = (q: Tensor, fresh: KV, past: KV | undefined, bias: Tensor) => { out: Tensor; present: KV };

/** Join past and new K/V along S, then attend: present is the whole [B, Hkv, P+T, Dh]. */
export const concatAttend: Attend = (q, fresh, past, bias) => {
  const kv = past ? { k: concat([past.k, fresh.k], 2), v: concat([past.v, fresh.v], 2) } : fresh; // [B, Hkv, S, Dh]
  return { out: attention(q, kv.k, kv.v, bias), present: kv };
};

/** Hidden states after the final norm [B, T, D], and each layer's K/V including `past`. */
export function decoder(c: ModelConfig, p: Params, x: DecoderInputs): { hidden: Tensor; present: KV[] } {
  const g = x.ids.graph;
  const dtype = p['model.embed_tokens.weight']!.dtype;
  const rope = ropeTables(x.positions, c.invFreq, dtype); // [B, 1, T, Dh] each
  let h = gather(p['model.embed_tokens.weight']!, x.ids); // [B, T, D]
  const present: KV[] = [];
  for (let i = 0; i < c.numLayers; i++) {
    const out = g.scope(`layers.${i}`, () => layer(c, p, `model.layers.${i}`, h, rope, x.bias, x.past?.[i], x.attend ?? concatAttend));
    h = out.h;
    present.push(out.kv);
  }
  return { hidden: rmsNorm(h, p['model.norm.weight']!, c.rmsNormEps), present };
}

/** One decoder layer on `x` [B, T, D]; its weights are `p[<pre>.<HF suffix>]`. */
export function layer(c: ModelConfig, p: Params, pre: string, x: Tensor, rope: { cos: Tensor; sin: Tensor }, bias: Tensor, past: KV | undefined, attend: Attend) {
  const w = (n: string) => p[`${pre}.${n}`]!;
  const opt = (n: string) => p[`${pre}.${n}`];
  const [b, t] = [x.shape[0]!, x.shape[1]!];
  const dh = c.headDim;
  const heads = (y: Tensor, n: number) => transpose(reshape(y, [b, t, n, dh]), [0, 2, 1, 3]); // [B, n, T, Dh]
  // a projection, plus s·(y·Aᵀ)·Bᵀ when it has LoRA adapters (lora.ts)
  const proj = (y: Tensor, n: string) => {
    const out = linear(y, w(`${n}.weight`), opt(`${n}.bias`));
    const a = opt(`${n}.lora_A.weight`);
    return a ? add(out, mul(linear(linear(y, a), w(`${n}.lora_B.weight`)), p[LORA_SCALE]!)) : out;
  };
  const hN = rmsNorm(x, w('input_layernorm.weight'), c.rmsNormEps); // [B, T, D]
  let q = heads(proj(hN, 'self_attn.q_proj'), c.numHeads); // [B, H, T, Dh]
  let k = heads(proj(hN, 'self_attn.k_proj'), c.numKvHeads); // [B, Hkv, T, Dh]
  const vNew = heads(proj(hN, 'self_attn.v_proj'), c.numKvHeads);
  if (c.qkNorm) {
    q = rmsNorm(q, w('self_attn.q_norm.weight'), c.rmsNormEps);
    k = rmsNorm(k, w('self_attn.k_norm.weight'), c.rmsNormEps);
  }
  q = applyRope(q, rope.cos, rope.sin);
  k = applyRope(k, rope.cos, rope.sin);
  const { out: a, present: kv } = attend(q, { k, v: vNew }, past, bias); // a [B, H, T, Dh]
  const merged = reshape(transpose(a, [0, 2, 1, 3]), [b, t, c.numHeads * dh]); // [B, T, H·Dh]
  const h1 = add(x, proj(merged, 'self_attn.o_proj'));
  const h1N = rmsNorm(h1, w('post_attention_layernorm.weight'), c.rmsNormEps); // [B, T, D]
  const m = proj(mul(silu(proj(h1N, 'mlp.gate_proj')), proj(h1N, 'mlp.up_proj')), 'mlp.down_proj'); // SwiGLU [B, T, D]
  return { h: add(h1, m), kv };
}

/** cos/sin [B, 1, T, Dh] for integer positions [B, T], from the config's inverse frequencies. */
export function ropeTables(positions: Tensor, invFreq: Float64Array, dtype: DType) {
  const g = positions.graph;
  const half = invFreq.length;
  const inv = g.constant(dtype === 'float64' ? Float64Array.from(invFreq) : Float32Array.from(invFreq), [half], dtype);
  // Angles are formed in float32 from float32 inverse frequencies, as HF does in its default path.
  const ang = mul(unsqueeze(cast(positions, dtype), -1), inv); // [B, T, Dh/2]
  const emb = concat([ang, ang], -1); // [B, T, Dh]
  return { cos: unsqueeze(cos(emb), 1), sin: unsqueeze(sin(emb), 1) };
}

export function lmHead(c: ModelConfig, p: Params): Tensor {
  return c.tieWordEmbeddings ? p['model.embed_tokens.weight']! : p['lm_head.weight']!;
}

/**
 * Additive attention bias [B, 1, T, S] for T new positions after S−T cached ones: a key is visible
 * when it is not padding (mask[B, S] = 1) and not in the future of the query.
 */
export function attentionBias(mask: Tensor, t: Dim, s: Dim, dtype: DType = 'float32'): Tensor {
  const g = mask.graph;
  const keyOk = reshape(cast(mask, dtype), [mask.shape[0]!, 1, 1, s]); // [B, 1, 1, S]
  let visible = keyOk;
  if (t !== 1) {
    // causal: query i (absolute S−T+i) sees keys j <= S−T+i, i.e. the lower triangle offset by S−T
    const ones = expand(scalar(g, 1, dtype), [t, s]);
    const offset = typeof s === 'number' && typeof t === 'number' ? s - t : 0;
    if (typeof s !== 'number' && s !== t) throw new Error('attentionBias: a symbolic cache length needs T = 1 or S = T');
    visible = mul(keyOk, trilu(ones, false, offset)); // [B, 1, T, S]
  }
  return mul(sub(visible, 1), 1e9);
}
