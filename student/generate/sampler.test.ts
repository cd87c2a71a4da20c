// Sampler unit tests against hand-computed distributions. Frequencies come from N seeded draws; the
// tolerance is 5 binomial standard deviations, sqrt(p(1−p)/N) ≤ 0.0035 for N = 20000, i.e. 0.0175.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Rng } from '../../engine/rng.ts';
import { type SamplingParams, argmax, checkSamplingParams, keptTokens, largest, logSoftmaxAt, sampleToken } from './sampler.ts';

const N = 20000;
const TOL = 0.0175;

function frequencies(logits: number[], s: SamplingParams, seed = 1): { freq: number[]; logprobs: Map<number, number> } {
  const rng = new Rng(seed);
  const row = Float32Array.from(logits);
  const counts = new Array<number>(logits.length).fill(0);
  const logprobs = new Map<number, number>();
  for (let i = 0; i < N; i++) {
    const { token, logprob } = sampleToken(row, s, rng);
    counts[token]!++;
    logprobs.set(token, logprob);
  }
  return { freq: counts.map((c) => c / N), logprobs };
}

/** log softmax(z/τ)[i] by hand, in float64. */
const lsm = (z: number[], i: number, tau = 1) => z[i]! / tau - Math.log(z.reduce((s, x) => s + Math.exp(x / tau), 0));

test('top-k = 2 on [0, 1, 2, 3] draws only ids 2 and 3, in ratio 1 : e', () => {
  const z = [0, 1, 2, 3];
  const { freq, logprobs } = frequencies(z, { temperature: 1, topK: 2 });
  assert.equal(freq[0], 0);
  assert.equal(freq[1], 0);
  const p3 = Math.E / (1 + Math.E); // e³ / (e² + e³)
  assert.ok(Math.abs(freq[3]! - p3) < TOL, `freq(3) = ${freq[3]}, expected ${p3.toFixed(4)} ± ${TOL}`);
  // recorded log-probs are of the full tempered softmax, not the renormalised top-2
  assert.ok(Math.abs(logprobs.get(3)! - lsm(z, 3)) < 1e-12);
  assert.ok(Math.abs(logprobs.get(2)! - lsm(z, 2)) < 1e-12);
});

test('top-p keeps the smallest prefix with mass >= p (at least one token)', () => {
  const probs = [0.5, 0.3, 0.15, 0.05];
  const z = probs.map(Math.log);
  // p = 0.75: {0, 1} (mass 0.8), drawn as 0.5/0.8 and 0.3/0.8
  const a = frequencies(z, { temperature: 1, topP: 0.75 });
  assert.ok(Math.abs(a.freq[0]! - 0.625) < TOL, `freq(0) = ${a.freq[0]}`);
  assert.ok(Math.abs(a.freq[1]! - 0.375) < TOL, `freq(1) = ${a.freq[1]}`);
  assert.equal(a.freq[2]! + a.freq[3]!, 0);
  assert.ok(Math.abs(a.logprobs.get(1)! - Math.log(0.3)) < 1e-6);
  // p = 0.85: {0, 1, 2}
  const b = frequencies(z, { temperature: 1, topP: 0.85 });
  assert.ok(Math.abs(b.freq[2]! - 0.15 / 0.95) < TOL, `freq(2) = ${b.freq[2]}`);
  assert.equal(b.freq[3], 0);
  // p below the top token's mass: the top token alone
  assert.deepEqual(frequencies(z, { temperature: 1, topP: 0.1 }).freq, [1, 0, 0, 0]);
});

test('top-k then top-p: p applies to the renormalised top-k mass', () => {
  const z = [0.5, 0.3, 0.15, 0.05].map(Math.log);
  // top-2 renormalised = [0.625, 0.375]; p = 0.6 keeps id 0 alone
  assert.deepEqual(frequencies(z, { temperature: 1, topK: 2, topP: 0.6 }).freq, [1, 0, 0, 0]);
});

