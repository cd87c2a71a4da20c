// Model directories: save -> load round trips (single file, shards, tied/untied, each architecture),
// BF16 against hand-rounded values, one hand-made broken directory per refusal, seeded init,
// initModelDir accepted by loadModelDir and loadTokenizer, and parseConfig on the public configs of
// Qwen2.5-0.5B, Qwen3-0.6B and Llama-3.2-1B checked against parameter counts and llama3 RoPE
// frequencies computed by hand here, independently of config.ts.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { SafetensorsError, writeSafetensors, type StWriteTensor } from '../../engine/io/safetensors.ts';
import { loadTokenizer } from '../../data/tokenizer/hf.ts';
import { BYTE_EOS_ID, BYTE_VOCAB_SIZE } from '../../data/tokenizer/byte.ts';
import { ConfigError, paramCount, parseConfig, tensorShapes } from './config.ts';
import { ModelLoadError, ModelSaveError, type ModelLoadFault } from './errors.ts';
import { initModelDir, initWeights, tinyConfig } from './init.ts';
import { type Weights, loadModelDir, saveModelDir, weightsEqual } from './weights.ts';

const dirs: string[] = [];
const tmp = () => {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'opd-weights-'));
  dirs.push(d);
  return d;
};
after(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

/** Small variants of tinyConfig, one per architecture feature: biases, q/k norms, untied head. */
const ARCH_OVERRIDES = {
  qwen2: { hidden_size: 16, intermediate_size: 32 },
  qwen3: { architectures: ['Qwen3ForCausalLM'], model_type: 'qwen3', hidden_size: 16, intermediate_size: 32, head_dim: 8 },
  llama: { architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_size: 16, intermediate_size: 32 },
};
const small = (arch: keyof typeof ARCH_OVERRIDES, tied: boolean, extra: Record<string, unknown> = {}) =>
  parseConfig(tinyConfig({ ...ARCH_OVERRIDES[arch], tie_word_embeddings: tied, ...extra }));
const files = (dir: string) => fs.readdirSync(dir).sort();
const readJson = (file: string) => JSON.parse(fs.readFileSync(file, 'utf8'));

// ---- round trips ------------------------------------------------------------------------------

for (const [arch, tied] of [['qwen2', true], ['qwen2', false], ['qwen3', true], ['qwen3', false], ['llama', false]] as const) {
  test(`save -> load is bit-identical: ${arch}, ${tied ? 'tied' : 'untied'}`, async () => {
    const config = small(arch, tied);
    const weights = initWeights(config, 7);
    const dir = path.join(tmp(), 'model'); // does not exist yet: saveModelDir creates it
    await saveModelDir(dir, { config, weights });
    assert.deepEqual(files(dir), ['config.json', 'model.safetensors']);
    const m = await loadModelDir(dir);
    assert.ok(weightsEqual(m.weights, weights));
    assert.equal(m.weights.has('lm_head.weight'), !tied);
    assert.equal(m.config.qkvBias, arch === 'qwen2');
    assert.equal(m.config.qkNorm, arch === 'qwen3');
    const raw = readJson(path.join(dir, 'config.json'));
    assert.equal(raw.torch_dtype, 'float32');
    assert.equal(raw.tie_word_embeddings, tied);
  });
}

test('forced sharding: shards + index round trip, and a later single-file save removes them', async () => {
  const config = small('qwen3', false);
  const weights = initWeights(config, 3);
  const dir = tmp();
  await saveModelDir(dir, { config, weights }, { maxShardBytes: 20_000 });
  const shards = files(dir).filter((f) => f.startsWith('model-'));
  assert.ok(shards.length > 2, `expected several shards, got ${shards}`);
  shards.forEach((f, i) => assert.equal(f, `model-${String(i + 1).padStart(5, '0')}-of-${String(shards.length).padStart(5, '0')}.safetensors`));
  const index = readJson(path.join(dir, 'model.safetensors.index.json'));
  assert.equal(index.metadata.total_size, paramCount(config) * 4);
  assert.deepEqual(Object.keys(index.weight_map).sort(), tensorShapes(config).map(([n]) => n).sort());
  assert.deepEqual(new Set(Object.values(index.weight_map)), new Set(shards));
  assert.ok(weightsEqual((await loadModelDir(dir)).weights, weights));

  const again = initWeights(config, 4);
  await saveModelDir(dir, { config, weights: again });
  assert.deepEqual(files(dir), ['config.json', 'model.safetensors']);
  assert.ok(weightsEqual((await loadModelDir(dir)).weights, again));
});

/** Round to nearest even on the float32 bits: an implementation independent of engine/io/half.ts. */
function bf16(x: number): number {
  const u = new Uint32Array(new Float32Array([x]).buffer)[0]!;
  const low = u & 0xffff;
  const high = (u >>> 16) + (low > 0x8000 || (low === 0x8000 && (u >>> 16) & 1) ? 1 : 0);
  return new Float32Array(new Uint32Array([(high << 16) >>> 0]).buffer)[0]!;
}

test('BF16 save then load gives the hand-rounded values', async () => {
  const config = small('qwen2', true);
  const weights = initWeights(config, 11);
  const embed = weights.get('model.embed_tokens.weight')!;
  const cases: Array<[number, number]> = [
    [1 + 2 ** -8, 1], // exactly half an ulp above 1: ties to the even mantissa 1.0
    [1 + 3 * 2 ** -8, 1 + 2 ** -6], // half-way between odd 1+2^-7 and even 1+2^-6
    [1 + 2 ** -8 + 2 ** -20, 1 + 2 ** -7], // just above half: rounds up
    [0.1, 0.10009765625], // 0x3DCCCCCD -> 0x3DCD
    [-2.5, -2.5], // exact
  ];
  cases.forEach(([x], i) => (embed[i] = x));
  const dir = tmp();
  await saveModelDir(dir, { config, weights }, { dtype: 'BF16' });
  assert.equal(readJson(path.join(dir, 'config.json')).torch_dtype, 'bfloat16');
  assert.equal(fs.statSync(path.join(dir, 'model.safetensors')).size < paramCount(config) * 2 + 4096, true);
  const loaded = (await loadModelDir(dir)).weights;
  const got = loaded.get('model.embed_tokens.weight')!;
  cases.forEach(([x, want], i) => assert.equal(got[i], want, `bf16(${x})`));
  for (const [name, data] of weights) {
    const back = loaded.get(name)!;
    for (let i = 0; i < data.length; i++) if (back[i] !== bf16(data[i]!)) assert.fail(`${name}[${i}]: ${back[i]} != bf16(${data[i]})`);
  }
});

test('tokenizerFrom copies the tokenizer files; saveModelDir refuses weights that do not fit the config', async () => {
  const src = tmp();
  await initModelDir(src, tinyConfig({ hidden_size: 16, intermediate_size: 32 }), 1);
  const m = await loadModelDir(src);
  const dst = tmp();
  await saveModelDir(dst, m, { tokenizerFrom: src });
  assert.deepEqual(files(dst), ['config.json', 'generation_config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']);
  assert.equal((await loadTokenizer(dst)).vocabSize, BYTE_VOCAB_SIZE);

  const withHead = new Map(m.weights).set('lm_head.weight', m.weights.get('model.embed_tokens.weight')!);
  await assert.rejects(saveModelDir(tmp(), { config: m.config, weights: withHead }), (e) => e instanceof ModelSaveError && e.tensor === 'lm_head.weight');
  const missing = new Map(m.weights);
  missing.delete('model.norm.weight');
  await assert.rejects(saveModelDir(tmp(), { config: m.config, weights: missing }), (e) => e instanceof ModelSaveError && e.tensor === 'model.norm.weight');
  await assert.rejects(saveModelDir(tmp(), m, { tokenizerFrom: tmp() }), ModelSaveError);
});

// ---- refusals ---------------------------------------------------------------------------------

/** A model directory written by hand: config.json plus the given tensors in one or more files. */
function handMade(raw: Record<string, unknown>, tensorFiles: Record<string, StWriteTensor[]>): Promise<string> {
  const dir = tmp();
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(raw));
  return Promise.all(Object.entries(tensorFiles).map(([f, ts]) => writeSafetensors(path.join(dir, f), ts))).then(() => dir);
}
const asTensors = (config: ReturnType<typeof small>, w: Weights): StWriteTensor[] =>
  [...w].map(([name, data]) => ({ name, data, shape: tensorShapes(config).find(([n]) => n === name)?.[1] ?? [data.length] }));

