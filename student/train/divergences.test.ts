// The top-k divergences (divergences.ts) inside the policy loss, in float64, against an independent
// float64 JS implementation that works from the FULL distributions (the tail is summed over the ids
// outside the top-k, not formed as 1 − Σ top-k), plus a two-outcome row worked by hand, central
// finite differences of the gradient with respect to the student's logits, the JSD limits, the
// floored tail, and the mass / overlap metrics.
//
// The graph: student logits z [B, T, V] are an input; log π_θ = logSoftmax(z) is gathered at the
// sampled token (the policy term; A = 0 so it adds nothing) and at the teacher's top-k ids.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { evalGraph } from '../../engine/exec.ts';
import { Graph, gatherElements, grad, logSoftmax, squeeze, topK, unsqueeze } from '../../engine/index.ts';
import { Rng } from '../../engine/rng.ts';
import { type HostTensor, hostTensor } from '../../engine/runtime/host.ts';
import { lossWeights } from './aggregate.ts';
import { TAIL_FLOOR, type TopkDivergenceName } from './divergences.ts';
import { LossConfigError, type PolicyLossOptions, checkPolicyLossOptions, policyInputs, policyLoss } from './policy.ts';
import { dot } from '../../engine/testing/fd.ts';
import { packPolicyBatch, splitMicroBatches } from './batch.ts';
import { Trainer } from '../../engine/train/trainer.ts';
import { type Weights64, TINY, asF32, evaluate, lossAndGrads, maxRelDiff, randomRollouts, tinyWeights, weightFeeds64 } from './fixtures.ts';
import { buildPolicyTrainStep, policyLossOnLogprobs, policyObjective } from './step.ts';
import { LayeredTrainer } from './layered.ts';
import { LoraTrainer } from './lora-trainer.ts';
import { parseConfig, tensorShapes } from '../model/config.ts';
import { inputLoraWeights, writeFrozenBase } from '../model/frozen.ts';
import { type LoraSpec, loraShapes } from '../model/lora.ts';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

interface Case {
  b: number;
  t: number;
  v: number;
  k: number;
  z: number[]; // student logits [B·T·V]
  teacherLogits: number[]; // [B·T·V]
  sampled: number[]; // [B·T]
  mask: number[]; // [B·T]
}

const softmax = (x: number[]) => {
  const m = Math.max(...x);
  const e = x.map((v) => Math.exp(v - m));
  const s = e.reduce((a, c) => a + c, 0);
  return e.map((v) => v / s);
};
const row = (xs: number[], i: number, v: number) => xs.slice(i * v, (i + 1) * v);
/** Indices of the k largest values, largest first. */
const topIdx = (x: number[], k: number) => x.map((v, i) => [v, i] as const).sort((a, b) => b[0] - a[0]).slice(0, k).map(([, i]) => i);

/** Reference per-token divergence from full distributions p (teacher), q (student) and the ids S. */
function reference(name: TopkDivergenceName, p: number[], q: number[], S: number[], beta: number): number {
  const out = new Set(S);
  const tail = (d: number[]) => Math.max(TAIL_FLOOR, d.reduce((a, c, i) => (out.has(i) ? a : a + c), 0));
  const P = [...S.map((i) => p[i]!), tail(p)];
  const Q = [...S.map((i) => q[i]!), tail(q)];
  const kl = (a: number[], b: number[]) => a.reduce((s, x, i) => s + x * Math.log(x / b[i]!), 0);
  if (name === 'topk_fkl') return kl(P, Q);
  if (name === 'topk_rkl') return kl(Q, P);
  const M = P.map((x, i) => beta * x + (1 - beta) * Q[i]!);
  return beta * kl(P, M) + (1 - beta) * kl(Q, M);
}

