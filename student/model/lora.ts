// LoRA adapters (Hu et al. 2021), laid out and named as PEFT does, so what opd trains loads in PEFT:
//
//   W' = W + s·B·A,   s = α / r,   A ∈ R^{r×in} ~ U(−1/√in, 1/√in) (PEFT's kaiming_uniform(a=√5)),
//   B ∈ R^{out×r} = 0, so the adapted model starts equal to the base.
//
// Adapter tensors carry the HF module path: `model.layers.<i>.<self_attn|mlp>.<proj>.lora_A.weight`
// ([r, in]) and `.lora_B.weight` ([out, r]); PEFT's files prefix them with `base_model.model.`.
// The model code (lm.ts) adds s·(x·Aᵀ)·Bᵀ to a projection whenever its adapters are in the params.
// Leaves out: dropout on the adapter input (PEFT's lora_dropout; 0 here), rsLoRA / DoRA, biases.

import { mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { atomicWriteFile } from '../../engine/io/atomic.ts';
import { readSafetensors, writeSafetensors } from '../../engine/io/safetensors.ts';
import { Rng } from '../../engine/rng.ts';
import { type ModelConfig, parseConfig } from './config.ts';
import type { Weights } from './weights.ts';

export const LORA_TARGETS = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] as const;
export type LoraTarget = (typeof LORA_TARGETS)[number];

export interface LoraSpec {
  /** r: the adapters' inner dimension. */
  rank: number;
  /** α: the update is scaled by α / r. */
  alpha: number;
  /** Which projections get adapters (every layer). */
  targets: readonly LoraTarget[];
}

const MODULE: Record<LoraTarget, 'self_attn' | 'mlp'> = {
  q_proj: 'self_attn',
  k_proj: 'self_attn',
  v_proj: 'self_attn',
  o_proj: 'self_attn',
  gate_proj: 'mlp',
  up_proj: 'mlp',
  down_proj: 'mlp',
};

export const PEFT_PREFIX = 'base_model.model.';

export function loraScale(spec: LoraSpec): number {
  return spec.alpha / spec.rank;
}

export function checkLoraSpec(spec: LoraSpec, where = 'lora'): void {
  if (!Number.isInteger(spec.rank) || spec.rank < 1) throw new Error(`${where}.rank must be an integer >= 1, got ${spec.rank}`);
  if (!(spec.alpha > 0)) throw new Error(`${where}.alpha must be > 0, got ${spec.alpha}`);
  if (spec.targets.length === 0) throw new Error(`${where}.targets is empty; choose from ${LORA_TARGETS.join(', ')}`);
  for (const t of spec.targets) if (!LORA_TARGETS.includes(t)) throw new Error(`${where}.targets: unknown projection "${t}"; choose from ${LORA_TARGETS.join(', ')}`);
}

/** [in, out] of a target projection. */
function projDims(c: ModelConfig, t: LoraTarget): [number, number] {
  const [D, F, q, kv] = [c.hiddenSize, c.intermediateSize, c.numHeads * c.headDim, c.numKvHeads * c.headDim];
  const dims: Record<LoraTarget, [number, number]> = { q_proj: [D, q], k_proj: [D, kv], v_proj: [D, kv], o_proj: [q, D], gate_proj: [D, F], up_proj: [D, F], down_proj: [F, D] };
  return dims[t];
}

/** The base projection an adapter pair belongs to, e.g. `model.layers.0.self_attn.q_proj`. */
export function loraModules(c: ModelConfig, spec: LoraSpec): Array<{ module: string; target: LoraTarget; in: number; out: number }> {
  const out: Array<{ module: string; target: LoraTarget; in: number; out: number }> = [];
  for (let i = 0; i < c.numLayers; i++) {
    for (const t of LORA_TARGETS) {
      if (!spec.targets.includes(t)) continue;
      const [inDim, outDim] = projDims(c, t);
      out.push({ module: `model.layers.${i}.${MODULE[t]}.${t}`, target: t, in: inDim, out: outDim });
    }
  }
  return out;
}

/** Every adapter tensor with its shape, in a stable order (A then B per module). */
export function loraShapes(c: ModelConfig, spec: LoraSpec): Array<[string, number[]]> {
  return loraModules(c, spec).flatMap((m): Array<[string, number[]]> => [
    [`${m.module}.lora_A.weight`, [spec.rank, m.in]],
    [`${m.module}.lora_B.weight`, [m.out, spec.rank]],
  ]);
}

/** Fresh adapters: A uniform in ±1/√in from a seeded stream, B zero (the model starts at the base). */
export function initLora(c: ModelConfig, spec: LoraSpec, seed: number): Weights {
  checkLoraSpec(spec);
  const rng = new Rng(seed);
  const w: Weights = new Map();
  for (const m of loraModules(c, spec)) {
    const bound = 1 / Math.sqrt(m.in);
    w.set(`${m.module}.lora_A.weight`, Float32Array.from({ length: spec.rank * m.in }, () => (2 * rng.uniform() - 1) * bound));
    w.set(`${m.module}.lora_B.weight`, new Float32Array(m.out * spec.rank));
  }
  return w;
}

