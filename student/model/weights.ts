// A Hugging Face model directory in and out: config.json + safetensors weights (one file or shards
// with model.safetensors.index.json) + tokenizer files, in the layout and tensor names transformers'
// save_pretrained uses, so `AutoModelForCausalLM.from_pretrained(dir)` loads what opd writes and opd
// loads what transformers writes.
//
// Loading checks the weights against the tensor list the config implies (config.ts tensorShapes) and
// refuses, with a ModelLoadError naming the tensor, expected vs actual and the fix, any missing or
// unexpected tensor, wrong shape, non-float dtype or non-finite value. The only tolerated extras are
// RoPE `rotary_emb.inv_freq` buffers (recomputed from the config) and an `lm_head.weight` that is a
// bitwise copy of a tied embedding. An embedding with more rows than vocab_size is refused rather
// than sliced: HF padded vocabularies already state the padded size in vocab_size.
//
// Leaves out: lazy / memory-mapped loading (every tensor is read into memory as F32), PyTorch .bin
// checkpoints, quantized weights, and crash-safety of the directory as a whole -- each file is
// replaced atomically, but a crash mid-save can leave a mix of old and new files; checkpoint code
// that needs all-or-nothing should save into a fresh directory and rename it.

import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { atomicWriteFile, fsyncDir } from '../../engine/io/atomic.ts';
import {
  INDEX_FILE, SafetensorsError, readSafetensors, readSafetensorsIndex, writeSafetensors,
  type StTensor, type StWriteTensor,
} from '../../engine/io/safetensors.ts';
import { type Arch, type ModelConfig, parseConfig, tensorShapes } from './config.ts';
import { ModelLoadError, type ModelLoadErrorFields, ModelSaveError } from './errors.ts';

/** HF tensor name -> values in row-major order, always F32 in memory whatever the file stored. */
export type Weights = Map<string, Float32Array>;

export interface ModelDir {
  dir: string;
  config: ModelConfig;
  weights: Weights;
}

export type WeightDtype = 'F32' | 'BF16' | 'F16';

export interface SaveOptions {
  /** A directory whose tokenizer files (TOKENIZER_FILES) are copied beside the weights. */
  tokenizerFrom?: string;
  /** Storage dtype of the written tensors (default F32); BF16/F16 round to nearest even. */
  dtype?: WeightDtype;
  /** Largest shard in bytes before the weights are split (default 2 GB, as transformers uses for safetensors). */
  maxShardBytes?: number;
}

const CONFIG_FILE = 'config.json';
const SINGLE_FILE = 'model.safetensors';
const SHARD_RE = /^model-\d{5}-of-\d{5}\.safetensors$/;
const DEFAULT_MAX_SHARD_BYTES = 2_000_000_000;
/** Tokenizer-side files transformers saves beside a model; copied when present. */
export const TOKENIZER_FILES = [
  'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'generation_config.json',
  'vocab.json', 'merges.txt', 'added_tokens.json', 'tokenizer.model', 'chat_template.jinja', 'chat_template.json',
];
const FLOAT_DTYPES = new Set(['F32', 'F16', 'BF16']);
const ITEMSIZE: Record<WeightDtype, number> = { F32: 4, BF16: 2, F16: 2 };
const TORCH_DTYPE: Record<WeightDtype, string> = { F32: 'float32', BF16: 'bfloat16', F16: 'float16' };
const ARCH_CLASS: Record<Arch, string> = { llama: 'LlamaForCausalLM', qwen2: 'Qwen2ForCausalLM', qwen3: 'Qwen3ForCausalLM' };
/** Non-persistent RoPE buffers some old exports include; opd recomputes them from the config. */
const IGNORED_RE = /(^|\.)rotary_emb\.inv_freq$/;

// ---- loading ----------------------------------------------------------------------------------

/** Reads and validates `dir`: config.json, then the weights (index, single file, or every *.safetensors). */
export async function loadModelDir(dir: string): Promise<ModelDir> {
  const config = await readConfig(dir);
  const files = readWeightFiles(dir);
  return { dir, config, weights: checkWeights(dir, config, files) };
}