/** The graph's loss, metrics and ∂loss/∂z for one case. */
async function run(c: Case, o: PolicyLossOptions, z = c.z) {
  const k = o.distill!.divergence!.topK;
  const g = new Graph('topk-divergence-test');
  const zt = g.input('z', ['B', 'T', c.v], 'float64');
  const lsm = logSoftmax(zt, -1);
  const sampled = g.input('sampled', ['B', 'T', 1], 'int64');
  const x = policyInputs(g, 'float64', o);
  const logp = squeeze(gatherElements(lsm, sampled, -1), -1);
  const at = gatherElements(lsm, x.teacherTopIds!, -1);
  const { loss, metrics } = policyLoss(logp, x, o, { logprobs: at, topIds: topK(zt, k, -1)[1] });
  g.output('loss', loss);
  for (const [name, m] of Object.entries(metrics)) g.output(name, 'value' in m ? m.value : m);
  g.output('dz', grad(loss, [zt])[0]!);
  const n = c.b * c.t;
  const teacherIds: number[] = [];
  const teacherLps: number[] = [];
  for (let i = 0; i < n; i++) {
    const p = softmax(row(c.teacherLogits, i, c.v));
    for (const id of topIdx(p, k)) [teacherIds.push(id), teacherLps.push(Math.log(p[id]!))];
  }
  // log π_old = log π_θ at the sampled token: ρ = 1, and A = 0 leaves only the divergence
  const old = Array.from({ length: n }, (_, i) => Math.log(softmax(row(z, i, c.v))[c.sampled[i]!]!));
  const bt = (xs: number[]) => hostTensor('float64', [c.b, c.t], Float64Array.from(xs));
  const feeds: Record<string, HostTensor> = {
    z: hostTensor('float64', [c.b, c.t, c.v], Float64Array.from(z)),
    sampled: hostTensor('int64', [c.b, c.t, 1], BigInt64Array.from(c.sampled.map(BigInt))),
    loss_mask: bt(c.mask),
    loss_weights: hostTensor('float64', [c.b, c.t], lossWeights('token_mean', { data: c.mask, b: c.b, t: c.t })),
    advantages: bt(new Array(n).fill(0)),
    old_logprobs: bt(old),
    batch_tokens: hostTensor('float64', [], Float64Array.of(c.mask.reduce((a, m) => a + m, 0))),
    teacher_top_ids: hostTensor('int64', [c.b, c.t, k], BigInt64Array.from(teacherIds.map(BigInt))),
    teacher_top_logprobs: hostTensor('float64', [c.b, c.t, k], Float64Array.from(teacherLps)),
  };
  const res = await evalGraph(g, feeds, { threads: 1 });
  const scalars = Object.fromEntries(Object.entries(res).filter(([, t]) => t.dims.length === 0).map(([name, t]) => [name, Number(t.data[0])]));
  return { ...scalars, dz: Array.from(res.dz!.data as Float64Array) } as Record<string, number> & { dz: number[] };
}

const opts = (name: TopkDivergenceName, topK: number, coef = 1, beta?: number): PolicyLossOptions => ({ type: 'ppo', distill: { coef, divergence: { name, topK, beta } } });
const close = (got: number, want: number, what: string, tol = 1e-10) => assert.ok(Math.abs(got - want) <= tol * Math.max(1, Math.abs(want)), `${what}: got ${got}, want ${want}`);

// Worked by hand: two outcomes, the teacher's top-1 is id 0 with p = 0.5 (tail 0.5), the student's
// q(0) = 0.8 (tail 0.2).
//   fkl = 0.5 ln(0.5/0.8) + 0.5 ln(0.5/0.2) = 0.5 ln 1.5625                         = 0.22314355
//   rkl = 0.8 ln(0.8/0.5) + 0.2 ln(0.2/0.5) = 0.37600290 − 0.18325815               = 0.19274475
//   jsd(0.5): m = (0.65, 0.35)
//     KL(p‖m) = 0.5 ln(0.5/0.65) + 0.5 ln(0.5/0.35) = −0.13118217 + 0.17833747       = 0.04715530
//     KL(q‖m) = 0.8 ln(0.8/0.65) + 0.2 ln(0.2/0.35) = 0.16611154 − 0.11192316        = 0.05418838
//     jsd = 0.5·0.04715530 + 0.5·0.05418838                                           = 0.05067184
const HAND: Case = { b: 1, t: 1, v: 2, k: 1, z: [Math.log(0.8), Math.log(0.2)], teacherLogits: [0, 0], sampled: [1], mask: [1] };
// the teacher's tie at [0, 0]: topIdx keeps id 0 first (stable sort)