test('temperature sharpens: τ = 0.5 on [0, 1] gives p(1) = e²/(1 + e²), log-probs of the tempered softmax', () => {
  const { freq, logprobs } = frequencies([0, 1], { temperature: 0.5 });
  const p1 = Math.exp(2) / (1 + Math.exp(2));
  assert.ok(Math.abs(freq[1]! - p1) < TOL, `freq(1) = ${freq[1]}`);
  assert.ok(Math.abs(logprobs.get(1)! - Math.log(p1)) < 1e-12);
});

test('greedy: argmax with ties to the lowest id, τ = 1 log-prob, one draw consumed', () => {
  const z = [1, 5, 5, 2];
  const rng = new Rng(7);
  const s = sampleToken(Float32Array.from(z), { temperature: 0 }, rng);
  assert.equal(s.token, 1);
  assert.ok(Math.abs(s.logprob - lsm(z, 1)) < 1e-12);
  const ref = new Rng(7);
  ref.uniform();
  assert.deepEqual(rng.state(), ref.state());
  assert.equal(argmax(Float32Array.from([-3, -1, -1])), 1);
});

test('exactly one uniform draw per sampled token, whatever the filters', () => {
  const rng = new Rng(3);
  const row = Float32Array.from({ length: 50 }, (_, i) => Math.sin(i));
  for (const s of [{ temperature: 1 }, { temperature: 0.7, topK: 5 }, { temperature: 1.3, topP: 0.9 }, { temperature: 0 }]) sampleToken(row, s, rng);
  const ref = new Rng(3);
  for (let i = 0; i < 4; i++) ref.uniform();
  assert.deepEqual(rng.state(), ref.state());
});

test('largest: the selection path equals a full sort, ties to the lower id', () => {
  const rng = new Rng(5);
  const w = Float64Array.from({ length: 5000 }, () => Math.round(rng.uniform() * 200) / 200); // many ties
  const full = Array.from(w.keys()).sort((a, b) => w[b]! - w[a]! || a - b);
  for (const k of [1, 7, 64, 1000]) assert.deepEqual(Array.from(largest(w, k)), full.slice(0, k), `k = ${k}`);
});

test('log-softmax in float64 over the full row', () => {
  const z = [0.25, -1, 3, 2];
  for (const tau of [1, 0.7, 2]) assert.ok(Math.abs(logSoftmaxAt(Float32Array.from(z), tau, 2) - lsm(z, 2, tau)) < 1e-12);
});

test('bad parameters and logits are refused', () => {
  assert.throws(() => checkSamplingParams({ temperature: -1 }), /temperature/);
  assert.throws(() => checkSamplingParams({ temperature: 1, topK: 1.5 }), /topK/);
  assert.throws(() => checkSamplingParams({ temperature: 1, topP: 0 }), /topP/);
  assert.throws(() => sampleToken(Float32Array.of(0, NaN), { temperature: 1 }, new Rng(1)), /NaN/);
  assert.throws(() => sampleToken(Float32Array.of(-Infinity, -Infinity), { temperature: 1 }, new Rng(1)), /finite/);
});

test('keptTokens: top-p alone (growing candidate sets) and top-k + top-p equal a brute-force full sort', () => {
  const rng = new Rng(8);
  for (const spread of [0.2, 3]) {
    // spread 0.2: nearly flat over 3000 ids, so the nucleus outgrows the first candidate sets
    const w = Float64Array.from({ length: 3000 }, () => Math.exp(spread * rng.normal()));
    const sum = w.reduce((a, b) => a + b, 0);
    const order = Array.from(w.keys()).sort((a, b) => w[b]! - w[a]! || a - b);
    const nucleus = (ids: number[], p: number) => {
      const total = ids.reduce((s, v) => s + w[v]!, 0);
      let mass = 0;
      const n = ids.findIndex((v) => (mass += w[v]!) >= p * total);
      return ids.slice(0, n + 1);
    };
    for (const p of [0.05, 0.5, 0.9, 0.999]) {
      assert.deepEqual(Array.from(keptTokens(w, sum, 0, p)!), nucleus(order, p), `spread ${spread}, p ${p}`);
      assert.deepEqual(Array.from(keptTokens(w, sum, 100, p)!), nucleus(order.slice(0, 100), p), `top-100, spread ${spread}, p ${p}`);
    }
    assert.equal(keptTokens(w, sum, 0, 1), null); // no filter: no sort
  }
});
