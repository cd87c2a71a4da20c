// Batched autoregressive generation with a KV cache: one prefill run over the left-padded prompts,
// then one decode run per new token, whose new K/V go into the host-side cache (cache.ts) that the
// next run reads.
//
// Contracts:
// - Prompts are never sliced: a prompt longer than max_position_embeddings − maxNewTokens (or empty,
//   or holding an id outside the vocabulary) is refused with a PromptError naming the row.
// - A row ends at its first stop token (kept in `tokens`, finishReason 'stop', truncated false) or
//   after maxNewTokens tokens without one ('length', truncated true). Finished rows keep feeding the
//   pad token, masked out, until every row has finished or the limit is reached.
// - logprobs[i] is the sampler's log-prob of tokens[i] (sampler.ts: full-vocabulary tempered
//   log-softmax, float64), one per completion token.
// - Randomness is one rng.uniform() per sampled token, rows in order, finished rows drawing nothing.
// - The cache lives on the host in slot buffers (cache.ts); each decode run returns only the new
//   token's K/V, so per-step copies and ORT's memory plan do not grow with the length.
// Leaves out: continuous batching (a finished row's batch slot is not refilled), speculative decoding.
// `greedyNoCache` is the slow reference: each step recomputes the whole sequence, one row at a time.

import type { Rng } from '../../engine/rng.ts';
import { type HostTensor, hostTensor } from '../../engine/runtime/host.ts';
import type { RuntimeOptions } from '../../engine/runtime/session.ts';
import type { ModelConfig } from '../model/config.ts';
import { ModelSession, type WeightSource, packSequences } from '../model/runner.ts';
import { KvCache } from './cache.ts';
import { buildDecodeGraph, buildPrefillGraph } from './graphs.ts';
import type { WeightDeclarer } from '../model/lm.ts';
import { type SamplingParams, argmax, checkSamplingParams, logSoftmaxAt, sampleToken } from './sampler.ts';

export interface GenerateOptions extends SamplingParams {
  /** Most tokens to generate per prompt (≥ 1). */
  maxNewTokens: number;
  /** Any of these ends a row (and is kept as its last token). */
  stopTokenIds: readonly number[];
  rng: Rng;
  /** Token fed in padding columns (masked out; any valid id). */
  padId: number;
}

export type FinishReason = 'stop' | 'length';

/** What the student generated after one prompt. */
export interface Completion {
  /** Completion tokens only, including the stop token if one was hit. */
  tokens: number[];
  /** The sampler's log-prob of each token (same length as tokens), nats. */
  logprobs: number[];
  /** Hit maxNewTokens without a stop token. */
  truncated: boolean;
  finishReason: FinishReason;
}

/** A prompt that cannot be generated from (too long, empty, bad ids); `row` is its index. */
export class PromptError extends Error {
  override name = 'PromptError';
  constructor(
    readonly row: number,
    detail: string,
  ) {
    super(`prompt ${row}: ${detail}`);
  }
}

export interface GeneratorOptions extends RuntimeOptions {
  /** KV-cache slots added per growth (cache.ts); default 128. Smaller wastes less attention per step, larger re-plans less. */
  cacheChunk?: number;
  /**
   * A model whose weights are not all fed (a LoRA student: frozen base in `dir`, adapters fed by the
   * WeightSource): how graphs declare them, and the folder their sessions are compiled into.
   */
  model?: { declare: WeightDeclarer; dir: string };
}

/** Wall-clock split of the last generate() call, for throughput metrics. */
export interface GenerateStats {
  prefillMs: number;
  /** Decode runs plus host-side sampling after the prefill. */
  decodeMs: number;
  /** Decode runs (each one token for every row of the batch, finished rows included). */
  decodeSteps: number;
}

interface Row {
  tokens: number[];
  logprobs: number[];
  finish: FinishReason | null;
}

export class Generator {
  /** Timing of the most recent generate(); null before the first. */
  lastStats: GenerateStats | null = null;

  private constructor(
    readonly config: ModelConfig,
    private readonly prefill: ModelSession,
    private readonly decode: ModelSession,
    private readonly cacheChunk: number,
  ) {}

  /** Compiles both graphs once; `weights` is read before every run, so updated weights are used. */
  static async create(c: ModelConfig, weights: WeightSource, opts: GeneratorOptions = {}): Promise<Generator> {
    const { cacheChunk = 128, model, ...runtime } = opts;
    if (!Number.isInteger(cacheChunk) || cacheChunk < 1) throw new RangeError(`Generator: cacheChunk must be an integer >= 1, got ${cacheChunk}`);
    const go = { weights: model?.declare };
    const ro = model ? { ...runtime, modelDir: model.dir, disablePrepacking: true } : runtime;
    const prefill = await ModelSession.create(buildPrefillGraph(c, go), weights, ro);
    const decode = await ModelSession.create(buildDecodeGraph(c, go), weights, ro);
    return new Generator(c, prefill, decode, cacheChunk);
  }

