// The full-vocabulary divergences (divergences.ts: full_fkl / full_rkl / full_jsd), in float64,
// against an independent float64 JS computation over the whole distribution: a two-outcome row
// worked by hand, random rows with chunks that do not divide V (loss and the gradient by central
// finite differences), chunked = unchunked, and through the tiny model's fused policy objective
// (every parameter's gradient by finite differences; chunked = unchunked; padding cannot leak).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { evalGraph } from '../../engine/exec.ts';
import { Graph, grad } from '../../engine/index.ts';
import { Rng } from '../../engine/rng.ts';
import { type HostTensor, hostTensor } from '../../engine/runtime/host.ts';
import { dot } from '../../engine/testing/fd.ts';
import { type FullDivergenceName, fullDivergence } from './divergences.ts';
import { packPolicyBatch, splitMicroBatches } from './batch.ts';
import { LossConfigError, type PolicyLossOptions, checkPolicyLossOptions } from './policy.ts';
import { type Weights64, TINY, asF32, evaluate, lossAndGrads, maxRelDiff, randomRollouts, tinyWeights, weightFeeds64 } from './fixtures.ts';
import { policyObjective } from './step.ts';
import { createStudentTrainer } from './trainer.ts';
import { Trainer } from '../../engine/train/trainer.ts';
import { buildPolicyTrainStep, policyLossOnFullD, policyLossOnLogprobs } from './step.ts';
import { LayeredTrainer } from './layered.ts';
import { parseConfig } from '../model/config.ts';
import { TeacherStates } from '../../teacher/full-vocab.ts';
import { tensorShapes } from '../model/config.ts';

const close = (got: number, want: number, what: string, tol = 1e-10) => assert.ok(Math.abs(got - want) <= tol * Math.max(1, Math.abs(want)), `${what}: got ${got}, want ${want}`);

interface Row {
  b: number;
  t: number;
  d: number;
  v: number;
  hs: number[]; // student hidden [B·T·D]
  ws: number[]; // student head [V·D]
  ht: number[];
  wt: number[];
  invS: number;
  invT: number;
}

/** fullDivergence's [B, T] output and ∂Σ/∂(student hidden, head) for one row set. */
async function run(r: Row, name: FullDivergenceName, o: { chunk?: number; beta?: number }, hs = r.hs, ws = r.ws) {
  const g = new Graph('full-divergence-test');
  const side = (pre: string, dt: number) => ({
    hidden: g.input(`${pre}_h`, ['B', 'T', dt], 'float64'),
    head: g.input(`${pre}_w`, [r.v, dt], 'float64'),
    invTemp: g.input(`${pre}_inv`, [], 'float64'),
  });
  const s = side('s', r.d);
  const t = side('t', r.d);
  const dv = fullDivergence(name, t, s, o); // [B, T]
  g.output('d', dv);
  const total = (await import('../../engine/index.ts')).sumAll(dv);
  const [dh, dw] = grad(total, [s.hidden, s.head]);
  g.output('dh', dh!);
  g.output('dw', dw!);
  const f = (xs: number[], dims: number[]) => hostTensor('float64', dims, Float64Array.from(xs));
  const feeds: Record<string, HostTensor> = {
    s_h: f(hs, [r.b, r.t, r.d]), s_w: f(ws, [r.v, r.d]), s_inv: f([r.invS], []),
    t_h: f(r.ht, [r.b, r.t, r.d]), t_w: f(r.wt, [r.v, r.d]), t_inv: f([r.invT], []),
  };
  const out = await evalGraph(g, feeds, { threads: 1 });
  return { d: Array.from(out.d!.data as Float64Array), dh: Array.from(out.dh!.data as Float64Array), dw: Array.from(out.dw!.data as Float64Array) };
}

