// The model configuration, read from a Hugging Face `config.json` of the Llama / Qwen2 / Qwen3
// family, and the HF tensor names and shapes it implies.
//
// Supported: GQA, RoPE with rope_theta and the static rope_scaling types that only change the
// inverse frequencies ("default", "linear", "llama3"); Qwen2's q/k/v biases; Qwen3's per-head q/k
// RMSNorm; tied or untied embeddings. Refused with a clear message: dynamic/YaRN/LongRoPE scaling,
// sliding-window attention, MLP biases, and any other architecture.

export type Arch = 'llama' | 'qwen2' | 'qwen3';

export interface ModelConfig {
  arch: Arch;
  vocabSize: number;
  hiddenSize: number; // D
  intermediateSize: number; // F
  numLayers: number; // L
  numHeads: number; // H
  numKvHeads: number; // Hkv (H % Hkv == 0)
  headDim: number; // Dh
  rmsNormEps: number;
  ropeTheta: number;
  /** Inverse RoPE frequencies, length Dh/2, after any static rope_scaling. */
  invFreq: Float64Array;
  tieWordEmbeddings: boolean;
  /** q/k/v projections carry biases (always for Qwen2; `attention_bias` for Llama/Qwen3). */
  qkvBias: boolean;
  /** Per-head RMSNorm on q and k before RoPE (Qwen3). */
  qkNorm: boolean;
  maxPositionEmbeddings: number;
  eosTokenIds: number[];
  bosTokenId: number | null;
  /** The original config.json, written back unchanged with checkpoints. */
  raw: Record<string, unknown>;
}

export class ConfigError extends Error {
  constructor(
    readonly file: string,
    readonly field: string,
    detail: string,
  ) {
    super(`${file}: ${field}: ${detail}`);
    this.name = 'ConfigError';
  }
}

const ARCHS: Record<string, Arch> = {
  LlamaForCausalLM: 'llama',
  Qwen2ForCausalLM: 'qwen2',
  Qwen3ForCausalLM: 'qwen3',
};
const MODEL_TYPES: Record<string, Arch> = { llama: 'llama', qwen2: 'qwen2', qwen3: 'qwen3' };

export function parseConfig(raw: Record<string, unknown>, file = 'config.json'): ModelConfig {
  const num = (k: string, dflt?: number): number => {
    const v = raw[k] ?? dflt;
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new ConfigError(file, k, `expected a number, got ${JSON.stringify(raw[k])}`);
    return v;
  };
  const int = (k: string, dflt?: number): number => {
    const v = num(k, dflt);
    if (!Number.isInteger(v) || v <= 0) throw new ConfigError(file, k, `expected a positive integer, got ${v}`);
    return v;
  };
  const archName = (raw.architectures as string[] | undefined)?.[0];
  const arch = (archName && ARCHS[archName]) || MODEL_TYPES[String(raw.model_type)];
  if (!arch)
    throw new ConfigError(file, 'architectures', `unsupported model ${JSON.stringify(archName ?? raw.model_type)}; opd supports ${Object.keys(ARCHS).join(', ')}`);
  if (raw.mlp_bias === true) throw new ConfigError(file, 'mlp_bias', 'MLP biases are not supported');
  if (raw.use_sliding_window === true) throw new ConfigError(file, 'use_sliding_window', 'sliding-window attention is not supported; set it to false if the model was trained without it');

  const hiddenSize = int('hidden_size');
  const numHeads = int('num_attention_heads');
  // HF defaults when a field is absent: Llama uses num_attention_heads KV heads, Qwen2/3 use 32.
  const numKvHeads = int('num_key_value_heads', arch === 'llama' ? numHeads : 32);
  if (numHeads % numKvHeads !== 0) throw new ConfigError(file, 'num_key_value_heads', `${numKvHeads} does not divide num_attention_heads ${numHeads}`);
  const headDim = raw.head_dim == null ? (arch === 'qwen3' ? 128 : hiddenSize / numHeads) : int('head_dim'); // Qwen3Config.head_dim defaults to 128
  if (!Number.isInteger(headDim) || headDim % 2 !== 0) throw new ConfigError(file, 'head_dim', `must be an even integer, got ${headDim}`);
  // transformers >= 5 keeps rope_theta and the scaling fields together in `rope_parameters`.
  const ropeParams = raw.rope_parameters as Record<string, unknown> | undefined;
  const ropeTheta = ropeParams?.rope_theta != null ? Number(ropeParams.rope_theta) : num('rope_theta', 10000);
  if (!(ropeTheta > 0)) throw new ConfigError(file, 'rope_parameters.rope_theta', `expected a positive number, got ${JSON.stringify(ropeParams?.rope_theta)}`);
  const eos = raw.eos_token_id;
  return {
    arch,
    vocabSize: int('vocab_size'),
    hiddenSize,
    intermediateSize: int('intermediate_size'),
    numLayers: int('num_hidden_layers'),
    numHeads,
    numKvHeads,
    headDim,
    rmsNormEps: num('rms_norm_eps', 1e-6),
    ropeTheta,
    invFreq: ropeInvFreq(ropeParams ?? raw.rope_scaling, headDim, ropeTheta, file),
    tieWordEmbeddings: raw.tie_word_embeddings === true,
    qkvBias: arch === 'qwen2' || raw.attention_bias === true,
    qkNorm: arch === 'qwen3',
    maxPositionEmbeddings: int('max_position_embeddings', 32768),
    eosTokenIds: Array.isArray(eos) ? (eos as number[]) : typeof eos === 'number' ? [eos] : [],
    bosTokenId: typeof raw.bos_token_id === 'number' ? raw.bos_token_id : null,
    raw,
  };
}

