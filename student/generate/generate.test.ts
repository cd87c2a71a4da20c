// Generation tests on tiny random-init models (Qwen2, Qwen3 with q/k norm and an explicit
// head_dim, Llama): the KV-cache path against the no-cache reference, the sampler's recorded
// log-probs against the score graph, seeding, stop tokens, the token limit and prompt refusal.

import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { Rng } from '../../engine/rng.ts';
import { type ModelConfig, parseConfig } from '../model/config.ts';
import { initWeights } from '../model/init.ts';
import { ModelSession, packSequences, scalarF32, weightFeeds } from '../model/runner.ts';
import { buildScoreGraph } from '../model/score.ts';
import { type Completion, type GenerateOptions, Generator, PromptError } from './generate.ts';

const BASE = {
  vocab_size: 300,
  hidden_size: 64,
  intermediate_size: 128,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  max_position_embeddings: 64,
  // wider than HF's 0.02 so random logits are spread out and greedy choices are far from ties
  initializer_range: 0.1,
};
const CONFIGS: Record<string, Record<string, unknown>> = {
  qwen2: { ...BASE, architectures: ['Qwen2ForCausalLM'], tie_word_embeddings: false },
  qwen3: { ...BASE, architectures: ['Qwen3ForCausalLM'], head_dim: 32, tie_word_embeddings: true },
  llama: { ...BASE, architectures: ['LlamaForCausalLM'], num_key_value_heads: 4, rope_theta: 500000 },
};

/** Prompts of different lengths, so left padding is exercised. */
const PROMPTS = [[5, 17, 42, 7, 99, 3, 250], [11], [200, 201, 202, 13], [64, 65]];
const PAD = 0;

const generators: Generator[] = [];
after(async () => {
  for (const g of generators) await g.release();
});

async function tiny(arch: string, seed = 1, cacheChunk?: number): Promise<{ c: ModelConfig; gen: Generator; feeds: () => ReturnType<typeof weightFeeds> }> {
  const c = parseConfig(CONFIGS[arch]!);
  const w = initWeights(c, seed);
  const feeds = () => weightFeeds(c, w);
  const gen = await Generator.create(c, feeds, { threads: 1, cacheChunk });
  generators.push(gen);
  return { c, gen, feeds };
}

const opts = (o: Partial<GenerateOptions>): GenerateOptions => ({ maxNewTokens: 12, temperature: 0, stopTokenIds: [], rng: new Rng(1), padId: PAD, ...o });

for (const arch of Object.keys(CONFIGS)) {
  test(`${arch}: KV-cache greedy generation equals the no-cache reference (left-padded batch)`, async () => {
    const { gen } = await tiny(arch);
    const cached = await gen.generate(PROMPTS, opts({ maxNewTokens: 16 }));
    const reference = await gen.greedyNoCache(PROMPTS, { maxNewTokens: 16, stopTokenIds: [] });
    assert.deepEqual(cached.map((r) => r.tokens), reference.map((r) => r.tokens));
    cached.forEach((r, i) => r.logprobs.forEach((lp, t) => assert.ok(Math.abs(lp - reference[i]!.logprobs[t]!) < 1e-5, `row ${i} token ${t}`)));
    // generating alone gives the same tokens as generating in the padded batch
    const alone = await gen.generate([PROMPTS[1]!], opts({ maxNewTokens: 16 }));
    assert.deepEqual(alone[0]!.tokens, cached[1]!.tokens);
  });
}

test('the KV cache growing a few slots at a time (many growths, finished rows inside) changes nothing', async () => {
  const { gen } = await tiny('qwen3', 5, 3);
  const { gen: roomy } = await tiny('qwen3', 5);
  const o = (stopTokenIds: number[] = []) => opts({ maxNewTokens: 20, temperature: 1, rng: new Rng(9), stopTokenIds });
  // Other cache widths change float rounding (matmul shapes), not tokens: log-probs within 1e-5.
  const same = (a: Completion[], b: Completion[]) => {
    assert.deepEqual(a.map((r) => [r.tokens, r.finishReason]), b.map((r) => [r.tokens, r.finishReason]));
    a.forEach((r, i) => r.logprobs.forEach((lp, t) => assert.ok(Math.abs(lp - b[i]!.logprobs[t]!) < 1e-5)));
  };
  const free = await roomy.generate(PROMPTS, o());
  same(await gen.generate(PROMPTS, o()), free);
  const stopped = await roomy.generate(PROMPTS, o([free[2]!.tokens[4]!]));
  assert.equal(stopped[2]!.finishReason, 'stop');
  same(await gen.generate(PROMPTS, o([free[2]!.tokens[4]!])), stopped);
});

