// Supervised fine-tuning: masked next-token cross-entropy on completion tokens (TRL's
// prompt/completion format; the completion gets the tokenizer's EOS appended, as TRL does).
// Conversational data (TRL conversational prompt/completion, or a "messages" column whose final
// assistant turn is the completion; data/sources/conversation.ts) is rendered with the model's chat
// template: the prompt with the generation prompt, the completion as the template writes the
// assistant turn through its end of turn (data/chat.ts encodeAssistantReply). Loss stays on the
// completion tokens only. Plain-string records are tokenized exactly as before.
// One readable loop: shuffle (seeded) -> batch -> train step -> log -> save in HF layout.
// Deliberately simple: constant learning rate after a linear warm-up, no evaluation split.

import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Rng } from '../../engine/rng.ts';
import { writeFrozenBase } from '../../student/model/frozen.ts';
import { type LoraSpec, initLora, mergeLora, savePeftAdapter } from '../../student/model/lora.ts';
import { type TrainStepKind, createStudentTrainer } from '../../student/train/trainer.ts';
import type { RuntimeOptions } from '../../engine/runtime/session.ts';
import type { Tokenizer } from '../../data/tokenizer/types.ts';
import { encodeAssistantReply, encodePrompt, type PromptRenderOptions, usesTemplate } from '../../data/chat.ts';
import { loadPrompts } from '../../data/sources/index.ts';
import type { ChatMessage } from '../../data/tokenizer/types.ts';
import { loadTokenizer } from '../../data/tokenizer/hf.ts';
import { type ModelDir, type Weights, loadModelDir, saveModelDir } from '../../student/model/weights.ts';
import { packSftBatch, type SftExample } from '../../student/train/step.ts';

export interface SftOptions {
  steps: number;
  /** Peak learning rate. */
  lr: number;
  /** Linear warm-up steps before the constant rate. */
  warmup: number;
  batchSize: number;
  seed: number;
  weightDecay: number;
  maxGradNorm: number;
  runtime?: RuntimeOptions;
  /** fused, layered, or auto by model size (default auto). */
  trainStep?: TrainStepKind;
  /** Train LoRA adapters instead (the frozen base goes to `baseDir`, default a temp folder removed after); the result is the merged model. */
  lora?: { spec: LoraSpec; baseDir?: string };
  /** How prompts are rendered (data/chat.ts); default 'auto': conversational records use the template. */
  chat?: PromptRenderOptions;
  /** Where malformed records go (JSON lines with line/row and reason); default <out>/rejects.jsonl. */
  rejectsFile?: string;
  /** Loading fails when rejected / read records exceeds this; default 0.01. */
  maxRejectFraction?: number;
  /** Called every step with (step, loss); used for progress lines. */
  onStep?: (step: number, loss: number, skipped: boolean) => void;
}

export interface SftRecord {
  prompt: string;
  /** The prompt conversation of a conversational record (rendered with the template under `chat`). */
  messages?: ChatMessage[];
  /** The assistant's reply (plain text, no template tokens). */
  completion: string;
  where: string; // file:line, for errors
}

export function tokenizeSft(tok: Tokenizer, recs: readonly SftRecord[], maxLen: number, chat: PromptRenderOptions = {}): SftExample[] {
  const eos = tok.eosTokenIds[0];
  if (eos === undefined) throw new Error('sft: the tokenizer has no EOS token to end completions with');
  return recs.map((r) => {
    const templated = usesTemplate(r, chat);
    const promptIds = encodePrompt(tok, r, chat);
    const completionIds = templated ? encodeAssistantReply(tok, r, r.completion, chat) : [...tok.encode(r.completion, { addSpecialTokens: false }), eos];
    if (promptIds.length === 0) throw new Error(`${r.where}: the prompt encodes to no tokens`);
    if (promptIds.length + completionIds.length > maxLen)
      throw new Error(`${r.where}: ${promptIds.length + completionIds.length} tokens exceed the model's max_position_embeddings ${maxLen}; shorten or drop this record`);
    return { promptIds, completionIds };
  });
}