test('a two-outcome row worked by hand: fkl, rkl and jsd(0.5)', async () => {
  close((await run(HAND, opts('topk_fkl', 1))).distill_topk_fkl!, 0.22314355, 'fkl', 1e-8);
  close((await run(HAND, opts('topk_rkl', 1))).distill_topk_rkl!, 0.19274475, 'rkl', 1e-8);
  close((await run(HAND, opts('topk_jsd', 1, 1, 0.5))).distill_topk_jsd!, 0.05067184, 'jsd', 1e-7);
  const r = await run(HAND, opts('topk_fkl', 1));
  close(r.topk_teacher_mass!, 0.5, 'teacher mass covered by the top-1');
  close(r.topk_overlap!, 1, 'the student\'s top-1 (id 0) is the teacher\'s');
});

/** A random case: B = 2, T = 4, V = 7, some positions masked out (and garbage logits there). */
function randomCase(seed: number, k: number): Case {
  const rng = new Rng(seed);
  const [b, t, v] = [2, 4, 7];
  const logits = () => Array.from({ length: b * t * v }, () => 1.5 * rng.normal());
  return { b, t, v, k, z: logits(), teacherLogits: logits(), sampled: Array.from({ length: b * t }, () => rng.int(v)), mask: [0, 1, 1, 1, 0, 1, 1, 0] };
}

for (const [name, beta] of [['topk_fkl', undefined], ['topk_rkl', undefined], ['topk_jsd', 0.3]] as const) {
  test(`${name}: loss and metrics match the full-distribution reference; the gradient matches finite differences`, async () => {
    const k = 3;
    const c = randomCase(5, k);
    const coef = 0.7;
    const r = await run(c, opts(name, k, coef, beta));
    const on = c.mask.flatMap((m, i) => (m ? [i] : []));
    let sum = 0;
    let mass = 0;
    let overlap = 0;
    for (const i of on) {
      const p = softmax(row(c.teacherLogits, i, c.v));
      const q = softmax(row(c.z, i, c.v));
      const S = topIdx(p, k);
      sum += reference(name, p, q, S, beta ?? 0.5);
      mass += S.reduce((a, id) => a + p[id]!, 0);
      overlap += topIdx(q, k).filter((id) => S.includes(id)).length / k;
    }
    close(r[`distill_${name}`]!, sum / on.length, `mean ${name}`);
    close(r.loss!, (coef * sum) / on.length, 'loss = c · token mean (A = 0)');
    close(r.topk_teacher_mass!, mass / on.length, 'topk_teacher_mass');
    close(r.topk_overlap!, overlap / on.length, 'topk_overlap');
    assert.ok(r.topk_overlap! > 0 && r.topk_overlap! < 1, `a generic case overlaps partly (${r.topk_overlap})`);

    // central differences in a random direction of z (masked positions included: their gradient must be 0)
    const rng = new Rng(17);
    const dir = c.z.map(() => rng.normal());
    const h = 1e-5;
    const at = async (s: number) => (await run(c, opts(name, k, coef, beta), c.z.map((x, i) => x + s * h * dir[i]!))).loss!;
    const numeric = ((await at(1)) - (await at(-1))) / (2 * h);
    const analytic = r.dz.reduce((a, g, i) => a + g * dir[i]!, 0);
    assert.ok(Math.abs(analytic) > 1e-4, `the gradient does not vanish (${analytic})`);
    close(analytic, numeric, 'directional derivative vs finite differences', 1e-6);
    c.mask.forEach((m, i) => {
      if (!m) for (let j = 0; j < c.v; j++) assert.equal(r.dz[i * c.v + j], 0, `no gradient at masked position ${i}`);
    });
  });
}

