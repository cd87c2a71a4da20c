// Fresh models: HF-style random weights, the config of opd's tiny built-in models, and a complete
// model directory for `opd model init --config C --out DIR --seed N`.
//
// Init follows transformers' `_init_weights` for Llama/Qwen: every matrix (embedding and lm_head
// included) ~ N(0, initializer_range²), RMSNorm weights 1, biases 0. Draws go tensor by tensor in
// tensorShapes order from one seeded Rng, so the weights depend only on (config, seed).
// Leaves out: zeroing the pad_token_id embedding row (nn.Embedding padding_idx) -- our tiny models
// never feed the pad token as an input that matters -- and any scaled / depth-dependent init.

import path from 'node:path';
import { atomicWriteFile } from '../../engine/io/atomic.ts';
import { Rng, normalArray } from '../../engine/rng.ts';
import { BYTE_BOS_ID, BYTE_EOS_ID, BYTE_PAD_ID, BYTE_VOCAB_SIZE, saveByteTokenizer } from '../../data/tokenizer/byte.ts';
import { ConfigError, type ModelConfig, parseConfig, tensorShapes } from './config.ts';
import { type ModelDir, type Weights, saveModelDir } from './weights.ts';

const DEFAULT_INITIALIZER_RANGE = 0.02;

export function initWeights(config: ModelConfig, seed: number): Weights {
  const std = initializerRange(config);
  const rng = new Rng(seed);
  const weights: Weights = new Map();
  for (const [name, shape] of tensorShapes(config)) {
    const n = shape.reduce((a, b) => a * b, 1);
    // Norm weights and biases draw nothing, so adding one never shifts the matrices' random stream.
    if (name.endsWith('.bias')) weights.set(name, new Float32Array(n));
    else if (name.includes('norm')) weights.set(name, new Float32Array(n).fill(1));
    else weights.set(name, normalArray(rng, n, std));
  }
  return weights;
}

function initializerRange(config: ModelConfig): number {
  const v = config.raw.initializer_range ?? DEFAULT_INITIALIZER_RANGE;
  if (typeof v !== 'number' || !(v > 0) || !Number.isFinite(v)) {
    throw new ConfigError('config.json', 'initializer_range', `expected a positive number, got ${JSON.stringify(v)}`);
  }
  return v;
}

/**
 * The config.json of a tiny Qwen2-style model on the byte tokenizer (~91k parameters); `overrides`
 * replace or add top-level fields. Fields are those transformers' Qwen2Config saves, so the
 * directory loads in Python unchanged.
 */
export function tinyConfig(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    architectures: ['Qwen2ForCausalLM'],
    model_type: 'qwen2',
    vocab_size: BYTE_VOCAB_SIZE,
    hidden_size: 64,
    intermediate_size: 128,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    hidden_act: 'silu',
    max_position_embeddings: 512,
    rope_theta: 10000,
    rms_norm_eps: 1e-6,
    initializer_range: DEFAULT_INITIALIZER_RANGE,
    tie_word_embeddings: true,
    use_sliding_window: false,
    sliding_window: null,
    attention_dropout: 0,
    use_cache: true,
    bos_token_id: BYTE_BOS_ID,
    eos_token_id: BYTE_EOS_ID,
    torch_dtype: 'float32',
    ...overrides,
  };
}

/**
 * Writes a complete, freshly initialised HF model directory: config.json, model.safetensors,
 * generation_config.json and -- when vocab_size is the byte tokenizer's -- its tokenizer files.
 * `tokenizer` in the result says which tokenizer was written (null: bring your own).
 */
export async function initModelDir(dir: string, rawConfig: Record<string, unknown>, seed: number): Promise<ModelDir & { tokenizer: 'byte' | null }> {
  const config = parseConfig(rawConfig, path.join(dir, 'config.json'));
  const weights = initWeights(config, seed);
  await saveModelDir(dir, { config, weights });
  const byte = config.vocabSize === BYTE_VOCAB_SIZE;
  if (byte) await saveByteTokenizer(dir);
  await atomicWriteFile(path.join(dir, 'generation_config.json'), generationConfig(config, byte));
  return { dir, config, weights, tokenizer: byte ? 'byte' : null };
}

/** What transformers derives from config.json ("_from_model_config"), plus the byte pad id when known. */
function generationConfig(config: ModelConfig, byte: boolean): Uint8Array {
  const eos = config.eosTokenIds.length === 1 ? config.eosTokenIds[0] : config.eosTokenIds;
  const gen: Record<string, unknown> = { _from_model_config: true };
  if (config.bosTokenId !== null) gen.bos_token_id = config.bosTokenId;
  if (config.eosTokenIds.length > 0) gen.eos_token_id = eos;
  if (byte) gen.pad_token_id = BYTE_PAD_ID;
  return new TextEncoder().encode(JSON.stringify(gen, null, 2) + '\n');
}
