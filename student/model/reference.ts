// Test-only reference: a deliberately simple float64 transcription of the Hugging Face transformers
// forward pass of LlamaForCausalLM / Qwen2ForCausalLM / Qwen3ForCausalLM (modeling_llama.py,
// modeling_qwen2.py, modeling_qwen3.py), used to check opd's ONNX graphs. It shares no code with
// them: it reads the raw config.json itself (not config.ts) and loops over plain arrays.
//
//   h = embed_tokens[ids]                                                        [T, D]
//   per layer:  a = rms(h; input_layernorm)
//               q, k, v = q_proj(a), k_proj(a), v_proj(a)        (+ biases: Qwen2, attention_bias)
//               q, k = rms per head (q_norm, k_norm; Qwen3), then RoPE          (norm BEFORE RoPE)
//               h += o_proj(softmax(q·kᵀ/√Dh + causal) · v)         (kv head = head / (H/Hkv): repeat_kv)
//               h += down_proj(silu(gate_proj(m)) * up_proj(m)),  m = rms(h; post_attention_layernorm)
//   logits = lm_head(rms(h; model.norm))                            (lm_head = embed_tokens when tied)
//
// RMSNorm is x·(mean(x²)+ε)^(−1/2)·w. RoPE is HF's rotate_half form: channel i pairs with i + Dh/2 at
// angle pos·inv_freq[i], inv_freq[i] = θ^(−2i/Dh), with rope_scaling "linear" or "llama3" (the latter
// transcribed from `_compute_llama3_parameters`), read from `rope_parameters` (transformers ≥ 5) or
// `rope_theta` + `rope_scaling` (older files). Config defaults are each HF config class's.
//
// Leaves out: batching and padding (one unpadded sequence at positions 0..T−1 -- padding is what the
// graph under test must get right), KV cache, dropout, sliding windows, dynamic/YaRN RoPE, MLP
// biases. Deliberate difference: HF computes RoPE angles in float32; here everything is float64.

type Raw = Record<string, unknown>;
type Weights = ReadonlyMap<string, Float32Array>;

export interface ReferenceConfig {
  vocab: number; // V
  hidden: number; // D
  intermediate: number; // F
  layers: number; // L
  heads: number; // H
  kvHeads: number; // Hkv
  headDim: number; // Dh
  eps: number;
  invFreq: Float64Array; // [Dh/2]
  tied: boolean;
  qkvBias: boolean;
  qkNorm: boolean;
}

const ARCH: Record<string, 'llama' | 'qwen2' | 'qwen3'> = {
  LlamaForCausalLM: 'llama',
  Qwen2ForCausalLM: 'qwen2',
  Qwen3ForCausalLM: 'qwen3',
};

/** The fields the forward pass needs, with LlamaConfig / Qwen2Config / Qwen3Config defaults. */
export function referenceConfig(raw: Raw): ReferenceConfig {
  const arch: string = ARCH[(raw.architectures as string[] | undefined)?.[0] ?? ''] ?? String(raw.model_type);
  if (!['llama', 'qwen2', 'qwen3'].includes(arch)) throw new Error(`reference: unsupported model ${arch}`);
  const n = (k: string, dflt?: number): number => {
    const v = raw[k] ?? dflt;
    if (typeof v !== 'number') throw new Error(`reference: config field ${k} missing`);
    return v;
  };
  const hidden = n('hidden_size');
  const heads = n('num_attention_heads');
  // Qwen2Config / Qwen3Config default num_key_value_heads to 32, LlamaConfig to num_attention_heads;
  // Qwen3Config defaults head_dim to 128, the others to hidden / heads.
  const kvHeads = n('num_key_value_heads', arch === 'llama' ? heads : 32);
  const headDim = n('head_dim', arch === 'qwen3' ? 128 : hidden / heads);
  return {
    vocab: n('vocab_size'),
    hidden,
    intermediate: n('intermediate_size'),
    layers: n('num_hidden_layers'),
    heads,
    kvHeads,
    headDim,
    eps: n('rms_norm_eps', 1e-6),
    invFreq: referenceInvFreq(ropeParameters(raw), headDim),
    tied: raw.tie_word_embeddings === true,
    qkvBias: arch === 'qwen2' || raw.attention_bias === true,
    qkNorm: arch === 'qwen3',
  };
}

/**
 * The RoPE settings as one record {rope_theta, rope_type, factor, ...}: transformers ≥ 5 writes them
 * so (`rope_parameters`); older config.json files split them into `rope_theta` and `rope_scaling`.
 */
export function ropeParameters(raw: Raw): Raw {
  if (raw.rope_parameters) return { rope_theta: 10000, ...(raw.rope_parameters as Raw) };
  return { ...((raw.rope_scaling as Raw | null) ?? {}), rope_theta: raw.rope_theta ?? 10000 };
}