/** inv_freq_i = θ^(−2i/Dh), then the static scaling HF applies for rope_type linear or llama3. */
function ropeInvFreq(scaling: unknown, dh: number, theta: number, file: string): Float64Array {
  const inv = Float64Array.from({ length: dh / 2 }, (_, i) => Math.pow(theta, (-2 * i) / dh));
  if (scaling == null) return inv;
  const s = scaling as Record<string, number | string>;
  const type = String(s.rope_type ?? s.type ?? 'default');
  if (type === 'default') return inv;
  if (type === 'linear') return inv.map((f) => f / Number(s.factor));
  if (type === 'llama3') {
    const [factor, lo, hi, old] = [Number(s.factor), Number(s.low_freq_factor), Number(s.high_freq_factor), Number(s.original_max_position_embeddings)];
    const [lowWl, highWl] = [old / lo, old / hi];
    return inv.map((f) => {
      const wl = (2 * Math.PI) / f;
      if (wl < highWl) return f;
      if (wl > lowWl) return f / factor;
      const smooth = (old / wl - lo) / (hi - lo);
      return (1 - smooth) * (f / factor) + smooth * f;
    });
  }
  throw new ConfigError(file, 'rope_scaling', `rope_type "${type}" is not supported (supported: default, linear, llama3)`);
}

/** Every HF tensor name of the model with its shape, in a stable order. */
export function tensorShapes(c: ModelConfig): Array<[string, number[]]> {
  const [D, F, Dh] = [c.hiddenSize, c.intermediateSize, c.headDim];
  const out: Array<[string, number[]]> = [['model.embed_tokens.weight', [c.vocabSize, D]]];
  for (let i = 0; i < c.numLayers; i++) {
    const p = `model.layers.${i}`;
    out.push([`${p}.input_layernorm.weight`, [D]]);
    out.push([`${p}.self_attn.q_proj.weight`, [c.numHeads * Dh, D]]);
    out.push([`${p}.self_attn.k_proj.weight`, [c.numKvHeads * Dh, D]]);
    out.push([`${p}.self_attn.v_proj.weight`, [c.numKvHeads * Dh, D]]);
    if (c.qkvBias) {
      out.push([`${p}.self_attn.q_proj.bias`, [c.numHeads * Dh]]);
      out.push([`${p}.self_attn.k_proj.bias`, [c.numKvHeads * Dh]]);
      out.push([`${p}.self_attn.v_proj.bias`, [c.numKvHeads * Dh]]);
    }
    if (c.qkNorm) {
      out.push([`${p}.self_attn.q_norm.weight`, [Dh]]);
      out.push([`${p}.self_attn.k_norm.weight`, [Dh]]);
    }
    out.push([`${p}.self_attn.o_proj.weight`, [D, c.numHeads * Dh]]);
    out.push([`${p}.post_attention_layernorm.weight`, [D]]);
    out.push([`${p}.mlp.gate_proj.weight`, [F, D]]);
    out.push([`${p}.mlp.up_proj.weight`, [F, D]]);
    out.push([`${p}.mlp.down_proj.weight`, [D, F]]);
  }
  out.push(['model.norm.weight', [D]]);
  if (!c.tieWordEmbeddings) out.push(['lm_head.weight', [c.vocabSize, D]]);
  return out;
}

/** Weight decay applies to matrices only (embeddings included), never to norms or biases. */
export function decays(name: string): boolean {
  return name.endsWith('.weight') && !name.includes('norm');
}

export function paramCount(c: ModelConfig): number {
  return tensorShapes(c).reduce((s, [, shape]) => s + shape.reduce((a, b) => a * b, 1), 0);
}

/**
 * Parameters that take part in a matrix product per token: the attention and MLP projections of every
 * layer and the LM head (V·D, whether or not it is tied; the embedding lookup is not a product).
 * Forward ≈ 2 × this FLOPs per token, forward + backward ≈ 6 ×, attention scores aside.
 */
export function matmulParams(c: ModelConfig): number {
  const [D, Dh, H, Hkv, F, L, V] = [c.hiddenSize, c.headDim, c.numHeads, c.numKvHeads, c.intermediateSize, c.numLayers, c.vocabSize];
  return L * (D * (H + 2 * Hkv) * Dh + H * Dh * D + 3 * D * F) + V * D;
}