async function expectLoadError(dir: string, reason: ModelLoadFault, tensor: string | null, ...inMessage: string[]): Promise<ModelLoadError> {
  let caught: unknown;
  await loadModelDir(dir).catch((e) => (caught = e));
  assert.ok(caught instanceof ModelLoadError, `expected ModelLoadError, got ${String(caught)}`);
  assert.equal(caught.reason, reason, caught.message);
  assert.equal(caught.dir, dir);
  if (tensor !== null) assert.equal(caught.tensor, tensor, caught.message);
  for (const s of inMessage) assert.ok(caught.message.includes(s), `"${s}" not in: ${caught.message}`);
  return caught;
}

const RAW = tinyConfig(ARCH_OVERRIDES.qwen2);
const CFG = parseConfig(RAW);
const fresh = () => initWeights(CFG, 5);
const UP = 'model.layers.0.mlp.up_proj.weight';

test('a wrong shape names the tensor, expected and actual shapes, and the file', async () => {
  const t = asTensors(CFG, fresh()).map((x) => (x.name === UP ? { ...x, shape: [16, 32] } : x));
  const dir = await handMade(RAW, { 'model.safetensors': t });
  const e = await expectLoadError(dir, 'shape', UP, 'expected [32, 16], got [16, 32]', 'model.safetensors', 'hidden_size');
  assert.equal(e.file, path.join(dir, 'model.safetensors'));
  assert.equal(e.expected, '[32, 16]');
  assert.equal(e.actual, '[16, 32]');
});