/** Independent reference: log-softmax rows in float64 and the divergence summed over every id. */
function reference(r: Row, name: FullDivergenceName, beta: number): number[] {
  const logSoftmax = (h: number[], w: number[], inv: number, i: number) => {
    const z = Array.from({ length: r.v }, (_, v) => inv * Array.from({ length: r.d }, (_, k) => h[i * r.d + k]! * w[v * r.d + k]!).reduce((a, c) => a + c, 0));
    const m = Math.max(...z);
    const lse = m + Math.log(z.reduce((a, x) => a + Math.exp(x - m), 0));
    return z.map((x) => x - lse);
  };
  return Array.from({ length: r.b * r.t }, (_, i) => {
    const lp = logSoftmax(r.ht, r.wt, r.invT, i);
    const lq = logSoftmax(r.hs, r.ws, r.invS, i);
    const p = lp.map(Math.exp);
    const q = lq.map(Math.exp);
    if (name === 'full_fkl') return p.reduce((a, x, v) => a + x * (lp[v]! - lq[v]!), 0);
    if (name === 'full_rkl') return q.reduce((a, x, v) => a + x * (lq[v]! - lp[v]!), 0);
    const lm = p.map((x, v) => Math.log(beta * x + (1 - beta) * q[v]!));
    return beta * p.reduce((a, x, v) => a + x * (lp[v]! - lm[v]!), 0) + (1 - beta) * q.reduce((a, x, v) => a + x * (lq[v]! - lm[v]!), 0);
  });
}

// Worked by hand: V = 2, teacher p = (0.5, 0.5) (head rows 0), student q = (0.8, 0.2) (h = 1, rows ln 0.8, ln 0.2):
//   fkl = 0.5 ln(0.5/0.8) + 0.5 ln(0.5/0.2) = 0.5 ln 1.5625                         = 0.22314355
//   rkl = 0.8 ln(0.8/0.5) + 0.2 ln(0.2/0.5) = 0.37600290 − 0.18325815               = 0.19274475
//   jsd(0.5): m = (0.65, 0.35); 0.5·KL(p‖m) + 0.5·KL(q‖m) = 0.5·0.04715530 + 0.5·0.05418838 = 0.05067184
const HAND: Row = { b: 1, t: 1, d: 1, v: 2, hs: [1], ws: [Math.log(0.8), Math.log(0.2)], ht: [1], wt: [0, 0], invS: 1, invT: 1 };

test('full-vocabulary divergences: a two-outcome row worked by hand (fkl, rkl, jsd(0.5)), chunked by 1 and unchunked', async () => {
  for (const chunk of [1, 2]) {
    close((await run(HAND, 'full_fkl', { chunk })).d[0]!, 0.22314355, `fkl, chunk ${chunk}`, 1e-8);
    close((await run(HAND, 'full_rkl', { chunk })).d[0]!, 0.19274475, `rkl, chunk ${chunk}`, 1e-8);
    close((await run(HAND, 'full_jsd', { chunk, beta: 0.5 })).d[0]!, 0.05067184, `jsd, chunk ${chunk}`, 1e-7);
  }
});

function randomRow(seed: number): Row {
  const rng = new Rng(seed);
  const [b, t, d, v] = [2, 3, 4, 11];
  const n = (k: number, s = 1) => Array.from({ length: k }, () => s * rng.normal());
  return { b, t, d, v, hs: n(b * t * d), ws: n(v * d, 0.8), ht: n(b * t * d), wt: n(v * d, 0.8), invS: 1 / 0.7, invT: 1 / 1.3 };
}

