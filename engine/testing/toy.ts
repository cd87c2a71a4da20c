// Tiny models for the engine's own tests, demo and benchmark: a two-layer MLP classifier and a
// pre-norm causal transformer block (RMSNorm, rotary attention with grouped KV heads, SwiGLU).
// The real language model lives in student/model; these exist so the engine is proven on its own.

import type { Dim, Graph, Tensor } from '../index.ts';
import { add, flattenRows, gather, matmul, mul, neg, reduceMean, reshape, sub, tanh, transpose, unsqueeze } from '../index.ts';
import { applyRope, attention, causalBias, linear, maskedCrossEntropy, rmsNorm, ropeTables, swiglu, tokenLogprobs } from '../nn/layers.ts';
import { type Rng, normalArray } from '../rng.ts';
import { param } from '../train/graph.ts';

export type Init = Record<string, Float32Array>;

/** Two-layer tanh MLP with softmax cross-entropy.   x [N, din], y [N] int64 */
export function mlpClassifier(g: Graph, din: number, hidden: number, classes: number) {
  const w1 = param(g, 'w1', [hidden, din], { weightDecay: 0.01 });
  const b1 = param(g, 'b1', [hidden]);
  const w2 = param(g, 'w2', [classes, hidden], { weightDecay: 0.01 });
  const b2 = param(g, 'b2', [classes]);
  const x = g.input('x', ['N', din]);
  const y = g.input('y', ['N'], 'int64');
  const logits = linear(tanh(linear(x, w1, b1)), w2, b2); // [N, C]
  const nll = neg(tokenLogprobs(logits, y)); // [N]
  const loss = reduceMean(nll, 0);
  const init = (rng: Rng): Init => ({
    w1: normalArray(rng, hidden * din, 1 / Math.sqrt(din)),
    b1: new Float32Array(hidden),
    w2: normalArray(rng, classes * hidden, 1 / Math.sqrt(hidden)),
    b2: new Float32Array(classes),
  });
  return { loss, logits, init };
}

export interface BlockConfig {
  dModel: number;
  heads: number;
  kvHeads: number;
  ffn: number;
  ropeTheta: number;
  eps: number;
}

/** Parameter names and shapes of one block, HF-style (`<prefix>.self_attn.q_proj.weight`, ...). */
export function blockParams(prefix: string, c: BlockConfig): Array<[string, number[], number]> {
  const dh = c.dModel / c.heads;
  return [
    [`${prefix}.input_layernorm.weight`, [c.dModel], 0],
    [`${prefix}.self_attn.q_proj.weight`, [c.heads * dh, c.dModel], 0.01],
    [`${prefix}.self_attn.k_proj.weight`, [c.kvHeads * dh, c.dModel], 0.01],
    [`${prefix}.self_attn.v_proj.weight`, [c.kvHeads * dh, c.dModel], 0.01],
    [`${prefix}.self_attn.o_proj.weight`, [c.dModel, c.heads * dh], 0.01],
    [`${prefix}.post_attention_layernorm.weight`, [c.dModel], 0],
    [`${prefix}.mlp.gate_proj.weight`, [c.ffn, c.dModel], 0.01],
    [`${prefix}.mlp.up_proj.weight`, [c.ffn, c.dModel], 0.01],
    [`${prefix}.mlp.down_proj.weight`, [c.dModel, c.ffn], 0.01],
  ];
}