test('a missing tensor, an extra tensor and a padded vocabulary are refused', async () => {
  const w = fresh();
  w.delete('model.layers.1.self_attn.k_proj.bias');
  await expectLoadError(await handMade(RAW, { 'model.safetensors': asTensors(CFG, w) }), 'missing-tensor', 'model.layers.1.self_attn.k_proj.bias', 'expected [8], got absent');

  const extra = fresh().set('model.layers.0.mlp.gate_proj.bias', new Float32Array(32));
  await expectLoadError(await handMade(RAW, { 'model.safetensors': asTensors(CFG, extra) }), 'extra-tensor', 'model.layers.0.mlp.gate_proj.bias', 'not part of');

  const untied = parseConfig(tinyConfig({ ...ARCH_OVERRIDES.qwen2, tie_word_embeddings: false }));
  const noHead = initWeights(untied, 1);
  noHead.delete('lm_head.weight');
  await expectLoadError(await handMade(untied.raw, { 'model.safetensors': asTensors(untied, noHead) }), 'missing-tensor', 'lm_head.weight', 'tie_word_embeddings');

  const padded = asTensors(CFG, fresh()).map((x) =>
    x.name === 'model.embed_tokens.weight' ? { ...x, shape: [272, 16], data: new Float32Array(272 * 16) } : x);
  await expectLoadError(await handMade(RAW, { 'model.safetensors': padded }), 'vocab', 'model.embed_tokens.weight', '272 rows', 'vocab_size is 264', 'set vocab_size in config.json to 272');
});

test('tied embeddings: an identical lm_head copy and rotary inv_freq buffers are ignored, a differing lm_head is refused', async () => {
  const w = fresh();
  const embed = w.get('model.embed_tokens.weight')!;
  const ok = [...asTensors(CFG, w), { name: 'lm_head.weight', shape: [264, 16], data: embed.slice() },
    { name: 'model.layers.0.self_attn.rotary_emb.inv_freq', shape: [2], data: new Float32Array([1, 0.01]) }];
  const m = await loadModelDir(await handMade(RAW, { 'model.safetensors': ok }));
  assert.ok(weightsEqual(m.weights, w));

  const other = embed.slice();
  other[3]! += 1;
  const bad = [...asTensors(CFG, w), { name: 'lm_head.weight', shape: [264, 16], data: other }];
  await expectLoadError(await handMade(RAW, { 'model.safetensors': bad }), 'tied-lm-head', 'lm_head.weight', 'tie_word_embeddings to false');
});