test('JSD(β) tends to β·KL(p‖q) as β → 0 and to (1 − β)·KL(q‖p) as β → 1; β outside (0, 1) is refused', async () => {
  const c = randomCase(9, 3);
  const fkl = (await run(c, opts('topk_fkl', 3))).loss!;
  const rkl = (await run(c, opts('topk_rkl', 3))).loss!;
  const small = (await run(c, opts('topk_jsd', 3, 1, 1e-4))).loss!;
  const large = (await run(c, opts('topk_jsd', 3, 1, 1 - 1e-4))).loss!;
  close(small / 1e-4, fkl, 'JSD/β at β = 1e-4', 1e-3);
  close(large / 1e-4, rkl, 'JSD/(1−β) at β = 1 − 1e-4', 1e-3);
  for (const beta of [0, 1, undefined])
    assert.throws(() => checkPolicyLossOptions(opts('topk_jsd', 3, 1, beta)), (e: Error) => e instanceof LossConfigError && /strictly between 0 and 1/.test(e.message) && /topk_fkl/.test(e.message));
  assert.throws(() => checkPolicyLossOptions(opts('topk_kl' as never, 3)), /unknown divergence "topk_kl"/);
  assert.throws(() => checkPolicyLossOptions(opts('topk_fkl', 0)), /topK must be an integer ≥ 1/);
});

test('a top-k covering the whole vocabulary gives the exact KL; a tail below the floor stays finite', async () => {
  // k = V: the tail is empty on both sides (floored to 1e-6 on both, contributing 0): the exact divergences
  const c = randomCase(3, 7);
  const full = (await run(c, opts('topk_fkl', 7))).distill_topk_fkl!;
  const on = c.mask.flatMap((m, i) => (m ? [i] : []));
  const exact = on.reduce((s, i) => {
    const [p, q] = [softmax(row(c.teacherLogits, i, c.v)), softmax(row(c.z, i, c.v))];
    return s + p.reduce((a, x, j) => a + x * Math.log(x / q[j]!), 0);
  }, 0) / on.length;
  close(full, exact, 'top-V forward KL = full forward KL', 1e-9);
  // a student that puts (almost) all its mass on the teacher's top-1 while the teacher keeps half in its tail
  const peaked: Case = { b: 1, t: 1, v: 3, k: 1, z: [40, 0, 0], teacherLogits: [1, 1 - Math.log(2), 1 - Math.log(2)], sampled: [0], mask: [1] };
  for (const name of ['topk_fkl', 'topk_rkl', 'topk_jsd'] as const) {
    const r = await run(peaked, opts(name, 1, 1, 0.5));
    assert.ok(Number.isFinite(r.loss!) && r.dz.every(Number.isFinite), `${name}: finite loss ${r.loss} and gradient`);
  }
  // fkl with q_tail floored: 0.5 ln(0.5/1) + 0.5 ln(0.5/1e-6) (q(0) = 1 − 2e^−40 ≈ 1)
  close((await run(peaked, opts('topk_fkl', 1))).loss!, 0.5 * Math.log(0.5) + 0.5 * Math.log(0.5 / TAIL_FLOOR), 'floored tail', 1e-9);
});

