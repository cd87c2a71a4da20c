// One phase of `npm run bench -- scale`, in its own process so its peak RSS (VmHWM) is its own:
//   node --import tsx bench/scale-child.ts <phase> <json args>
// Prints one JSON line. Phases: prepare (write the 0.6B model dir), full (layered full fine-tuning),
// lora (rank-r adapters on the frozen base), decode (KV-cache sampling), teacher (1.7B scoring).
// Weights are a fast uniform fill with the init's std (timing and memory do not depend on values).

import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Rng } from '../engine/rng.ts';
import { boundaryBytes, collectGarbage } from '../engine/runtime/session.ts';
import { loadTokenizer } from '../data/tokenizer/hf.ts';
import { Generator } from '../student/generate/generate.ts';
import { type ModelConfig, paramCount, parseConfig, tensorShapes } from '../student/model/config.ts';
import { writeFrozenBase } from '../student/model/frozen.ts';
import { LORA_TARGETS, initLora, loraShapes } from '../student/model/lora.ts';
import { weightFeeds } from '../student/model/runner.ts';
import { Scorer } from '../student/model/scorer.ts';
import { type Weights, loadModelDir, saveModelDir } from '../student/model/weights.ts';
import { type PolicyRollout, packPolicyBatch } from '../student/train/batch.ts';
import { createStudentTrainer } from '../student/train/trainer.ts';

const [phase, rawArgs] = process.argv.slice(2);
/** RSS once every module (onnxruntime included) is loaded, before any weight: the process's own baseline. */
const baselineGb = Number(/VmRSS:\s+(\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))![1]) / 1e6;
const args = JSON.parse(rawArgs ?? '{}') as Record<string, unknown>;
const rssGb = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))![1]) / 1e6;
/** Resident anonymous memory (heap, ORT arenas) and file-backed memory (mapped initializers), GB. */
const residentGb = () => {
  const s = readFileSync('/proc/self/status', 'utf8');
  const g = (k: string) => Number(new RegExp(`${k}:\\s+(\\d+)`).exec(s)![1]) / 1e6;
  return { anon: g('RssAnon'), file: g('RssFile') };
};
const hwmGb = () => Number(/VmHWM:\s+(\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))![1]) / 1e6;
const now = () => performance.now() / 1e3;
const threads = args.threads as number | undefined;

/** Weights with the HF init's scale: uniform ±0.02·√3 for matrices, 1 for norms, 0 for biases. */
export function fastWeights(c: ModelConfig, seed = 0): Weights {
  let x = (seed * 2654435761 + 1) >>> 0;
  const a = 0.02 * Math.sqrt(3);
  const w: Weights = new Map();
  for (const [name, shape] of tensorShapes(c)) {
    const n = shape.reduce((p, q) => p * q, 1);
    const t = new Float32Array(n);
    if (name.includes('norm')) t.fill(1);
    else if (!name.endsWith('.bias'))
      for (let i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >>> 17;
        x ^= x << 5;
        t[i] = ((x >>> 0) / 4294967296 - 0.5) * 2 * a;
      }
    w.set(name, t);
  }
  return w;
}

/** Rollouts whose prompts are real text through the real tokenizer, completions sampled ids. */
async function rollouts(c: ModelConfig, tokDir: string, n: number, promptLen: number, completionLen: number): Promise<PolicyRollout[]> {
  const tok = await loadTokenizer(tokDir);
  const text = 'Question: a train leaves at 9:40 and arrives at 13:05. How long is the trip, in minutes? Think step by step and give the answer at the end.';
  const ids = tok.encode(text, { addSpecialTokens: false });
  const rng = new Rng(1);
  return Array.from({ length: n }, (_, i) => ({
    promptIds: Array.from({ length: promptLen }, (_, j) => ids[(i + j) % ids.length]!),
    completionIds: Array.from({ length: completionLen }, () => rng.int(Math.min(c.vocabSize, 150000))),
    advantages: Array.from({ length: completionLen }, () => rng.normal()),
    samplerLogprobs: Array.from({ length: completionLen }, () => -11.9 + 0.1 * rng.normal()),
  }));
}