/** Score prompt + completion with the score graph at inv_temperature = 1/τ; the completion's log-probs per row. */
async function scoreCompletions(c: ModelConfig, feeds: () => ReturnType<typeof weightFeeds>, rows: Completion[], tau: number): Promise<number[][]> {
  const s = await ModelSession.create(buildScoreGraph(c, { chunk: 128 }), feeds, { threads: 1 });
  try {
    const seqs = PROMPTS.map((p, i) => [...p, ...rows[i]!.tokens]);
    const b = packSequences(seqs, PAD, 'right');
    const out = await s.run({ input_ids: b.input_ids, attention_mask: b.attention_mask, position_ids: b.position_ids, inv_temperature: scalarF32(1 / tau) });
    const t = b.input_ids.dims[1]!;
    const lp = out.logprobs!.data as Float32Array; // [B, T]
    return seqs.map((seq, i) => Array.from(lp.subarray(i * t + PROMPTS[i]!.length, i * t + seq.length)));
  } finally {
    await s.release();
  }
}

for (const [tau, topK, topP] of [
  [1, undefined, undefined],
  [0.7, 40, 0.9],
  [0, undefined, undefined], // greedy records τ = 1 log-probs
] as const) {
  test(`qwen2: sampler log-probs equal the score graph's at τ = ${tau}${topK ? `, top-k ${topK}, top-p ${topP}` : ''} (within 1e-5)`, async () => {
    const { c, gen, feeds } = await tiny('qwen2', 2);
    const rows = await gen.generate(PROMPTS, opts({ temperature: tau, topK, topP, rng: new Rng(11) }));
    const scored = await scoreCompletions(c, feeds, rows, tau === 0 ? 1 : tau);
    let gap = 0;
    rows.forEach((r, i) => r.logprobs.forEach((lp, t) => (gap = Math.max(gap, Math.abs(lp - scored[i]![t]!)))));
    assert.ok(gap < 1e-5, `max |sampler − score| = ${gap}`);
    assert.ok(rows.every((r) => r.logprobs.length === r.tokens.length && r.tokens.length === 12));
  });
}

test('same seed -> same tokens; different seed -> different tokens (τ = 1)', async () => {
  const { gen } = await tiny('qwen2', 3);
  const run = (seed: number) => gen.generate(PROMPTS, opts({ temperature: 1, rng: new Rng(seed) }));
  const [a, b, c] = [await run(5), await run(5), await run(6)];
  assert.deepEqual(a, b);
  assert.notDeepEqual(a.map((r) => r.tokens), c.map((r) => r.tokens));
  // resumable: a generator continued from a saved RNG state draws what the original stream drew next
  const rng = new Rng(5);
  await gen.generate(PROMPTS, opts({ temperature: 1, rng }));
  const resumed = await gen.generate(PROMPTS, opts({ temperature: 1, rng: new Rng(rng.state()) }));
  assert.deepEqual(await gen.generate(PROMPTS, opts({ temperature: 1, rng })), resumed);
});

test('a stop token ends its row (truncated = false); the limit gives truncated = true; other rows are unaffected', async () => {
  const { gen } = await tiny('qwen2', 4);
  const free = await gen.generate(PROMPTS, opts({ maxNewTokens: 10 }));
  for (const r of free) {
    assert.equal(r.tokens.length, 10);
    assert.equal(r.truncated, true);
    assert.equal(r.finishReason, 'length');
  }
  const stop = free[0]!.tokens[3]!; // a token row 0 is known to produce
  const stopped = await gen.generate(PROMPTS, opts({ maxNewTokens: 10, stopTokenIds: [stop] }));
  stopped.forEach((r, i) => {
    const at = free[i]!.tokens.indexOf(stop);
    if (at < 0) {
      assert.deepEqual(r, free[i]); // rows that never meet the stop token generate as before
      return;
    }
    assert.deepEqual(r.tokens, free[i]!.tokens.slice(0, at + 1)); // cut at the stop, which is kept
    assert.equal(r.logprobs.length, at + 1);
    assert.equal(r.truncated, false);
    assert.equal(r.finishReason, 'stop');
  });
  assert.equal(stopped[0]!.finishReason, 'stop');
  // every row stopping at once ends generation early
  const first = await gen.generate(PROMPTS, opts({ maxNewTokens: 10, stopTokenIds: free.map((r) => r.tokens[0]!) }));
  assert.ok(first.every((r) => r.tokens.length === 1 && r.finishReason === 'stop'));
});

test('prompts longer than max_position_embeddings − maxNewTokens are refused, never sliced', async () => {
  const { gen } = await tiny('qwen2');
  const long = Array.from({ length: 57 }, (_, i) => i + 1);
  await assert.rejects(gen.generate([[1, 2], long], opts({ maxNewTokens: 8 })), (e: unknown) => e instanceof PromptError && e.row === 1 && /57 tokens, more than 56/.test(e.message));
  const ok = await gen.generate([long.slice(1)], opts({ maxNewTokens: 8 }));
  assert.equal(ok[0]!.tokens.length, 8);
  await assert.rejects(gen.generate([[]], opts({})), PromptError);
  await assert.rejects(gen.generate([[300]], opts({})), /not an id/);
});