test('through the tiny model: every parameter\'s gradient of the policy loss with topk_jsd matches finite differences (fused step objective)', async () => {
  const c = TINY.qwen2!;
  const k = 4;
  const obj = policyObjective(c, { dtype: 'float64', loss: { type: 'ppo', distill: { coef: 0.5, divergence: { name: 'topk_jsd', topK: k, beta: 0.4 } } } });
  const s = await lossAndGrads(obj);
  const rng = new Rng(23);
  const rollouts = randomRollouts(7, 3, 5).map((r) => {
    const n = r.completionIds.length;
    const ids: number[] = [];
    const lps: number[] = [];
    for (let j = 0; j < n; j++) {
      const pick = new Set<number>();
      while (pick.size < k) pick.add(rng.int(c.vocabSize));
      const mass = [0.3, 0.15, 0.1, 0.05].map((p) => p * (0.5 + rng.uniform()));
      [...pick].forEach((id, q) => [ids.push(id), lps.push(Math.log(mass[q]!))]);
    }
    return { ...r, teacherLogprobs: undefined, refLogprobs: undefined, teacherTopK: k, teacherTopIds: ids, teacherTopLogprobs: lps };
  });
  const batch = packPolicyBatch(rollouts, { padId: 0, dtype: 'float64', temperature: 0.8, topK: k, vocabRows: c.vocabSize });
  assert.ok(!('teacher_logprobs' in batch), 'a top-k divergence feeds no sampled-token teacher log-probs');
  const w = tinyWeights(c, 3);
  const at = (ws: Weights64) => evaluate(s, { ...batch, ...weightFeeds64(c, ws) });
  const base = await at(w);
  assert.ok(base.metrics.distill_topk_jsd! > 0 && base.metrics.topk_teacher_mass! > 0.3 && base.metrics.topk_teacher_mass! < 1.1, JSON.stringify(base.metrics));
  for (const name of s.params) {
    const v = Float64Array.from(w[name]!, () => rng.normal());
    const shifted = (sign: number) => ({ ...w, [name]: Float64Array.from(w[name]!, (x, i) => x + sign * 1e-5 * v[i]!) });
    const numeric = ((await at(shifted(1))).loss - (await at(shifted(-1))).loss) / 2e-5;
    const analytic = dot(base.grads[name]!, v);
    const err = Math.abs(analytic - numeric) / Math.max(1e-9, Math.abs(analytic) + Math.abs(numeric));
    assert.ok(err < 1e-6, `${name}: analytic ${analytic} vs FD ${numeric} (rel err ${err})`);
  }
  await s.session.release();
});