async function trainPhase(lora: boolean) {
  const c = parseConfig(args.config as Record<string, unknown>);
  const rows = args.rows as number, promptLen = args.promptLen as number, completionLen = args.completionLen as number;
  const feeds = packPolicyBatch(await rollouts(c, args.tokenizer as string, rows, promptLen, completionLen), { padId: 0 });
  const withDataGb = rssGb(); // process + tokenizer + batch, before the weights
  const t0 = now();
  const dir = args.modelDir as string | undefined;
  let base: Weights | null = dir ? (await loadModelDir(dir)).weights : fastWeights(c);
  const loadS = now() - t0;
  const spec = { rank: args.rank as number, alpha: 2 * (args.rank as number), targets: [...LORA_TARGETS] };
  const baseDir = lora ? mkdtempSync(join(tmpdir(), 'opd-bench-lora-')) : null;
  const frozen = lora ? await writeFrozenBase(baseDir!, c, base!) : null;
  const init = lora ? initLora(c, spec, 0) : base!;
  if (lora) {
    base = null; // the frozen file now holds the base: JS keeps only the adapters
    collectGarbage();
  }
  const t1 = now();
  const trainer = await createStudentTrainer(c, Object.fromEntries(init), { objective: 'policy', loss: {}, adamw: { maxGradNorm: 1 }, kind: 'layered', adopt: true, runtime: { threads }, ...(lora ? { lora: { spec, base: frozen! } } : {}) });
  const compileS = now() - t1;
  const times: number[] = [];
  const resident: Array<{ anon: number; file: number }> = [residentGb()];
  let bytes = 0;
  for (let i = 0; i < (args.steps as number); i++) {
    const b0 = boundaryBytes.in + boundaryBytes.out;
    const s0 = now();
    await trainer.step(feeds, 1e-5);
    times.push(now() - s0);
    bytes = boundaryBytes.in + boundaryBytes.out - b0;
    resident.push(residentGb());
  }
  await trainer.release();
  if (baseDir) rmSync(baseDir, { recursive: true, force: true });
  const tokens = rows * (promptLen + completionLen);
  const steady = times.slice(1);
  const stepS = steady.reduce((p, q) => p + q, 0) / steady.length;
  const n = paramCount(c);
  const trainable = lora ? loraShapes(c, spec).reduce((s, [, sh]) => s + sh[0]! * sh[1]!, 0) : n;
  // model FLOPs: full = 6·N per token (forward 2N, backward 4N); LoRA = 4·N (no base weight gradients) + 6·N_adapters
  const flops = (lora ? 4 * n + 6 * trainable : 6 * n) * tokens;
  return {
    params: n, trainable_params: trainable, tokens_per_step: tokens, load_s: loadS, compile_s: compileS, first_step_s: times[0],
    step_s: stepS, tokens_per_s: tokens / stepS, flops_per_step: flops, boundary_bytes_per_step: bytes,
    resident_after_create_and_each_step: resident, peak_rss_gb: hwmGb(), baseline_rss_gb: baselineGb, baseline_with_data_gb: withDataGb, floor_gb: (16 * n) / 1e9,
    ...(lora ? {} : { rss_over_floor: hwmGb() / ((16 * n) / 1e9), rss_over_floor_above_baseline: (hwmGb() - withDataGb) / ((16 * n) / 1e9) }),
  };
}

async function decodePhase() {
  const c = parseConfig(args.config as Record<string, unknown>);
  const w = fastWeights(c);
  const feeds = weightFeeds(c, w);
  const gen = await Generator.create(c, () => feeds, { threads });
  const out: Record<string, number> = {};
  for (const b of args.batches as number[]) {
    const prompts = Array.from({ length: b }, (_, i) => Array.from({ length: 16 }, (_, j) => 100 + i + j));
    const o = { maxNewTokens: args.newTokens as number, stopTokenIds: [], rng: new Rng(0), padId: 0, temperature: 1 };
    await gen.generate(prompts, { ...o, maxNewTokens: 4 }); // warm-up
    await gen.generate(prompts, o);
    const s = gen.lastStats!;
    out[`decode_tokens_per_s_b${b}`] = (b * s.decodeSteps) / (s.decodeMs / 1e3);
  }
  return { ...out, peak_rss_gb: hwmGb() };
}

async function teacherPhase() {
  const c = parseConfig(args.config as Record<string, unknown>);
  const w = fastWeights(c, 1);
  const feeds = weightFeeds(c, w);
  const scorer = await Scorer.create(c, () => feeds, { threads });
  const [n, len] = [args.rows as number, args.len as number];
  const reqs = Array.from({ length: n }, (_, i) => ({ ids: Array.from({ length: len }, (_, j) => (i * 31 + j * 7) % 150000), start: 16 }));
  await scorer.score(reqs.slice(0, 1));
  const t0 = now();
  await scorer.score(reqs);
  const s = now() - t0;
  return { teacher_params: paramCount(c), teacher_tokens: n * len, teacher_score_s: s, teacher_score_tokens_per_s: (n * len) / s, peak_rss_gb: hwmGb() };
}

/** The 0.6B model directory on disk (for load timing), with the real Qwen3 tokenizer files. */
async function preparePhase() {
  const c = parseConfig(args.config as Record<string, unknown>);
  const dir = args.modelDir as string;
  mkdirSync(dir, { recursive: true });
  await saveModelDir(dir, { config: c, weights: fastWeights(c) });
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) cpSync(join(args.tokenizer as string, f), join(dir, f));
  writeFileSync(join(dir, 'generation_config.json'), JSON.stringify({ eos_token_id: [151645, 151643] }));
  return { model_dir: dir };
}

const phases: Record<string, () => Promise<Record<string, unknown>>> = {
  prepare: preparePhase,
  full: () => trainPhase(false),
  lora: () => trainPhase(true),
  decode: decodePhase,
  teacher: teacherPhase,
};
const run = phases[phase ?? ''];
if (!run) throw new Error(`scale-child: unknown phase "${phase}"; choose from ${Object.keys(phases).join(', ')}`);
console.log(JSON.stringify(await run()));