test('NaN / Infinity weights and integer tensors are refused with the tensor and the first bad index', async () => {
  for (const v of [NaN, -Infinity]) {
    const w = fresh();
    w.get(UP)![37] = v;
    w.get(UP)![40] = NaN;
    const e = await expectLoadError(await handMade(RAW, { 'model.safetensors': asTensors(CFG, w) }), 'non-finite', UP, 'flat index 37', 'row 2, column 5');
    assert.equal(e.actual, String(v));
  }
  const ints = asTensors(CFG, fresh()).map((x) => (x.name === UP ? { ...x, data: new Int32Array(32 * 16) } : x));
  await expectLoadError(await handMade(RAW, { 'model.safetensors': ints }), 'dtype', UP, 'expected F32, F16 or BF16, got I32');
});

test('a truncated safetensors file is a ModelLoadError carrying the SafetensorsError, its file and tensor', async () => {
  const dir = tmp();
  await saveModelDir(dir, { config: CFG, weights: fresh() });
  const file = path.join(dir, 'model.safetensors');
  fs.truncateSync(file, fs.statSync(file).size - 100);
  const e = await expectLoadError(dir, 'safetensors', null, 'model.safetensors', 're-download');
  assert.ok(e.cause instanceof SafetensorsError);
  assert.equal(e.file, file);
  assert.ok(e.tensor !== null && e.message.includes(e.tensor), e.message);
});

test('config.json missing or invalid, no weights at all, a missing shard', async () => {
  const noConfig = tmp();
  await writeSafetensors(path.join(noConfig, 'model.safetensors'), asTensors(CFG, fresh()));
  await expectLoadError(noConfig, 'config', null, 'config.json');
  await expectLoadError(path.join(noConfig, 'nope'), 'config', null, 'does not exist');
  const badJson = tmp();
  fs.writeFileSync(path.join(badJson, 'config.json'), '{"vocab_size": 264,');
  await expectLoadError(badJson, 'config', null, 'not valid JSON');

  const empty = await handMade(RAW, {});
  await expectLoadError(empty, 'no-weights', null, 'model.safetensors.index.json', 'model.safetensors', '*.safetensors');

  const sharded = tmp();
  await saveModelDir(sharded, { config: CFG, weights: fresh() }, { maxShardBytes: 20_000 });
  fs.rmSync(path.join(sharded, files(sharded).filter((f) => f.startsWith('model-'))[1]!));
  await expectLoadError(sharded, 'safetensors', null, 'does not exist');
});

test('without an index, every *.safetensors is read; a tensor in two files is refused', async () => {
  const t = asTensors(CFG, fresh());
  const split = await handMade(RAW, { 'a.safetensors': t.slice(0, 5), 'b.safetensors': t.slice(5) });
  assert.ok(weightsEqual((await loadModelDir(split)).weights, fresh()));
  const dup = await handMade(RAW, { 'a.safetensors': t.slice(0, 5), 'b.safetensors': t.slice(4) });
  await expectLoadError(dup, 'duplicate-tensor', t[4]!.name, 'a.safetensors');
});

// ---- init ------------------------------------------------------------------------------------

test('initWeights: deterministic per seed, norms 1, biases 0, matrices N(0, initializer_range)', async () => {
  const config = parseConfig(tinyConfig());
  const a = initWeights(config, 42);
  assert.ok(weightsEqual(a, initWeights(config, 42)));
  assert.ok(!weightsEqual(a, initWeights(config, 43)));
  for (const [name, data] of a) {
    if (name.includes('norm')) assert.ok(data.every((v) => v === 1), name);
    if (name.endsWith('.bias')) assert.ok(data.every((v) => v === 0), name);
  }
  const std = (x: Float32Array) => Math.sqrt(x.reduce((s, v) => s + v * v, 0) / x.length);
  const embed = a.get('model.embed_tokens.weight')!; // 264·64 = 16896 draws: std error ≈ 0.02/√(2n) ≈ 1.1e-4
  assert.ok(Math.abs(std(embed) - 0.02) < 6e-4, `std ${std(embed)}`);
  assert.ok(Math.abs(embed.reduce((s, v) => s + v, 0) / embed.length) < 6e-4);
  const wide = initWeights(parseConfig(tinyConfig({ initializer_range: 0.1 })), 42).get('model.embed_tokens.weight')!;
  assert.ok(Math.abs(std(wide) - 0.1) < 3e-3, `std ${std(wide)}`);
  // Only the matrices draw: the biases Qwen2 adds do not change the llama weights' random stream.
  const llama = initWeights(parseConfig(tinyConfig({ architectures: ['LlamaForCausalLM'], model_type: 'llama' })), 42);
  for (const [name, data] of llama) assert.deepEqual(data, a.get(name), name);
});