/** Pre-norm transformer block.   x [B, T, D], cos/sin [B, 1, T, Dh] -> [B, T, D] */
export function block(g: Graph, prefix: string, c: BlockConfig, x: Tensor, rope: { cos: Tensor; sin: Tensor }, bias: Tensor): Tensor {
  const p: Record<string, Tensor> = {};
  for (const [name, shape, wd] of blockParams(prefix, c)) p[name.slice(prefix.length + 1)] = param(g, name, shape, { weightDecay: wd });
  const [b, t] = [x.shape[0]!, x.shape[1]!];
  const dh = c.dModel / c.heads;
  const heads = (y: Tensor, h: number) => transpose(reshape(y, [b, t, h, dh]), [0, 2, 1, 3]); // [B, h, T, Dh]
  return g.scope(prefix, () => {
    const hN = rmsNorm(x, p['input_layernorm.weight']!, c.eps);
    const q = applyRope(heads(linear(hN, p['self_attn.q_proj.weight']!), c.heads), rope.cos, rope.sin);
    const k = applyRope(heads(linear(hN, p['self_attn.k_proj.weight']!), c.kvHeads), rope.cos, rope.sin);
    const v = heads(linear(hN, p['self_attn.v_proj.weight']!), c.kvHeads);
    const a = reshape(transpose(attention(q, k, v, bias), [0, 2, 1, 3]), [b, t, c.dModel]); // [B, T, D]
    const h1 = add(x, linear(a, p['self_attn.o_proj.weight']!));
    const m = swiglu(rmsNorm(h1, p['post_attention_layernorm.weight']!, c.eps), p['mlp.gate_proj.weight']!, p['mlp.up_proj.weight']!, p['mlp.down_proj.weight']!);
    return add(h1, m);
  });
}

export function initBlock(rng: Rng, prefix: string, c: BlockConfig): Init {
  const out: Init = {};
  for (const [name, shape] of blockParams(prefix, c)) {
    const n = shape.reduce((a, b) => a * b, 1);
    out[name] = shape.length === 1 ? new Float32Array(n).fill(1) : normalArray(rng, n, 0.02);
  }
  return out;
}

/** Rotary tables and causal bias for positions 0..T-1, shared by every block. */
export function blockContext(g: Graph, c: BlockConfig, b: Dim, t: Dim) {
  const positions = g.input('position_ids', [b, t], 'int64');
  const { cos, sin } = ropeTables(positions, c.dModel / c.heads, c.ropeTheta);
  return { rope: { cos: unsqueeze(cos, 1), sin: unsqueeze(sin, 1) }, bias: causalBias(g, t) };
}

/** A one-block causal LM with tied embeddings; loss = next-token cross-entropy where mask = 1. */
export function tinyLM(g: Graph, vocab: number, c: BlockConfig) {
  const emb = param(g, 'embed_tokens.weight', [vocab, c.dModel], { weightDecay: 0 });
  const normF = param(g, 'norm.weight', [c.dModel]);
  const ids = g.input('input_ids', ['B', 'T'], 'int64');
  const targets = g.input('labels', ['B', 'T'], 'int64');
  const mask = g.input('loss_mask', ['B', 'T'], 'float32');
  const ctx = blockContext(g, c, 'B', 'T');
  const h = block(g, 'layers.0', c, gather(emb, ids), ctx.rope, ctx.bias);
  const logits = matmul(rmsNorm(h, normF, c.eps), transpose(emb, [1, 0])); // [B, T, V]
  const loss = maskedCrossEntropy(logits, targets, mask);
  const init = (rng: Rng): Init => ({
    'embed_tokens.weight': normalArray(rng, vocab * c.dModel, 1 / Math.sqrt(c.dModel)), // tied: logits start near uniform
    'norm.weight': new Float32Array(c.dModel).fill(1),
    ...initBlock(rng, 'layers.0', c),
  });
  return { loss, logits, init };
}

/** Mean squared error of a block's output against a target, for the engine benchmark. */
export function blockRegression(g: Graph, c: BlockConfig, batch: number, seq: number) {
  const x = g.input('x', [batch, seq, c.dModel]);
  const target = g.input('target', [batch, seq, c.dModel]);
  const ctx = blockContext(g, c, batch, seq);
  const y = block(g, 'layers.0', c, x, ctx.rope, ctx.bias);
  const d = sub(y, target);
  return { loss: reduceMean(flattenRows(mul(d, d)), [0, 1]) };
}