/** RoPE inverse frequencies [Dh/2] after static scaling, as HF's rope init functions compute them. */
export function referenceInvFreq(rope: Raw, headDim: number): Float64Array {
  const theta = Number(rope.rope_theta);
  const base = new Float64Array(headDim / 2);
  for (let i = 0; i < base.length; i++) base[i] = 1 / Math.pow(theta, (2 * i) / headDim);
  const type = String(rope.rope_type ?? rope.type ?? 'default');
  if (type === 'default') return base;
  const factor = Number(rope.factor);
  if (type === 'linear') return base.map((f) => f / factor);
  if (type !== 'llama3') throw new Error(`reference: rope_type ${type} not implemented`);
  const low = Number(rope.low_freq_factor);
  const high = Number(rope.high_freq_factor);
  const oldLen = Number(rope.original_max_position_embeddings);
  const lowFreqWavelen = oldLen / low;
  const highFreqWavelen = oldLen / high;
  return base.map((f) => {
    const wavelen = (2 * Math.PI) / f;
    const scaled = wavelen > lowFreqWavelen ? f / factor : f; // long wavelengths: interpolate fully
    const medium = !(wavelen < highFreqWavelen) && !(wavelen > lowFreqWavelen);
    if (!medium) return scaled;
    const smooth = (oldLen / wavelen - low) / (high - low);
    return ((1 - smooth) * scaled) / factor + smooth * scaled;
  });
}

// ---- building blocks (one token's vector at a time) ---------------------------------------------

function tensor(w: Weights, name: string): Float32Array {
  const t = w.get(name);
  if (!t) throw new Error(`reference: missing weight ${name}`);
  return t;
}

/** y = W x + b with W [out, in] row-major (torch nn.Linear layout). */
function linear(x: Float64Array, W: Float32Array, out: number, b?: Float32Array): Float64Array {
  const inDim = x.length;
  const y = new Float64Array(out);
  for (let o = 0; o < out; o++) {
    let s = b ? b[o]! : 0;
    for (let i = 0; i < inDim; i++) s += W[o * inDim + i]! * x[i]!;
    y[o] = s;
  }
  return y;
}

function rmsNorm(x: Float64Array, w: Float32Array, eps: number): Float64Array {
  let ms = 0;
  for (const v of x) ms += v * v;
  const r = 1 / Math.sqrt(ms / x.length + eps);
  return x.map((v, i) => v * r * w[i]!);
}

/** In place: x·cos + rotate_half(x)·sin, rotate_half(x) = [−x₂, x₁]. */
function rope(x: Float64Array, pos: number, invFreq: Float64Array): void {
  const half = invFreq.length;
  for (let i = 0; i < half; i++) {
    const [c, s] = [Math.cos(pos * invFreq[i]!), Math.sin(pos * invFreq[i]!)];
    const [x1, x2] = [x[i]!, x[i + half]!];
    x[i] = x1 * c - x2 * s;
    x[i + half] = x2 * c + x1 * s;
  }
}

const silu = (v: number) => v / (1 + Math.exp(-v));

// ---- layers (a sequence is an array of per-token vectors) -----------------------------------------

function attention(c: ReferenceConfig, w: Weights, p: string, xs: Float64Array[]): Float64Array[] {
  const { heads: H, kvHeads: Hkv, headDim: Dh } = c;
  const bias = (n: string) => (c.qkvBias ? tensor(w, `${p}.${n}.bias`) : undefined);
  const q = xs.map((x) => linear(x, tensor(w, `${p}.q_proj.weight`), H * Dh, bias('q_proj'))); // [T][H*Dh]
  const k = xs.map((x) => linear(x, tensor(w, `${p}.k_proj.weight`), Hkv * Dh, bias('k_proj'))); // [T][Hkv*Dh]
  const v = xs.map((x) => linear(x, tensor(w, `${p}.v_proj.weight`), Hkv * Dh, bias('v_proj'))); // [T][Hkv*Dh]
  const headwise = (rows: Float64Array[], n: number, norm: string) =>
    rows.forEach((row, pos) => {
      for (let h = 0; h < n; h++) {
        const head = row.subarray(h * Dh, (h + 1) * Dh);
        if (c.qkNorm) head.set(rmsNorm(head, tensor(w, `${p}.${norm}.weight`), c.eps));
        rope(head, pos, c.invFreq);
      }
    });
  headwise(q, H, 'q_norm');
  headwise(k, Hkv, 'k_norm');

  const out = xs.map(() => new Float64Array(H * Dh)); // [T][H*Dh]
  const scale = 1 / Math.sqrt(Dh);
  for (let h = 0; h < H; h++) {
    const kv = Math.floor(h / (H / Hkv)); // repeat_kv: each KV head serves H/Hkv consecutive heads
    for (let t = 0; t < xs.length; t++) {
      const scores = new Float64Array(t + 1); // causal: keys 0..t only
      for (let j = 0; j <= t; j++) {
        let s = 0;
        for (let d = 0; d < Dh; d++) s += q[t]![h * Dh + d]! * k[j]![kv * Dh + d]!;
        scores[j] = s * scale;
      }
      const probs = softmax(scores);
      for (let j = 0; j <= t; j++)
        for (let d = 0; d < Dh; d++) out[t]![h * Dh + d]! += probs[j]! * v[j]![kv * Dh + d]!;
    }
  }
  return out.map((o) => linear(o, tensor(w, `${p}.o_proj.weight`), c.hidden));
}