/** Train `model` on `examples`; returns the new weights and the per-step losses. */
export async function runSft(model: ModelDir, examples: readonly SftExample[], padId: number, o: SftOptions): Promise<{ weights: Weights; adapters?: Weights; losses: number[] }> {
  if (examples.length === 0) throw new Error('sft: no training examples');
  const c = model.config;
  const tempBase = o.lora && !o.lora.baseDir ? mkdtempSync(path.join(os.tmpdir(), 'opd-sft-lora-')) : null;
  const lora = o.lora ? { spec: o.lora.spec, base: await writeFrozenBase(o.lora.baseDir ?? tempBase!, c, model.weights) } : undefined;
  const init = lora ? initLora(c, lora.spec, o.seed) : model.weights;
  const trainer = await createStudentTrainer(c, Object.fromEntries(init), {
    objective: 'sft',
    weightDecay: o.weightDecay,
    adamw: { maxGradNorm: o.maxGradNorm },
    kind: o.trainStep,
    adopt: true, // the model's arrays become the trainer's: no second copy of the weights
    lora,
    runtime: o.runtime,
  });
  const rng = new Rng(o.seed);
  let order: number[] = [];
  const losses: number[] = [];
  try {
    for (let s = 1; s <= o.steps; s++) {
      const batch: SftExample[] = [];
      while (batch.length < o.batchSize) {
        if (order.length === 0) order = shuffled(examples.length, rng);
        batch.push(examples[order.pop()!]!);
      }
      const lr = o.lr * Math.min(1, s / Math.max(1, o.warmup));
      const r = await trainer.step(packSftBatch(batch, { padId }), lr);
      losses.push(r.loss);
      o.onStep?.(s, r.loss, r.skipped);
    }
    // the trainer's own buffers (host arrays that outlive release()): no copy of the weights at the end
    const params = new Map(Object.entries(trainer.paramViews()).map(([k, v]) => [k, v.data as Float32Array]));
    if (!lora) return { weights: params, losses };
    return { weights: mergeLora(c, model.weights, params, lora.spec), adapters: params, losses };
  } finally {
    await trainer.release();
    if (tempBase) rmSync(tempBase, { recursive: true, force: true });
  }
}

/**
 * `opd sft` as a function: train the model directory `model` on `data` — {"prompt","completion"}
 * records (strings, or TRL conversational lists) or a "messages" column, in JSONL, Parquet or Arrow;
 * malformed records go to `o.rejectsFile` (default <out>/rejects.jsonl, left out when there are
 * none) — and write the result to `out` (HF layout, tokenizer copied). The demo calls this too, so
 * its models are exactly what the printed `opd sft` commands produce.
 */
export async function sftModelDir(model: string, data: string, out: string, o: SftOptions, log: (m: string) => void = () => {}): Promise<{ losses: number[]; seconds: number }> {
  const [m, tok] = await Promise.all([loadModelDir(model), loadTokenizer(model)]);
  const rejectsFile = o.rejectsFile ?? path.join(out, 'rejects.jsonl');
  mkdirSync(path.dirname(rejectsFile), { recursive: true });
  const loaded = await loadPrompts(data, { requireAnswer: false, requireCompletion: true, chat: o.chat, rejectsFile, maxRejectFraction: o.maxRejectFraction, name: 'sft data' });
  if (loaded.rejects.length) log(loaded.summary);
  else if (!o.rejectsFile) rmSync(rejectsFile, { force: true }); // no rejects: keep the model directory free of an empty file
  const records = loaded.records.map((r, i) => ({ prompt: r.prompt, ...(r.messages ? { messages: r.messages } : {}), completion: loaded.completions![i]!, where: `${data} record ${r.id}` }));
  const examples = tokenizeSft(tok, records, m.config.maxPositionEmbeddings, o.chat);
  log(`sft: ${examples.length} examples, ${o.steps} steps, model ${model}`);
  const t0 = performance.now();
  const { weights, adapters, losses } = await runSft(m, examples, tok.padTokenId ?? 0, o);
  await saveModelDir(out, { config: m.config, weights }, { tokenizerFrom: model });
  if (adapters && o.lora) await savePeftAdapter(path.join(out, 'adapter'), m.config, o.lora.spec, adapters, model);
  const seconds = (performance.now() - t0) / 1000;
  log(`saved ${out}${adapters ? ` (merged; PEFT adapter in ${path.join(out, 'adapter')})` : ''} (final loss ${losses.at(-1)!.toFixed(4)}, ${seconds.toFixed(1)} s)`);
  return { losses, seconds };
}

/** Fisher–Yates permutation of 0..n-1 from `rng`. */
function shuffled(n: number, rng: Rng): number[] {
  const a = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}