  async generate(prompts: readonly (readonly number[])[], o: GenerateOptions): Promise<Completion[]> {
    checkSamplingParams(o);
    this.checkRequest(prompts, o.maxNewTokens, o.stopTokenIds, o.padId);
    if (prompts.length === 0) return [];
    const packed = packSequences(prompts, o.padId, 'left');
    const t0 = performance.now();
    const first = await this.prefill.run({ input_ids: packed.input_ids, attention_mask: packed.attention_mask, position_ids: packed.position_ids });
    const t1 = performance.now();
    // Decode runs ≤ maxNewTokens − 1, each adding one slot after the prompt width.
    const limit = packed.input_ids.dims[1]! + o.maxNewTokens - 1;
    const cache = KvCache.fromPrefill(this.config, first, packed.attention_mask, limit, this.cacheChunk);
    const fetches = ['logits', ...cache.fetches()];
    const rows: Row[] = prompts.map(() => ({ tokens: [], logprobs: [], finish: null }));
    const stops = new Set(o.stopTokenIds);
    let logits = first.logits!; // [B, V]
    let decodeSteps = 0;
    for (let step = 0; ; step++) {
      this.sampleRows(rows, logits, o, stops);
      if (rows.every((r) => r.finish)) break; // every row stops or reaches maxNewTokens by itself
      const active = rows.map((r) => r.finish === null);
      const ids = rows.map((r, i) => (active[i] ? r.tokens[r.tokens.length - 1]! : o.padId));
      const positions = prompts.map((p) => p.length + step); // the sampled token's absolute position
      const out = await this.decode.run({ input_ids: column(ids), position_ids: column(positions), ...cache.feeds(active) }, fetches);
      cache.append(out, active);
      logits = out.logits!;
      decodeSteps++;
    }
    this.lastStats = { prefillMs: t1 - t0, decodeMs: performance.now() - t1, decodeSteps };
    return rows.map(toCompletion);
  }

  /** Reference path for tests: greedy, no cache, the full sequence recomputed at every step. */
  async greedyNoCache(prompts: readonly (readonly number[])[], o: { maxNewTokens: number; stopTokenIds: readonly number[] }): Promise<Completion[]> {
    this.checkRequest(prompts, o.maxNewTokens, o.stopTokenIds, 0);
    const stops = new Set(o.stopTokenIds);
    const done: Completion[] = [];
    for (const prompt of prompts) {
      const row: Row = { tokens: [], logprobs: [], finish: null };
      while (row.finish === null) {
        const packed = packSequences([[...prompt, ...row.tokens]], 0, 'left');
        const out = await this.prefill.run({ input_ids: packed.input_ids, attention_mask: packed.attention_mask, position_ids: packed.position_ids }, ['logits']);
        const logits = out.logits!.data as Float32Array; // [1, V]
        const token = argmax(logits);
        record(row, token, logSoftmaxAt(logits, 1, token), stops, o.maxNewTokens);
      }
      done.push(toCompletion(row));
    }
    return done;
  }

  /** Stop ORT profiling (RuntimeOptions.profileFile) of both sessions; the trace files' paths. */
  endProfiling(): { prefill: string | null; decode: string | null } {
    return { prefill: this.prefill.session.endProfiling(), decode: this.decode.session.endProfiling() };
  }

  async release(): Promise<void> {
    await this.prefill.release();
    await this.decode.release();
  }

  /** One token for every unfinished row from its logits row; logits [B, V]. */
  private sampleRows(rows: Row[], logits: HostTensor, o: GenerateOptions, stops: ReadonlySet<number>): void {
    const v = this.config.vocabSize;
    const data = logits.data as Float32Array;
    rows.forEach((r, i) => {
      if (r.finish) return;
      const s = sampleToken(data.subarray(i * v, (i + 1) * v), o, o.rng);
      record(r, s.token, s.logprob, stops, o.maxNewTokens);
    });
  }

  /** Refuse, before any run, what would otherwise fail deep inside ORT or be silently wrong. */
  private checkRequest(prompts: readonly (readonly number[])[], maxNew: number, stopIds: readonly number[], padId: number): void {
    const c = this.config;
    if (!Number.isInteger(maxNew) || maxNew < 1) throw new RangeError(`generate: maxNewTokens must be an integer >= 1, got ${maxNew}`);
    const isId = (t: number) => Number.isInteger(t) && t >= 0 && t < c.vocabSize;
    if (!isId(padId)) throw new RangeError(`generate: padId ${padId} is not a token id of the vocabulary (0..${c.vocabSize - 1})`);
    const badStop = stopIds.find((t) => !isId(t));
    if (badStop !== undefined) throw new RangeError(`generate: stop token ${badStop} is not a token id of the vocabulary (0..${c.vocabSize - 1})`);
    const limit = c.maxPositionEmbeddings - maxNew;
    prompts.forEach((p, i) => {
      if (p.length === 0) throw new PromptError(i, 'is empty; generation needs at least one token to condition on');
      if (p.length > limit)
        throw new PromptError(
          i,
          `has ${p.length} tokens, more than ${limit} = max_position_embeddings ${c.maxPositionEmbeddings} − maxNewTokens ${maxNew}; ` +
            'prompts are never sliced: filter or shorten it, or lower maxNewTokens',
        );
      const bad = p.findIndex((t) => !isId(t));
      if (bad >= 0) throw new PromptError(i, `token ${bad} is ${p[bad]}, not an id of the vocabulary (0..${c.vocabSize - 1})`);
    });
  }
}

/** Append one token to a row and decide whether the row has finished. */
function record(r: Row, token: number, logprob: number, stops: ReadonlySet<number>, maxNew: number): void {
  r.tokens.push(token);
  r.logprobs.push(logprob);
  if (stops.has(token)) r.finish = 'stop';
  else if (r.tokens.length >= maxNew) r.finish = 'length';
}

function toCompletion(r: Row): Completion {
  const finishReason = r.finish ?? 'length';
  return { tokens: r.tokens, logprobs: r.logprobs, truncated: finishReason === 'length', finishReason };
}

/** One int64 column [B, 1]. */
function column(values: readonly number[]): HostTensor {
  return hostTensor('int64', [values.length, 1], BigInt64Array.from(values, (v) => BigInt(v)));
}

/** Tokens that end a completion: the tokenizer's EOS ids and the model config's, deduplicated. */
export function stopTokenIds(tok: { eosTokenIds: readonly number[] }, c: { eosTokenIds: readonly number[] }): number[] {
  return [...new Set([...tok.eosTokenIds, ...c.eosTokenIds])];
}