test('initModelDir writes a directory loadModelDir and loadTokenizer both accept', async () => {
  const dir = path.join(tmp(), 'tiny');
  const made = await initModelDir(dir, tinyConfig(), 9);
  assert.equal(made.tokenizer, 'byte');
  assert.deepEqual(files(dir), ['config.json', 'generation_config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']);
  const m = await loadModelDir(dir);
  assert.ok(weightsEqual(m.weights, initWeights(m.config, 9)));
  const tok = await loadTokenizer(dir);
  assert.equal(tok.vocabSize, m.config.vocabSize);
  assert.deepEqual(tok.eosTokenIds, [BYTE_EOS_ID]);
  assert.deepEqual(m.config.eosTokenIds, [BYTE_EOS_ID]);
  assert.equal(readJson(path.join(dir, 'generation_config.json')).eos_token_id, BYTE_EOS_ID);

  const other = await initModelDir(tmp(), tinyConfig({ vocab_size: 300, hidden_size: 16, intermediate_size: 32 }), 9);
  assert.equal(other.tokenizer, null);
  assert.ok(!fs.existsSync(path.join(other.dir, 'tokenizer.json')));
});

// ---- real configs -----------------------------------------------------------------------------

const QWEN25_05B = {
  architectures: ['Qwen2ForCausalLM'], attention_dropout: 0.0, bos_token_id: 151643, eos_token_id: 151643, hidden_act: 'silu',
  hidden_size: 896, initializer_range: 0.02, intermediate_size: 4864, max_position_embeddings: 32768, max_window_layers: 24,
  model_type: 'qwen2', num_attention_heads: 14, num_hidden_layers: 24, num_key_value_heads: 2, rms_norm_eps: 1e-6,
  rope_theta: 1000000.0, sliding_window: 32768, tie_word_embeddings: true, torch_dtype: 'bfloat16',
  transformers_version: '4.40.1', use_cache: true, use_sliding_window: false, vocab_size: 151936,
};
const QWEN3_06B = {
  architectures: ['Qwen3ForCausalLM'], attention_bias: false, attention_dropout: 0.0, bos_token_id: 151643, eos_token_id: 151645,
  head_dim: 128, hidden_act: 'silu', hidden_size: 1024, initializer_range: 0.02, intermediate_size: 3072,
  max_position_embeddings: 40960, max_window_layers: 28, model_type: 'qwen3', num_attention_heads: 16, num_hidden_layers: 28,
  num_key_value_heads: 8, rms_norm_eps: 1e-6, rope_scaling: null, rope_theta: 1000000, sliding_window: null,
  tie_word_embeddings: true, torch_dtype: 'bfloat16', transformers_version: '4.51.0', use_cache: true, use_sliding_window: false,
  vocab_size: 151936,
};
const LLAMA32_1B = {
  architectures: ['LlamaForCausalLM'], attention_bias: false, attention_dropout: 0.0, bos_token_id: 128000, eos_token_id: 128001,
  head_dim: 64, hidden_act: 'silu', hidden_size: 2048, initializer_range: 0.02, intermediate_size: 8192,
  max_position_embeddings: 131072, mlp_bias: false, model_type: 'llama', num_attention_heads: 32, num_hidden_layers: 16,
  num_key_value_heads: 8, pretraining_tp: 1, rms_norm_eps: 1e-5,
  rope_scaling: { factor: 32.0, high_freq_factor: 4.0, low_freq_factor: 1.0, original_max_position_embeddings: 8192, rope_type: 'llama3' },
  rope_theta: 500000.0, tie_word_embeddings: true, torch_dtype: 'bfloat16', transformers_version: '4.45.0.dev0', use_cache: true,
  vocab_size: 128256,
};