for (const [name, beta] of [['full_fkl', 0.5], ['full_rkl', 0.5], ['full_jsd', 0.3]] as const) {
  test(`${name}: = the float64 reference over the whole vocabulary; chunked (3, 4 of V = 11) = unchunked; the gradient matches finite differences`, async () => {
    const r = randomRow(3);
    const want = reference(r, name, beta);
    const whole = await run(r, name, { chunk: 11, beta });
    want.forEach((w, i) => close(whole.d[i]!, w, `${name} at position ${i}`, 1e-12));
    assert.ok(want.every((w) => w > 1e-3), 'a generic row has a divergence well above 0');
    for (const chunk of [3, 4]) {
      const c = await run(r, name, { chunk, beta });
      assert.ok(maxRelDiff(c.d, whole.d) < 1e-12 && maxRelDiff(c.dh, whole.dh) < 1e-10 && maxRelDiff(c.dw, whole.dw) < 1e-10, `chunk ${chunk} = unchunked (values and gradients)`);
    }
    // central differences of Σ D in a random direction of (student hidden, student head)
    const rng = new Rng(11);
    const [vh, vw] = [r.hs.map(() => rng.normal()), r.ws.map(() => rng.normal())];
    const eps = 1e-5;
    const at = async (s: number) => (await run(r, name, { chunk: 4, beta }, r.hs.map((x, i) => x + s * eps * vh[i]!), r.ws.map((x, i) => x + s * eps * vw[i]!))).d.reduce((a, c) => a + c, 0);
    const numeric = ((await at(1)) - (await at(-1))) / (2 * eps);
    const analytic = dot(Float64Array.from(whole.dh), Float64Array.from(vh)) + dot(Float64Array.from(whole.dw), Float64Array.from(vw));
    assert.ok(Math.abs(analytic) > 1e-3, `the gradient does not vanish (${analytic})`);
    close(analytic, numeric, 'directional derivative vs finite differences', 1e-7);
  });
}

// ---- through the tiny model's fused policy objective ----

const C = TINY.qwen2!;
const fullOpts = (name: FullDivergenceName, coef = 0.5, beta?: number, chunk?: number): PolicyLossOptions => ({ type: 'ppo', distill: { coef, full: { name, beta, chunk } } });

/** Rollouts and the teacher feeds of a real tiny teacher (another random init of the same config), float64. */
async function batchWithTeacher(dtype: 'float32' | 'float64' = 'float64') {
  const rollouts = randomRollouts(7, 3, 5).map((r) => ({ ...r, teacherLogprobs: undefined, refLogprobs: undefined }));
  const batch = packPolicyBatch(rollouts, { padId: 0, dtype, temperature: 0.8, distill: false });
  const tw = tinyWeights(C, 9);
  const teacher = await TeacherStates.create({ config: C, weights: new Map(Object.entries(asF32(tw))) }, { temperature: 1.2, runtime: { threads: 1 } });
  const tf = await teacher.feeds(batch, dtype);
  await teacher.release();
  return { rollouts, feeds: { ...batch, ...tf } };
}

test('through the tiny model: every parameter\'s gradient with full_jsd matches finite differences (fused step objective, teacher states from a teacher forward)', async () => {
  const s = await lossAndGrads(policyObjective(C, { dtype: 'float64', chunk: 7, loss: fullOpts('full_jsd', 0.5, 0.4) }));
  const { feeds } = await batchWithTeacher();
  assert.deepEqual(feeds.teacher_hidden!.dims, [...feeds.input_ids!.dims, C.hiddenSize]);
  assert.deepEqual(feeds.teacher_head!.dims, [C.vocabSize, C.hiddenSize]);
  const w = tinyWeights(C, 3);
  const at = (ws: Weights64) => evaluate(s, { ...feeds, ...weightFeeds64(C, ws) });
  const base = await at(w);
  assert.ok(base.metrics.distill_full_jsd! > 1e-4, JSON.stringify(base.metrics));
  const rng = new Rng(29);
  for (const name of s.params) {
    const v = Float64Array.from(w[name]!, () => rng.normal());
    const shifted = (sign: number) => ({ ...w, [name]: Float64Array.from(w[name]!, (x, i) => x + sign * 1e-5 * v[i]!) });
    const numeric = ((await at(shifted(1))).loss - (await at(shifted(-1))).loss) / 2e-5;
    const analytic = dot(base.grads[name]!, v);
    const err = Math.abs(analytic - numeric) / Math.max(1e-9, Math.abs(analytic) + Math.abs(numeric));
    assert.ok(err < 1e-6, `${name}: analytic ${analytic} vs FD ${numeric} (rel err ${err})`);
  }
  // padding positions may hold anything: NaN teacher states off the completion change nothing
  const mask = feeds.loss_mask!.data as Float64Array;
  const dt = C.hiddenSize;
  const poisoned = Float64Array.from(feeds.teacher_hidden!.data as Float64Array, (x, i) => (mask[Math.floor(i / dt)] ? x : NaN));
  const p = await evaluate(s, { ...feeds, ...weightFeeds64(C, w), teacher_hidden: hostTensor('float64', feeds.teacher_hidden!.dims as number[], poisoned) });
  assert.equal(p.loss, base.loss, 'NaN teacher states off the completion do not reach the loss');
  for (const name of s.params) assert.ok(p.grads[name]!.every((g, i) => g === base.grads[name]![i]), `NaN teacher states off the completion do not reach d.${name}`);
  await s.session.release();
});