type Fail = Omit<ModelLoadErrorFields, 'dir'>;
const failIn = (dir: string) => (f: Fail) => new ModelLoadError({ dir, ...f });

async function readConfig(dir: string): Promise<ModelConfig> {
  const file = path.join(dir, CONFIG_FILE);
  const fail = (detail: string, hint: string, cause?: unknown) =>
    new ModelLoadError({ reason: 'config', dir, file, tensor: null, expected: null, actual: null, detail, hint, cause });
  let text: string;
  try {
    text = await fsp.readFile(file, 'utf8');
  } catch (err) {
    if (!fs.existsSync(dir)) throw fail(`model directory ${dir} does not exist`, 'check the path', err);
    throw fail(`cannot read config.json (${(err as Error).message})`, 'a Hugging Face model directory needs config.json beside its weights', err);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw fail(`config.json is not valid JSON (${(err as Error).message})`, 're-download or re-export the model', err);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw fail('config.json is not a JSON object', 're-download or re-export the model');
  return parseConfig(raw as Record<string, unknown>, file);
}

/** A tensor as read, with the file it came from (for messages). */
type Found = { t: StTensor; file: string };

function readWeightFiles(dir: string): Map<string, Found> {
  const found = new Map<string, Found>();
  if (fs.existsSync(path.join(dir, INDEX_FILE))) {
    const index = wrapSafetensors(dir, () => readSafetensorsIndex(dir));
    for (const [name, t] of index.tensors) found.set(name, { t, file: path.join(dir, index.weightMap.get(name)!) });
    return found;
  }
  const single = path.join(dir, SINGLE_FILE);
  const files = fs.existsSync(single) ? [single] : listSafetensors(dir);
  if (files.length === 0) {
    throw failIn(dir)({ reason: 'no-weights', file: null, tensor: null, expected: null, actual: null,
      detail: `no weights found: looked for ${INDEX_FILE}, then ${SINGLE_FILE}, then any *.safetensors`,
      hint: 'opd reads safetensors only; convert PyTorch .bin weights with transformers save_pretrained(safe_serialization=True)' });
  }
  for (const file of files) {
    for (const [name, t] of wrapSafetensors(dir, () => readSafetensors(file)).tensors) {
      const prev = found.get(name);
      if (prev) {
        throw failIn(dir)({ reason: 'duplicate-tensor', file, tensor: name, expected: null, actual: null,
          detail: `also present in ${prev.file}`, hint: `remove the stray file or add a ${INDEX_FILE} saying which file holds what` });
      }
      found.set(name, { t, file });
    }
  }
  return found;
}

function listSafetensors(dir: string): string[] {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch (err) {
    throw failIn(dir)({ reason: 'no-weights', file: null, tensor: null, expected: null, actual: null,
      detail: `cannot list the directory (${(err as Error).message})`, hint: 'check the path and its permissions', cause: err });
  }
  return names.filter((f) => f.endsWith('.safetensors')).sort().map((f) => path.join(dir, f));
}

/** Corrupt or truncated files surface as a ModelLoadError carrying the safetensors file and tensor. */
function wrapSafetensors<T>(dir: string, read: () => T): T {
  try {
    return read();
  } catch (err) {
    if (!(err instanceof SafetensorsError)) throw err;
    // The SafetensorsError message is "<file>: tensor '<t>': <detail>; <hint>": keep all but the prefix we repeat.
    const prefix = `${err.file}: ${err.tensor === null ? '' : `tensor '${err.tensor}': `}`;
    const detail = err.message.startsWith(prefix) ? err.message.slice(prefix.length) : err.message;
    throw failIn(dir)({ reason: 'safetensors', file: err.file, tensor: err.tensor, expected: null, actual: null, detail, hint: '', cause: err });
  }
}

/** Every tensor the config implies, present, float, the right shape and finite; nothing unexplained left over. */
function checkWeights(dir: string, config: ModelConfig, found: Map<string, Found>): Weights {
  const fail = failIn(dir);
  const weights: Weights = new Map();
  for (const [name, shape] of tensorShapes(config)) {
    const f = found.get(name);
    if (!f) throw missingTensor(fail, config, name, shape);
    checkTensor(fail, config, name, shape, f);
    weights.set(name, f.t.data as Float32Array);
  }
  for (const [name, f] of found) {
    if (weights.has(name) || IGNORED_RE.test(name)) continue;
    if (name === 'lm_head.weight' && config.tieWordEmbeddings) {
      checkTiedHead(fail, f, weights.get('model.embed_tokens.weight')!);
      continue;
    }
    throw fail({ reason: 'extra-tensor', file: f.file, tensor: name, expected: null, actual: fmtShape(f.t.shape),
      detail: `not part of a ${config.arch} model with this config.json`,
      hint: 'check that architectures, num_hidden_layers, attention_bias and tie_word_embeddings in config.json match the weights' });
  }
  for (const [name, data] of weights) checkFinite(fail, found.get(name)!.file, name, data, config.hiddenSize);
  return weights;
}

function missingTensor(fail: (f: Fail) => ModelLoadError, config: ModelConfig, name: string, shape: number[]): ModelLoadError {
  const hint = name === 'lm_head.weight'
    ? 'config.json says tie_word_embeddings is false; if the model ties its output to the embedding set it to true, otherwise the checkpoint is incomplete'
    : `the checkpoint is incomplete or its config.json does not describe it (${config.arch}, ${config.numLayers} layers); re-export it or fix config.json`;
  return fail({ reason: 'missing-tensor', file: null, tensor: name, expected: fmtShape(shape), actual: 'absent', detail: 'missing from the weights', hint });
}

function checkTensor(fail: (f: Fail) => ModelLoadError, config: ModelConfig, name: string, shape: number[], f: Found): void {
  const { dtype, shape: actual } = f.t;
  const base = { file: f.file, tensor: name };
  if (!FLOAT_DTYPES.has(dtype)) {
    throw fail({ ...base, reason: 'dtype', expected: 'F32, F16 or BF16', actual: dtype, detail: `stored as ${dtype}`,
      hint: 'convert the checkpoint to float32, float16 or bfloat16 and re-save it' });
  }
  const isVocab = name === 'model.embed_tokens.weight' || name === 'lm_head.weight';
  if (isVocab && actual.length === 2 && actual[1] === config.hiddenSize && actual[0] !== config.vocabSize) {
    throw fail({ ...base, reason: 'vocab', expected: fmtShape(shape), actual: fmtShape(actual),
      detail: `has ${actual[0]} rows but config.json vocab_size is ${config.vocabSize}`,
      hint: `set vocab_size in config.json to ${actual[0]}, the row count (opd never slices or pads an embedding)` });
  }
  if (actual.length !== shape.length || actual.some((d, i) => d !== shape[i])) {
    throw fail({ ...base, reason: 'shape', expected: fmtShape(shape), actual: fmtShape(actual), detail: 'has the wrong shape',
      hint: 'config.json does not describe these weights (check hidden_size, intermediate_size, heads, head_dim), or the file is from another model' });
  }
}

function checkTiedHead(fail: (f: Fail) => ModelLoadError, f: Found, embed: Float32Array): void {
  const head = f.t.data;
  if (head instanceof Float32Array && bytesEqual(head, embed)) return;
  throw fail({ reason: 'tied-lm-head', file: f.file, tensor: 'lm_head.weight', expected: 'a copy of model.embed_tokens.weight', actual: 'different values',
    detail: 'present although config.json sets tie_word_embeddings, and it differs from the embedding',
    hint: 'set tie_word_embeddings to false in config.json if the model has a separate output matrix' });
}

function checkFinite(fail: (f: Fail) => ModelLoadError, file: string, name: string, data: Float32Array, cols: number): void {
  for (let i = 0; i < data.length; i++) {
    const v = data[i]!;
    if (v - v === 0) continue; // false exactly for NaN and ±Infinity
    const where = data.length > cols && data.length % cols === 0 ? ` (row ${Math.floor(i / cols)}, column ${i % cols})` : '';
    throw fail({ reason: 'non-finite', file, tensor: name, expected: 'finite values', actual: String(v),
      detail: `holds ${v} at flat index ${i}${where}`, hint: 'the checkpoint is corrupt or training diverged; use an earlier checkpoint' });
  }
}

// ---- saving -----------------------------------------------------------------------------------

/**
 * Writes `m` as a Hugging Face model directory (created if missing): the weights as model.safetensors
 * or as shards + index when larger than maxShardBytes, config.json, and the tokenizer files of
 * `tokenizerFrom`. Weight files of an earlier save in `dir` that the new set does not use are removed.
 */
export async function saveModelDir(dir: string, m: { config: ModelConfig; weights: Weights }, opts: SaveOptions = {}): Promise<void> {
  const dtype = opts.dtype ?? 'F32';
  const maxShardBytes = opts.maxShardBytes ?? DEFAULT_MAX_SHARD_BYTES;
  if (!(Number.isSafeInteger(maxShardBytes) && maxShardBytes > 0)) throw new ModelSaveError(dir, null, `maxShardBytes must be a positive integer, got ${maxShardBytes}`);
  // Everything that can be refused is checked before the first byte is written.
  const tensors = orderedTensors(dir, m.config, m.weights, dtype);
  const raw = configForSave(dir, m.config, dtype);
  const tokenizerFiles = opts.tokenizerFrom === undefined ? [] : tokenizerSources(dir, opts.tokenizerFrom);
  await fsp.mkdir(dir, { recursive: true });
  await writeWeights(dir, tensors, maxShardBytes);
  await atomicWriteFile(path.join(dir, CONFIG_FILE), json(raw));
  for (const src of tokenizerFiles) await copyFile(src, path.join(dir, path.basename(src)));
}

/** The tensors to write in tensorShapes order (lm_head left out when tied), checked against the config. */
function orderedTensors(dir: string, config: ModelConfig, weights: Weights, dtype: WeightDtype): StWriteTensor[] {
  const shapes = tensorShapes(config);
  const expected = new Set(shapes.map(([name]) => name));
  for (const name of weights.keys()) {
    if (!expected.has(name)) throw new ModelSaveError(dir, name, `not part of this ${config.arch} config${name === 'lm_head.weight' ? ' (embeddings are tied)' : ''}; drop it or fix the config`);
  }
  return shapes.map(([name, shape]) => {
    const data = weights.get(name);
    if (!(data instanceof Float32Array)) throw new ModelSaveError(dir, name, 'missing from the weights (or not a Float32Array)');
    const numel = shape.reduce((a, b) => a * b, 1);
    if (data.length !== numel) throw new ModelSaveError(dir, name, `has ${data.length} values but shape ${fmtShape(shape)} needs ${numel}`);
    return { name, shape, data, dtype };
  });
}

/** The raw config with what transformers needs stated explicitly, re-parsed to prove it still describes these tensors. */
function configForSave(dir: string, config: ModelConfig, dtype: WeightDtype): Record<string, unknown> {
  const raw: Record<string, unknown> = { ...config.raw };
  raw.architectures ??= [ARCH_CLASS[config.arch]];
  raw.model_type ??= config.arch;
  raw.tie_word_embeddings = config.tieWordEmbeddings;
  raw.torch_dtype = TORCH_DTYPE[dtype];
  if ('dtype' in raw) raw.dtype = TORCH_DTYPE[dtype]; // the key's name from transformers 4.56 on
  const again = tensorShapes(parseConfig(raw, path.join(dir, CONFIG_FILE)));
  const want = tensorShapes(config);
  const diff = want.findIndex(([n, s], i) => again[i]?.[0] !== n || fmtShape(again[i]![1]) !== fmtShape(s));
  if (diff >= 0 || again.length !== want.length) {
    throw new ModelSaveError(dir, want[diff]?.[0] ?? null, 'config.raw no longer describes the parsed config (was a field changed without updating raw?)');
  }
  return raw;
}

/** One file, or shards filled greedily in tensor order with a total_size index, as transformers writes. */
async function writeWeights(dir: string, tensors: StWriteTensor[], maxShardBytes: number): Promise<void> {
  const shards = planShards(tensors, maxShardBytes);
  const meta = { format: 'pt' };
  if (shards.length === 1) {
    await writeSafetensors(path.join(dir, SINGLE_FILE), tensors, meta);
    return removeStale(dir, new Set([SINGLE_FILE]));
  }
  const name = (i: number) => `model-${pad5(i + 1)}-of-${pad5(shards.length)}.safetensors`;
  const weightMap: Record<string, string> = {};
  for (const [i, shard] of shards.entries()) {
    await writeSafetensors(path.join(dir, name(i)), shard, meta);
    for (const t of shard) weightMap[t.name] = name(i);
  }
  const total = tensors.reduce((s, t) => s + byteSize(t), 0);
  const sorted = Object.fromEntries(Object.entries(weightMap).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  await atomicWriteFile(path.join(dir, INDEX_FILE), json({ metadata: { total_size: total }, weight_map: sorted }));
  return removeStale(dir, new Set([INDEX_FILE, ...shards.map((_, i) => name(i))]));
}

function planShards(tensors: StWriteTensor[], maxBytes: number): StWriteTensor[][] {
  const shards: StWriteTensor[][] = [[]];
  let size = 0;
  for (const t of tensors) {
    const n = byteSize(t);
    // A tensor larger than the limit gets a shard of its own; tensors are never split.
    if (size > 0 && size + n > maxBytes) {
      shards.push([]);
      size = 0;
    }
    shards.at(-1)!.push(t);
    size += n;
  }
  return shards;
}

/** Removes weight files of an earlier save; the index goes first because loaders prefer it. */
async function removeStale(dir: string, keep: Set<string>): Promise<void> {
  const stale = (await fsp.readdir(dir)).filter((f) => !keep.has(f) && (f === SINGLE_FILE || f === INDEX_FILE || SHARD_RE.test(f)));
  stale.sort((a, b) => Number(b === INDEX_FILE) - Number(a === INDEX_FILE));
  for (const f of stale) await fsp.rm(path.join(dir, f), { force: true });
  if (stale.length > 0) await fsyncDir(dir);
}

/** The tokenizer files present in `from`; a directory with none of them is a mistake worth refusing. */
function tokenizerSources(dir: string, from: string): string[] {
  if (path.resolve(from) === path.resolve(dir)) return [];
  const present = TOKENIZER_FILES.map((f) => path.join(from, f)).filter((f) => fs.existsSync(f));
  if (present.length === 0) throw new ModelSaveError(dir, null, `tokenizerFrom ${from} holds none of ${TOKENIZER_FILES.join(', ')}`);
  return present;
}

async function copyFile(src: string, dst: string): Promise<void> {
  await atomicWriteFile(dst, new Uint8Array(await fsp.readFile(src)));
}

// ---- helpers ----------------------------------------------------------------------------------

/** Same names and bitwise-identical values (NaN payloads and -0 included); for tests and resume checks. */
export function weightsEqual(a: Weights, b: Weights): boolean {
  if (a.size !== b.size) return false;
  for (const [name, x] of a) {
    const y = b.get(name);
    if (y === undefined || !bytesEqual(x, y)) return false;
  }
  return true;
}

function bytesEqual(x: Float32Array, y: Float32Array): boolean {
  return x.length === y.length && Buffer.from(x.buffer, x.byteOffset, x.byteLength).equals(Buffer.from(y.buffer, y.byteOffset, y.byteLength));
}

const byteSize = (t: StWriteTensor) => t.data.length * ITEMSIZE[t.dtype as WeightDtype];
const fmtShape = (s: readonly number[]) => `[${s.join(', ')}]`;
const pad5 = (n: number) => String(n).padStart(5, '0');
const json = (v: unknown) => new TextEncoder().encode(JSON.stringify(v, null, 2) + '\n');