test('packPolicyBatch: top-k feeds are aligned like the log-probs; a wrong k, a repeated or out-of-vocabulary id is refused by rollout and token', () => {
  const r = { promptIds: [5, 6], completionIds: [7, 8], advantages: 0.5, samplerLogprobs: [-1, -2], teacherTopK: 2, teacherTopIds: [1, 2, 3, 4], teacherTopLogprobs: [-0.1, -0.2, -0.3, -0.4] };
  const f = packPolicyBatch([r], { padId: 0, topK: 2, vocabRows: 10 });
  assert.deepEqual(f.teacher_top_ids!.dims, [1, 4, 2]);
  assert.deepEqual(Array.from(f.teacher_top_ids!.data as BigInt64Array, Number), [0, 0, 0, 0, 1, 2, 3, 4], 'completion token j at position P + j');
  assert.deepEqual(Array.from(f.teacher_top_logprobs!.data as Float32Array), [0, 0, 0, 0, -0.1, -0.2, -0.3, -0.4].map(Math.fround));
  assert.ok(!('teacher_top_ids' in packPolicyBatch([r], { padId: 0 })), 'no topK, no top-k feeds');
  assert.throws(() => packPolicyBatch([r], { padId: 0, topK: 3 }), /rollout 0 carries the teacher's top-2, but the train step's divergence needs top-3/);
  assert.throws(() => packPolicyBatch([{ ...r, teacherTopIds: [1, 1, 3, 4] }], { padId: 0, topK: 2 }), /rollout 0, completion token 0: teacher top-k id 1 appears twice/);
  assert.throws(() => packPolicyBatch([{ ...r, teacherTopIds: [1, 2, 3, 12] }], { padId: 0, topK: 2, vocabRows: 10 }), /rollout 0, completion token 1: teacher top-k id 12 is outside the student's vocabulary \[0, 10\)/);
  assert.throws(() => packPolicyBatch([{ ...r, teacherTopLogprobs: [-0.1, NaN, -0.3, -0.4] }], { padId: 0, topK: 2 }), /completion token 0: teacher top-k log-prob NaN/);
});

test('LoRA trainer with topk_fkl (frozen base in a file, chunked head sessions) = the fused step of the same objective with the base as inputs', async () => {
  const c = parseConfig({ architectures: ['Qwen2ForCausalLM'], vocab_size: 1100, hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, tie_word_embeddings: false, initializer_range: 0.2 });
  const spec: LoraSpec = { rank: 3, alpha: 6, targets: ['q_proj', 'v_proj', 'down_proj'] };
  const k = 4;
  const dir = mkdtempSync(join(tmpdir(), 'opd-lora-topk-'));
  try {
    const base = new Map(Object.entries(asF32(tinyWeights(c, 8))));
    const frozen = await writeFrozenBase(dir, c, base, { headRows: 256 }); // 5 head chunks
    const rng = new Rng(9);
    const start = Object.fromEntries(loraShapes(c, spec).map(([n, sh]) => [n, Float32Array.from({ length: sh.reduce((a, x) => a * x, 1) }, () => 0.3 * rng.normal())]));
    const loss = { type: 'ppo' as const, distill: { coef: 0.5, divergence: { name: 'topk_fkl' as const, topK: k } } };
    const lora = await LoraTrainer.create(c, frozen, spec, start, { objective: 'policy', loss, runtime: { threads: 1 } });
    const fused = await Trainer.create(buildPolicyTrainStep(c, { loss, weights: inputLoraWeights(spec, { trainable: true, weightDecay: 0 }) }), start, { threads: 1 });
    const baseFeeds = Object.fromEntries(tensorShapes(c).map(([n, sh]) => [n, hostTensor('float32', sh, base.get(n)!)]));
    for (let step = 0; step < 3; step++) {
      const rollouts = topkRollouts(20 + step, 5, k, c.vocabSize).map(({ refLogprobs: _r, ...r }) => r);
      const feeds = packPolicyBatch(rollouts, { padId: 0, temperature: 0.7, topK: k, vocabRows: c.vocabSize });
      const a = await fused.step({ ...feeds, ...baseFeeds }, 0.01);
      const b = await lora.step(feeds, 0.01);
      for (const name of ['loss', 'grad_norm', 'distill_topk_fkl', 'topk_teacher_mass', 'topk_overlap'])
        assert.ok(Math.abs(a.metrics[name]! - b.metrics[name]!) <= 1e-4 * Math.max(1, Math.abs(a.metrics[name]!)), `step ${step} ${name}: ${b.metrics[name]} vs ${a.metrics[name]}`);
    }
    const [pa, pb] = [fused.params(), lora.params()];
    for (const name of Object.keys(pa)) {
      let worst = 0;
      for (let i = 0; i < pa[name]!.length; i++) worst = Math.max(worst, Math.abs(pa[name]![i]! - pb[name]![i]!));
      assert.ok(worst < 1e-5, `${name}: max |Δ| ${worst}`);
    }
    await Promise.all([lora.release(), fused.release()]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/** Rollouts with a random teacher top-k (distinct ids over the whole vocabulary, so every head chunk holds some). */
function topkRollouts(seed: number, n: number, k: number, vocab: number) {
  const rng = new Rng(seed + 500);
  return randomRollouts(seed, n, 6, 0).map((r) => {
    const ids = Array.from({ length: r.completionIds.length }, () => {
      const s = new Set<number>();
      while (s.size < k) s.add(rng.int(vocab));
      return [...s];
    }).flat();
    return { ...r, teacherLogprobs: undefined, teacherTopK: k, teacherTopIds: ids, teacherTopLogprobs: ids.map((_, i) => Math.log((0.6 * (0.5 + rng.uniform())) / (2 + (i % k)))) };
  });
}

for (const family of ['qwen2', 'llama'] as const) {
  test(`layered step with topk_jsd = fused step (${family}, float64, 3 steps, a vocab chunk that does not divide V, micro-batches on the layered side)`, async () => {
    const c = TINY[family]!;
    const k = 6;
    const o = { dtype: 'float64' as const, weightDecay: 0.01, adamw: { maxGradNorm: 1 }, loss: { type: 'ppo' as const, refKl: { beta: 0.05 }, distill: { coef: 0.7, divergence: { name: 'topk_jsd' as const, topK: k, beta: 0.3 } } } };
    const fused = await Trainer.create(buildPolicyTrainStep(c, o), tinyWeights(c, 3), { threads: 1, optimization: 'basic' });
    const layered = await LayeredTrainer.create(c, policyLossOnLogprobs(o), tinyWeights(c, 3), { ...o, topK: k, vocabChunk: 128, optimizerChunk: 1000, runtime: { threads: 1, optimization: 'basic' } });
    for (let step = 0; step < 3; step++) {
      const feeds = packPolicyBatch(topkRollouts(70 + step, 6, k, c.vocabSize), { padId: 0, dtype: 'float64', aggregation: 'seq_mean_token_mean', temperature: 0.8, topK: k, vocabRows: c.vocabSize });
      const a = await fused.step(feeds, 0.01);
      const b = await layered.step(step === 1 ? splitMicroBatches(feeds, 2) : feeds, 0.01);
      assert.equal(b.skipped, false);
      assert.ok(a.metrics.distill_topk_jsd! > 0);
      if (step === 0) assert.ok(a.metrics.topk_overlap! > 0, `some teacher id is among the student's top-k, so the overlap is a real comparison (${a.metrics.topk_overlap})`);
      assert.deepEqual(Object.keys(b.metrics).sort(), Object.keys(a.metrics).sort(), 'the layered step reports every metric the fused one does, topk_overlap included');
      for (const name of Object.keys(b.metrics)) assert.ok(maxRelDiff([b.metrics[name]!], [a.metrics[name]!]) < 1e-9, `step ${step} ${name}: ${b.metrics[name]} vs ${a.metrics[name]}`);
      assert.ok(maxRelDiff([b.loss], [a.loss]) < 1e-9, `step ${step} loss: ${b.loss} vs ${a.loss}`);
    }
    const [pa, pb] = [fused.params(), layered.params()];
    for (const name of Object.keys(pa)) assert.ok(maxRelDiff(pb[name]!, pa[name]!) < 1e-9, `${name}: ${maxRelDiff(pb[name]!, pa[name]!)}`);
    await fused.release();
    await layered.release();
  });
}

test('fused step with topk_fkl: 3 micro-batches (the [B, T, k] feeds split and trimmed) give the whole batch\'s update, loss and metrics', async () => {
  const c = TINY.qwen3!;
  const k = 5;
  const spec = () => buildPolicyTrainStep(c, { dtype: 'float64', microBatches: true, loss: { type: 'ppo', distill: { coef: 0.4, divergence: { name: 'topk_fkl', topK: k } } } });
  const whole = await Trainer.create(spec(), tinyWeights(c, 9), { threads: 1 });
  const accum = await Trainer.create(spec(), tinyWeights(c, 9), { threads: 1 });
  const rng = new Rng(31);
  for (let step = 0; step < 2; step++) {
    const rollouts = randomRollouts(60 + step, 7, 6, 0).map((r) => {
      const n = r.completionIds.length;
      const ids = Array.from({ length: n }, () => {
        const s = new Set<number>();
        while (s.size < k) s.add(rng.int(c.vocabSize));
        return [...s];
      }).flat();
      return { ...r, teacherLogprobs: undefined, refLogprobs: undefined, teacherTopK: k, teacherTopIds: ids, teacherTopLogprobs: ids.map((_, i) => Math.log(0.5 / (1 + (i % k)))) };
    });
    const feeds = packPolicyBatch(rollouts, { padId: 0, dtype: 'float64', aggregation: 'seq_mean_token_mean', temperature: 0.8, topK: k, vocabRows: c.vocabSize });
    const micro = splitMicroBatches(feeds, 3);
    assert.ok(micro.every((m) => m.teacher_top_ids!.dims[1] === m.input_ids!.dims[1] && m.teacher_top_ids!.dims[2] === k));
    const a = await whole.step(feeds, 0.01);
    const b = await accum.step(micro, 0.01);
    assert.equal(a.skipped, false);
    for (const name of ['loss', 'distill_topk_fkl', 'topk_teacher_mass', 'topk_overlap'])
      assert.ok(maxRelDiff([b.metrics[name] ?? b.loss], [a.metrics[name] ?? a.loss]) < 1e-9, `step ${step} ${name}: ${b.metrics[name]} vs ${a.metrics[name]}`);
  }
  const [pa, pb] = [whole.params(), accum.params()];
  for (const name of Object.keys(pa)) assert.ok(maxRelDiff(pb[name]!, pa[name]!) < 1e-8, `${name}: ${maxRelDiff(pb[name]!, pa[name]!)}`);
  await whole.release();
  await accum.release();
});