for (const dtype of ['float64', 'float32'] as const) {
  test(`tiny model (${dtype}): full_fkl / full_rkl with vocab chunks of 7 (not dividing V = 300) = unchunked: loss, metrics and every gradient to 1e-6`, async () => {
    const { feeds } = await batchWithTeacher(dtype);
    const w = tinyWeights(C, 4);
    const wf = dtype === 'float64' ? weightFeeds64(C, w) : Object.fromEntries(tensorShapes(C).map(([n, sh]) => [n, hostTensor('float32', sh, Float32Array.from(w[n]!))]));
    for (const name of ['full_fkl', 'full_rkl'] as const) {
      const get = async (chunk?: number) => {
        const s = await lossAndGrads(policyObjective(C, { dtype, chunk, loss: fullOpts(name, 0.7) }));
        const r = await evaluate(s, { ...feeds, ...wf });
        await s.session.release();
        return r;
      };
      const [chunked, whole] = [await get(7), await get(undefined)];
      assert.ok(whole.metrics[`distill_${name}`]! > 1e-3, `${name}: a divergence well above 0 (${whole.metrics[`distill_${name}`]})`);
      close(chunked.loss, whole.loss, `${name} loss`, 1e-6);
      close(chunked.metrics[`distill_${name}`]!, whole.metrics[`distill_${name}`]!, `${name} metric`, 1e-6);
      for (const p of Object.keys(whole.grads)) {
        const [a, b] = [Array.from(chunked.grads[p]!), Array.from(whole.grads[p]!)];
        const scale = Math.max(...b.map(Math.abs));
        const diff = Math.max(...a.map((x, i) => Math.abs(x - b[i]!)));
        assert.ok(diff <= 1e-6 * Math.max(1, scale), `${name} ${p}: max |chunked − unchunked| ${diff} (scale ${scale})`);
      }
    }
  });
}

test('micro-batches: teacher_hidden is cut with the rows, the head and 1/τ_T are shared; the loss sums to the batch loss', async () => {
  const { feeds } = await batchWithTeacher();
  const s = await lossAndGrads(policyObjective(C, { dtype: 'float64', loss: fullOpts('full_rkl', 1) }));
  const w = weightFeeds64(C, tinyWeights(C, 5));
  const whole = await evaluate(s, { ...feeds, ...w });
  const { teacher_head, teacher_inv_temperature, ...rest } = feeds;
  const parts = splitMicroBatches(rest, 2).map((p) => ({ ...p, teacher_head: teacher_head!, teacher_inv_temperature: teacher_inv_temperature! }));
  let sum = 0;
  for (const p of parts) sum += (await evaluate(s, { ...p, ...w })).loss;
  close(sum, whole.loss, 'Σ micro-batch losses = batch loss', 1e-10);
  await s.session.release();
});