/** Parameters of a Llama-family decoder, summed by hand from the architecture (not from tensorShapes). */
function handCount(p: { V: number; D: number; F: number; L: number; H: number; Hkv: number; Dh: number; tied: boolean; bias: boolean; qkNorm: boolean }): number {
  const attention = p.D * p.H * p.Dh /* q */ + 2 * p.D * p.Hkv * p.Dh /* k, v */ + p.H * p.Dh * p.D; /* o */
  const biases = p.bias ? p.H * p.Dh + 2 * p.Hkv * p.Dh : 0;
  const qkNorms = p.qkNorm ? 2 * p.Dh : 0;
  const mlp = 3 * p.D * p.F; // gate, up, down
  const layer = attention + biases + qkNorms + mlp + 2 * p.D; // + input/post-attention RMSNorm
  return p.V * p.D * (p.tied ? 1 : 2) + p.L * layer + p.D; // + final norm
}

test('parseConfig on public configs: structure and parameter counts', () => {
  const cases = [
    { raw: QWEN25_05B, hand: { V: 151936, D: 896, F: 4864, L: 24, H: 14, Hkv: 2, Dh: 64, tied: true, bias: true, qkNorm: false }, approx: 494e6 },
    { raw: QWEN3_06B, hand: { V: 151936, D: 1024, F: 3072, L: 28, H: 16, Hkv: 8, Dh: 128, tied: true, bias: false, qkNorm: true }, approx: 596e6 },
    { raw: LLAMA32_1B, hand: { V: 128256, D: 2048, F: 8192, L: 16, H: 32, Hkv: 8, Dh: 64, tied: true, bias: false, qkNorm: false }, approx: 1236e6 },
  ];
  for (const { raw, hand, approx } of cases) {
    const c = parseConfig(raw);
    assert.deepEqual([c.headDim, c.numKvHeads, c.tieWordEmbeddings, c.qkvBias, c.qkNorm], [hand.Dh, hand.Hkv, hand.tied, hand.bias, hand.qkNorm], raw.architectures[0]);
    assert.equal(paramCount(c), handCount(hand), raw.architectures[0]);
    assert.ok(Math.abs(paramCount(c) - approx) < 1e6, `${raw.architectures[0]}: ${paramCount(c)} vs published ≈${approx}`);
  }
  assert.deepEqual(parseConfig(QWEN3_06B).eosTokenIds, [151645]);
});

test('llama3 rope scaling: high frequencies kept, low ones divided by factor, the band between interpolated', () => {
  const inv = parseConfig(LLAMA32_1B).invFreq; // Dh 64, theta 5e5, factor 32, band: wavelengths 8192/4 .. 8192/1
  assert.equal(inv.length, 32);
  // i = 0: inv 1, wavelength 2π ≪ 2048: unchanged.
  assert.equal(inv[0], 1);
  // i = 31: inv = 5e5^(-62/64) ≈ 3.0e-6, wavelength ≈ 2.1e6 ≫ 8192: divided by 32.
  assert.ok(Math.abs(inv[31]! / (500000 ** (-62 / 64) / 32) - 1) < 1e-12);
  // i = 16: inv = 5e5^(-1/2) = 1/√5e5, wavelength 2π√5e5 ≈ 4443 inside the band;
  // smooth = (8192 / wavelength − 1) / (4 − 1), result = (1 − smooth)·inv/32 + smooth·inv.
  const f = 1 / Math.sqrt(500000);
  const smooth = (8192 / (2 * Math.PI * Math.sqrt(500000)) - 1) / 3;
  assert.ok(Math.abs(inv[16]! - ((1 - smooth) * f / 32 + smooth * f)) < 1e-15);
  assert.ok(Math.abs(inv[16]! - 4.2956e-4) < 1e-7); // ≈ 0.3037·f, written out as a number
});

test('unsupported configs are ConfigErrors naming the field', () => {
  const refuse = (raw: Record<string, unknown>, field: string) =>
    assert.throws(() => parseConfig(raw, 'x/config.json'), (e) => e instanceof ConfigError && e.field === field && e.message.includes(field));
  refuse({ ...QWEN25_05B, rope_scaling: { factor: 4.0, original_max_position_embeddings: 32768, type: 'yarn' } }, 'rope_scaling');
  refuse({ ...QWEN25_05B, use_sliding_window: true }, 'use_sliding_window');
  refuse({ ...LLAMA32_1B, architectures: ['MistralForCausalLM'], model_type: 'mistral' }, 'architectures');
  refuse({ ...LLAMA32_1B, mlp_bias: true }, 'mlp_bias');
});