function mlp(c: ReferenceConfig, w: Weights, p: string, x: Float64Array): Float64Array {
  const gate = linear(x, tensor(w, `${p}.gate_proj.weight`), c.intermediate);
  const up = linear(x, tensor(w, `${p}.up_proj.weight`), c.intermediate);
  return linear(gate.map((g, i) => silu(g) * up[i]!), tensor(w, `${p}.down_proj.weight`), c.hidden);
}

function softmax(z: Float64Array): Float64Array {
  const m = z.reduce((a, b) => Math.max(a, b), -Infinity);
  const e = z.map((v) => Math.exp(v - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
}

// ---- public API -------------------------------------------------------------------------------------

/** Logits [T][V] of one unpadded sequence: row t is the distribution of the token after ids[t]. */
export function referenceLogits(raw: Raw, w: Weights, ids: readonly number[]): Float64Array[] {
  const c = referenceConfig(raw);
  const embed = tensor(w, 'model.embed_tokens.weight');
  let h = ids.map((id) => Float64Array.from(embed.subarray(id * c.hidden, (id + 1) * c.hidden))); // [T][D]
  for (let l = 0; l < c.layers; l++) {
    const p = `model.layers.${l}`;
    const a = attention(c, w, `${p}.self_attn`, h.map((x) => rmsNorm(x, tensor(w, `${p}.input_layernorm.weight`), c.eps)));
    h = h.map((x, t) => x.map((v, i) => v + a[t]![i]!));
    h = h.map((x) => {
      const m = mlp(c, w, `${p}.mlp`, rmsNorm(x, tensor(w, `${p}.post_attention_layernorm.weight`), c.eps));
      return x.map((v, i) => v + m[i]!);
    });
  }
  const head = c.tied ? embed : tensor(w, 'lm_head.weight');
  return h.map((x) => linear(rmsNorm(x, tensor(w, 'model.norm.weight'), c.eps), head, c.vocab));
}

/** Full-vocabulary log softmax(z / τ) of one logits row. */
export function logSoftmax(z: Float64Array, temperature = 1): Float64Array {
  const s = z.map((v) => v / temperature);
  const m = s.reduce((a, b) => Math.max(a, b), -Infinity);
  let sum = 0;
  for (const v of s) sum += Math.exp(v - m);
  const lse = m + Math.log(sum);
  return s.map((v) => v - lse);
}

/** Position-aligned log-probs from referenceLogits: [t] = log p(ids[t] | ids[<t]) for t ≥ 1, 0 at t = 0. */
export function logprobsFromLogits(logits: readonly Float64Array[], ids: readonly number[], temperature = 1): number[] {
  return ids.map((id, t) => (t === 0 ? 0 : logSoftmax(logits[t - 1]!, temperature)[id]!));
}

export interface ReferenceTopK {
  ids: number[][]; // [T][k], most likely first; row 0 all 0
  logprobs: number[][]; // [T][k]; row 0 all 0
}

/** Position-aligned top-k of p(· | ids[<t]); equal log-probs are ordered by token id. */
export function topKFromLogits(logits: readonly Float64Array[], k: number, temperature = 1): ReferenceTopK {
  const out: ReferenceTopK = { ids: [new Array<number>(k).fill(0)], logprobs: [new Array<number>(k).fill(0)] };
  for (let t = 1; t < logits.length; t++) {
    const lp = logSoftmax(logits[t - 1]!, temperature);
    const order = Array.from(lp.keys()).sort((a, b) => lp[b]! - lp[a]! || a - b).slice(0, k);
    out.ids.push(order);
    out.logprobs.push(order.map((i) => lp[i]!));
  }
  return out;
}

/** log p(ids[t] | ids[<t]) in float64 for t ≥ 1 (0 at t = 0), logits divided by `temperature`. */
export function referenceLogprobs(raw: Raw, w: Weights, ids: readonly number[], temperature = 1): number[] {
  return logprobsFromLogits(referenceLogits(raw, w, ids), ids, temperature);
}

/** The k most likely next tokens at each position, aligned as referenceLogprobs. */
export function referenceTopK(raw: Raw, w: Weights, ids: readonly number[], k: number, temperature = 1): ReferenceTopK {
  return topKFromLogits(referenceLogits(raw, w, ids), k, temperature);
}