test('full divergences: β outside (0, 1) and a top-k + full pair are refused; the LoRA trainer refuses at start naming algo.blend.divergence', async () => {
  for (const beta of [0, 1, undefined])
    assert.throws(() => checkPolicyLossOptions(fullOpts('full_jsd', 1, beta)), (e: Error) => e instanceof LossConfigError && /full_jsd: β must lie strictly between 0 and 1/.test(e.message));
  assert.throws(() => checkPolicyLossOptions({ distill: { coef: 1, full: { name: 'full_kl' as never } } }), /unknown divergence "full_kl"/);
  assert.throws(() => checkPolicyLossOptions({ distill: { coef: 1, full: { name: 'full_fkl' }, divergence: { name: 'topk_fkl', topK: 2 } } }), /exclusive/);
  const init = asF32(tinyWeights(C, 1));
  await assert.rejects(createStudentTrainer(C, init, { objective: 'policy', loss: fullOpts('full_rkl'), lora: { spec: {} as never, base: {} as never } }), /algo\.blend\.divergence full_rkl: the LoRA trainer does not compute full-vocabulary divergences/);
});

for (const [family, name] of [['qwen2', 'full_jsd'], ['llama', 'full_rkl'], ['qwen3', 'full_fkl']] as const) {
  test(`layered step with ${name} = fused step (${family}, float64, 3 steps, a vocab chunk that does not divide V, micro-batches on the layered side)`, async () => {
    const c = TINY[family]!;
    const o = { dtype: 'float64' as const, weightDecay: 0.01, adamw: { maxGradNorm: 1 }, loss: { type: 'ppo' as const, refKl: { beta: 0.05 }, distill: { coef: 0.7, full: { name, beta: 0.3 } } } };
    const fused = await Trainer.create(buildPolicyTrainStep(c, o), tinyWeights(c, 3), { threads: 1, optimization: 'basic' });
    const layered = await LayeredTrainer.create(c, policyLossOnLogprobs(o), tinyWeights(c, 3), { ...o, vocabChunk: 128, optimizerChunk: 1000, full: { name, beta: 0.3, objective: policyLossOnFullD(o) }, runtime: { threads: 1, optimization: 'basic' } });
    // a teacher of another width (D_T = 48, one layer) with the student's vocabulary
    const tc = parseConfig({ architectures: ['Qwen2ForCausalLM'], vocab_size: c.vocabSize, hidden_size: 48, intermediate_size: 64, num_hidden_layers: 1, num_attention_heads: 4, num_key_value_heads: 2, tie_word_embeddings: false, initializer_range: 0.2 });
    const teacher = await TeacherStates.create({ config: tc, weights: new Map(Object.entries(asF32(tinyWeights(tc, 9)))) }, { temperature: 1.1, runtime: { threads: 1 } });
    for (let step = 0; step < 3; step++) {
      const rollouts = randomRollouts(70 + step, 6, 5).map((r) => ({ ...r, teacherLogprobs: undefined }));
      const batch = packPolicyBatch(rollouts, { padId: 0, dtype: 'float64', aggregation: 'seq_mean_token_mean', temperature: 0.8, distill: false });
      const tf = await teacher.feeds(batch, 'float64');
      const a = await fused.step({ ...batch, ...tf }, 0.01);
      const parts = step === 1 ? splitMicroBatches({ ...batch, teacher_hidden: tf.teacher_hidden! }, 2).map((p) => ({ ...p, teacher_head: tf.teacher_head!, teacher_inv_temperature: tf.teacher_inv_temperature! })) : { ...batch, ...tf };
      const b = await layered.step(parts, 0.01);
      assert.equal(b.skipped, false);
      assert.equal(tf.teacher_hidden!.dims[2], 48);
      assert.ok(a.metrics[`distill_${name}`]! > 1e-3, `${name} ${a.metrics[`distill_${name}`]}`);
      assert.deepEqual(Object.keys(b.metrics).sort(), Object.keys(a.metrics).sort());
      for (const m of Object.keys(b.metrics)) assert.ok(maxRelDiff([b.metrics[m]!], [a.metrics[m]!]) < 1e-9, `step ${step} ${m}: ${b.metrics[m]} vs ${a.metrics[m]}`);
    }
    const [pa, pb] = [fused.params(), layered.params()];
    for (const p of Object.keys(pa)) assert.ok(maxRelDiff(pb[p]!, pa[p]!) < 1e-9, `${p}: ${maxRelDiff(pb[p]!, pa[p]!)}`);
    await Promise.all([fused.release(), layered.release(), teacher.release()]);
  });
}