/** The merged weights: W + s·B·A for every adapted projection (new arrays); other tensors shared. */
export function mergeLora(c: ModelConfig, base: Weights, adapters: Weights, spec: LoraSpec): Weights {
  const s = loraScale(spec);
  const merged: Weights = new Map(base);
  for (const m of loraModules(c, spec)) {
    const W = base.get(`${m.module}.weight`)!;
    const A = adapters.get(`${m.module}.lora_A.weight`)!;
    const B = adapters.get(`${m.module}.lora_B.weight`)!;
    const out = Float32Array.from(W);
    for (let o = 0; o < m.out; o++) {
      for (let k = 0; k < spec.rank; k++) {
        const b = s * B[o * spec.rank + k]!;
        if (b === 0) continue;
        const row = o * m.in;
        const arow = k * m.in;
        for (let i = 0; i < m.in; i++) out[row + i]! += b * A[arow + i]!;
      }
    }
    merged.set(`${m.module}.weight`, out);
  }
  return merged;
}

/** PEFT's adapter_config.json for `spec` (the fields PEFT 0.x reads for a LoRA causal LM). */
export function peftConfig(spec: LoraSpec, baseModel: string): Record<string, unknown> {
  return {
    peft_type: 'LORA',
    task_type: 'CAUSAL_LM',
    base_model_name_or_path: baseModel,
    r: spec.rank,
    lora_alpha: spec.alpha,
    target_modules: [...spec.targets],
    lora_dropout: 0,
    bias: 'none',
    fan_in_fan_out: false,
    inference_mode: true,
    init_lora_weights: true,
    use_rslora: false,
    use_dora: false,
    modules_to_save: null,
    layers_to_transform: null,
    layers_pattern: null,
    rank_pattern: {},
    alpha_pattern: {},
    revision: null,
  };
}

/**
 * A PEFT adapter directory: adapter_config.json + adapter_model.safetensors (PEFT's names); with
 * `withBaseConfig`, also the base's config.json, so the directory describes itself (checkpoints:
 * loadAdapterDir reads it back without the base model).
 */
export async function savePeftAdapter(dir: string, c: ModelConfig, spec: LoraSpec, adapters: Weights, baseModel: string, o: { withBaseConfig?: boolean } = {}): Promise<void> {
  mkdirSync(dir, { recursive: true });
  const tensors = loraShapes(c, spec).map(([name, shape]) => {
    const data = adapters.get(name);
    if (!data) throw new Error(`savePeftAdapter: no adapter tensor "${name}"`);
    return { name: PEFT_PREFIX + name, dtype: 'F32' as const, shape, data };
  });
  await writeSafetensors(path.join(dir, 'adapter_model.safetensors'), tensors, { format: 'pt' });
  await atomicWriteFile(path.join(dir, 'adapter_config.json'), Buffer.from(JSON.stringify(peftConfig(spec, baseModel), null, 2) + '\n'));
  if (o.withBaseConfig) await atomicWriteFile(path.join(dir, 'config.json'), Buffer.from(JSON.stringify(c.raw, null, 1) + '\n'));
}

/** A JSON file of an adapter directory; missing or not JSON is an error naming the file, never a bare ENOENT. */
function readJsonFile(file: string, what: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    const missing = (e as NodeJS.ErrnoException).code === 'ENOENT';
    throw new Error(`${file}: ${missing ? `missing (${what}); the adapter directory is incomplete: write it again, or point to a complete one` : `cannot read ${what} (${(e as Error).message})`}`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new Error(`${file}: ${what} is not valid JSON (${(e as Error).message}); write the adapter again`);
  }
}

/** An adapter directory written with `withBaseConfig`: the base's config and the adapters. */
export function loadAdapterDir(dir: string): { config: ModelConfig; weights: Weights } {
  const file = path.join(dir, 'config.json');
  const config = parseConfig(readJsonFile(file, 'the base model config opd writes beside an adapter') as Record<string, unknown>, file);
  return { config, weights: loadPeftAdapter(dir, config).adapters };
}

/** Read a PEFT adapter directory back: the spec and the adapters under opd's (unprefixed) names. */
export function loadPeftAdapter(dir: string, c: ModelConfig): { spec: LoraSpec; adapters: Weights } {
  const cfgFile = path.join(dir, 'adapter_config.json');
  const raw = readJsonFile(cfgFile, 'the PEFT adapter config') as Record<string, unknown>;
  if (raw.peft_type !== 'LORA') throw new Error(`${cfgFile}: peft_type is ${JSON.stringify(raw.peft_type)}, opd reads LORA adapters only`);
  const spec: LoraSpec = { rank: Number(raw.r), alpha: Number(raw.lora_alpha), targets: raw.target_modules as LoraTarget[] };
  checkLoraSpec(spec, cfgFile);
  const st = readSafetensors(path.join(dir, 'adapter_model.safetensors'));
  const adapters: Weights = new Map();
  for (const [name, shape] of loraShapes(c, spec)) {
    const t = st.tensors.get(PEFT_PREFIX + name);
    if (!t) throw new Error(`${dir}: adapter_model.safetensors has no "${PEFT_PREFIX + name}" (config: r ${spec.rank}, targets ${spec.targets.join(', ')})`);
    if (t.shape.join() !== shape.join() || !(t.data instanceof Float32Array)) throw new Error(`${dir}: adapter "${PEFT_PREFIX + name}" is ${t.dtype} [${t.shape}], opd needs F32 [${shape}]`);
    adapters.set(name, t.data);
  }
  return { spec, adapters };
}
