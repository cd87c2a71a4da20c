// The scoring graph: per-token log-probs of given token sequences, position-aligned.
//
// Inputs: every weight (HF names), input_ids [B, T], attention_mask [B, T] (0 = padding),
// position_ids [B, T], inv_temperature [] (1/τ; 1 for plain scoring). Outputs: logprobs [B, T]
// with logprobs[b, t] = log p(ids[b, t] | ids[b, <t]) for t ≥ 1 and 0 at t = 0 (nothing predicts
// the first token); with top-k, top_ids / top_logprobs [B, T, k] aligned the same way (row 0 zero).
// The same alignment is used by the train step, so a token's score means the same thing everywhere.

import { type DType, Graph, type Tensor, dimAdd, gather, mul, pad, reduceSum, slice, sub, unsqueeze } from '../../engine/index.ts';
import type { ModelConfig } from './config.ts';
import { type Params, attentionBias, declareWeights, decoder, lmHead } from './lm.ts';
import { type LogprobOptions, tokenLogprobsChunked } from './logprobs.ts';

export interface SequenceInputs {
  ids: Tensor;
  mask: Tensor;
  positions: Tensor;
  invTemp: Tensor;
}

export function sequenceInputs(g: Graph, dtype: DType = 'float32'): SequenceInputs {
  return {
    ids: g.input('input_ids', ['B', 'T'], 'int64'),
    mask: g.input('attention_mask', ['B', 'T'], 'int64'),
    positions: g.input('position_ids', ['B', 'T'], 'int64'),
    invTemp: g.input('inv_temperature', [], dtype),
  };
}

/**
 * Position-aligned log-probs [B, T] of `ids` under the model (see the file header). With `at`
 * ([B, T, K] int64 ids, aligned the same way: at[b, t] are candidates for token t), also the
 * log-probs of those ids, `atLogprobs` [B, T, K] (differentiable; the train step's top-k divergences).
 */
export function alignedLogprobs(c: ModelConfig, p: Params, x: SequenceInputs, opts: Omit<LogprobOptions, 'invTemp'> & { at?: Tensor } = {}) {
  const dtype = p['model.embed_tokens.weight']!.dtype;
  const t = x.ids.shape[1]!;
  const { hidden } = decoder(c, p, { ids: x.ids, positions: x.positions, bias: attentionBias(x.mask, t, t, dtype) });
  const tm1 = dimAdd(t, -1);
  const prev = slice(hidden, [0], [tm1], [1]); // [B, T-1, D]: the state before each next token
  const next = slice(x.ids, [1], [t], [1]); // [B, T-1]
  const head = lmHead(c, p);
  const lp = tokenLogprobsChunked(prev, head, next, { ...opts, invTemp: x.invTemp });
  const front = (y: Tensor) => pad(y, y.rank === 2 ? [0, 1, 0, 0] : [0, 1, 0, 0, 0, 0]); // zero row at t = 0
  let atLogprobs: Tensor | undefined;
  if (opts.at) {
    // z at the given ids: the hidden state dotted with the gathered head rows, then − lse
    const rows = gather(head, slice(opts.at, [1], [t], [1])); // [B, T-1, K, D]
    const z = mul(reduceSum(mul(unsqueeze(prev, 2), rows), -1, false), x.invTemp); // [B, T-1, K]
    atLogprobs = front(sub(z, unsqueeze(lp.lse, -1)));
  }
  return {
    logprobs: front(lp.logprobs),
    topIds: lp.topIds && front(lp.topIds),
    topLogprobs: lp.topLogprobs && front(lp.topLogprobs),
    atLogprobs,
    // what a full-vocabulary divergence needs (student/train/divergences.ts): the states before each next token, unaligned
    prev,
    head,
    lse: lp.lse,
  };
}

export function buildScoreGraph(c: ModelConfig, opts: { chunk?: number; topK?: number; vocabLimit?: number; dtype?: DType } = {}): Graph {
  const g = new Graph('score');
  const dtype = opts.dtype ?? 'float32';
  const p = declareWeights(g, c, { trainable: false, dtype });
  const out = alignedLogprobs(c, p, sequenceInputs(g, dtype), opts);
  g.output('logprobs', out.logprobs);
  if (out.topIds && out.topLogprobs) {
    g.output('top_ids', out.topIds);
    g.output('top_logprobs', out.topLogprobs);
  }
  return g;
}
