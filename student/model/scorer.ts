// Scores token sequences with a model: the log-prob of every token from a given start index on,
// optionally with the top-k alternatives at each position. Sequences are grouped by length into
// batches capped by a token budget, so padding waste stays small; results come back in input order.
// With `alone`, each sequence runs by itself (shape [1, its length]): its score then never depends on
// which other sequences share the call. Packed, it can differ in the last bit: ONNX Runtime's
// multi-threaded kernels split the work by the run's shape (measured: 13 of 29 log-probs of one
// sequence changed by 1 ulp between a run alone and a run beside 7 others, 2 threads).
// This is the core of `opd score --model` and of the local teacher.

import type { RuntimeOptions } from '../../engine/runtime/session.ts';
import type { ModelConfig } from './config.ts';
import { ModelSession, type WeightSource, packSequences, scalarF32 } from './runner.ts';
import { buildScoreGraph } from './score.ts';

export interface ScoreRequest {
  ids: readonly number[];
  /** First position to score (the completion start); must be ≥ 1, since nothing predicts token 0. */
  start: number;
}

export interface ScoreResult {
  /** log p(ids[t] | ids[<t]) for t = start .. len−1. */
  logprobs: number[];
  /** Per scored position, the k most likely ids and their log-probs (when topK > 0). */
  topIds?: number[][];
  topLogprobs?: number[][];
}

export interface ScorerOptions extends RuntimeOptions {
  topK?: number;
  /** Vocabulary rows per chunk of the log-softmax (memory vs speed). */
  chunk?: number;
  /** Max tokens (rows × padded length) per ONNX Runtime run. */
  batchTokens?: number;
  /** Logits are divided by this before the log-softmax (1 = plain scoring). */
  temperature?: number;
  /** Score over output rows [0, vocabLimit) only (padded vocabularies; see teacher/preflight). */
  vocabLimit?: number;
  /** One sequence per run, so a score does not depend on its neighbours (see the header); batchTokens is then unused. */
  alone?: boolean;
}

export class Scorer {
  private constructor(
    private readonly session: ModelSession,
    private readonly c: ModelConfig,
    private readonly opts: ScorerOptions,
  ) {}

  static async create(c: ModelConfig, weights: WeightSource, opts: ScorerOptions = {}): Promise<Scorer> {
    const g = buildScoreGraph(c, { chunk: opts.chunk, topK: opts.topK, vocabLimit: opts.vocabLimit });
    return new Scorer(await ModelSession.create(g, weights, opts), c, opts);
  }

  async score(reqs: readonly ScoreRequest[]): Promise<ScoreResult[]> {
    reqs.forEach((r, i) => {
      if (r.start < 1 || r.start > r.ids.length) throw new Error(`score: request ${i} has start ${r.start} outside 1..${r.ids.length}`);
      const limit = Math.min(this.c.vocabSize, this.opts.vocabLimit ?? Infinity);
      const bad = r.ids.find((t) => !Number.isInteger(t) || t < 0 || t >= limit);
      if (bad !== undefined) throw new Error(`score: request ${i} has token id ${bad} outside the vocabulary 0..${limit - 1}`);
      if (r.ids.length > this.c.maxPositionEmbeddings) throw new Error(`score: request ${i} has ${r.ids.length} tokens, more than max_position_embeddings ${this.c.maxPositionEmbeddings}`);
    });
    const order = reqs.map((_, i) => i).sort((a, b) => reqs[a]!.ids.length - reqs[b]!.ids.length);
    const out: ScoreResult[] = new Array(reqs.length);
    const budget = this.opts.batchTokens ?? 8192;
    for (let i = 0; i < order.length; ) {
      let j = i + 1;
      while (!this.opts.alone && j < order.length && (j - i + 1) * reqs[order[j]!]!.ids.length <= budget) j++;
      const group = order.slice(i, j);
      const results = await this.scoreBatch(group.map((k) => reqs[k]!));
      group.forEach((k, n) => (out[k] = results[n]!));
      i = j;
    }
    return out;
  }

  private async scoreBatch(reqs: readonly ScoreRequest[]): Promise<ScoreResult[]> {
    const packed = packSequences(reqs.map((r) => r.ids), 0, 'right');
    // Rows of one token have nothing to score; ORT's TopK aborts the process on an empty axis.
    if (packed.input_ids.dims[1]! < 2) return reqs.map(() => (this.opts.topK ? { logprobs: [], topIds: [], topLogprobs: [] } : { logprobs: [] }));
    const run = await this.session.run({
      input_ids: packed.input_ids,
      attention_mask: packed.attention_mask,
      position_ids: packed.position_ids,
      inv_temperature: scalarF32(1 / (this.opts.temperature ?? 1)),
    });
    const t = packed.input_ids.dims[1]!;
    const lp = run.logprobs!.data as Float32Array;
    const k = this.opts.topK ?? 0;
    const topIds = run.top_ids?.data as BigInt64Array | undefined;
    const topLp = run.top_logprobs?.data as Float32Array | undefined;
    return reqs.map((r, b) => {
      const res: ScoreResult = { logprobs: [] };
      if (k) [res.topIds, res.topLogprobs] = [[], []];
      for (let pos = r.start; pos < r.ids.length; pos++) {
        res.logprobs.push(lp[b * t + pos]!);
        if (k && topIds && topLp) {
          const at = (b * t + pos) * k;
          res.topIds!.push(Array.from(topIds.subarray(at, at + k), Number));
          res.topLogprobs!.push(Array.from(topLp.subarray(at, at + k)));
        }
      }
      return res;
    });
  }

  release(): Promise<void> {
    return this.session.release();
  }
}
