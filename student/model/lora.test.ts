// LoRA: gradients of A and B against finite differences (float64, base as inputs); the adapted
// model's log-probs from the frozen base in a file (external-data initializers, Gemm, chunked head)
// against the merged model's through the ordinary path; PEFT's names and shapes written out by
// hand; and the LoRA trainer: the base file's bytes never change, while the adapters learn.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { compile } from '../../engine/exec.ts';
import { Rng } from '../../engine/rng.ts';
import { hostTensor } from '../../engine/runtime/host.ts';
import { dot } from '../../engine/testing/fd.ts';
import { Graph } from '../../engine/index.ts';
import { packPolicyBatch, splitMicroBatches } from '../train/batch.ts';
import { Trainer } from '../../engine/train/trainer.ts';
import { buildPolicyTrainStep } from '../train/step.ts';
import { TINY, asF32, evaluate, lossAndGrads, randomRollouts, tinyWeights, weightFeeds64 } from '../train/fixtures.ts';
import { LoraTrainer } from '../train/lora-trainer.ts';
import { policyObjective } from '../train/step.ts';
import { parseConfig, tensorShapes } from './config.ts';
import { BASE_FILE, frozenWeights, inputLoraWeights, writeFrozenBase } from './frozen.ts';
import { type LoraSpec, PEFT_PREFIX, initLora, loadPeftAdapter, loraShapes, mergeLora, savePeftAdapter } from './lora.ts';
import { alignedLogprobs, sequenceInputs } from './score.ts';
import { declareWeights } from './lm.ts';
import { packSequences, scalarF32 } from './runner.ts';

const ALL: LoraSpec = { rank: 3, alpha: 6, targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] };

/** Adapters with B ≠ 0 (a fresh B is zero, which would make A's gradient vanish). */
function randomAdapters(c: typeof TINY.qwen3, spec: LoraSpec, seed: number): Record<string, Float64Array> {
  const rng = new Rng(seed);
  return Object.fromEntries(loraShapes(c!, spec).map(([n, s]) => [n, Float64Array.from({ length: s.reduce((a, b) => a * b, 1) }, () => 0.3 * rng.normal())]));
}

test('LoRA A and B gradients match finite differences (policy loss, float64, every target)', async () => {
  const c = TINY.qwen2!; // q/k/v biases: adapters sit beside a biased projection
  const obj = policyObjective(c, { dtype: 'float64', weights: inputLoraWeights(ALL, { trainable: true }), loss: { type: 'ppo', refKl: { beta: 0.1 }, distill: { coef: 0.5 } } });
  const s = await lossAndGrads(obj);
  assert.deepEqual([...s.params].sort(), loraShapes(c, ALL).map(([n]) => n).sort(), 'only the adapters are trained');
  const base = tinyWeights(c, 1);
  const ad = randomAdapters(c, ALL, 2);
  const batch = packPolicyBatch(randomRollouts(5, 3, 5), { padId: 0, dtype: 'float64', aggregation: 'token_mean', temperature: 0.9 });
  const feeds = (a: Record<string, Float64Array>) => ({ ...batch, ...weightFeeds64(c, base), ...Object.fromEntries(loraShapes(c, ALL).map(([n, sh]) => [n, hostTensor('float64', sh, a[n]!)])) });
  const at0 = await evaluate(s, feeds(ad));
  const rng = new Rng(3);
  const H = 1e-5;
  for (const name of s.params) {
    const v = Float64Array.from(ad[name]!, () => rng.normal());
    const shifted = (sign: number) => ({ ...ad, [name]: Float64Array.from(ad[name]!, (x, i) => x + sign * H * v[i]!) });
    const numeric = ((await evaluate(s, feeds(shifted(1)))).loss - (await evaluate(s, feeds(shifted(-1)))).loss) / (2 * H);
    const analytic = dot(at0.grads[name]!, v);
    const err = Math.abs(analytic - numeric) / Math.max(1e-9, Math.abs(analytic) + Math.abs(numeric));
    assert.ok(err < 1e-6 && Math.abs(analytic) > 1e-9, `${name}: analytic ${analytic} vs FD ${numeric} (rel err ${err})`);
  }
  await s.session.release();
});

test('frozen base + adapters (initializers in a file) give the merged model\'s log-probs within 1e-5', async () => {
  const c = parseConfig({ architectures: ['Qwen3ForCausalLM'], vocab_size: 1100, hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, head_dim: 8, tie_word_embeddings: true, initializer_range: 0.2 });
  const dir = mkdtempSync(path.join(tmpdir(), 'opd-lora-'));
  try {
    const base = new Map(Object.entries(asF32(tinyWeights(c, 4))));
    const adapters = new Map(Object.entries(asF32(randomAdapters(c, ALL, 5))));
    const frozen = await writeFrozenBase(dir, c, base);
    const score = (declare: 'frozen' | 'merged') => {
      const g = new Graph(`score-${declare}`);
      const p = declare === 'frozen' ? frozenWeights(frozen, ALL)(g, c, 'float32') : declareWeights(g, c, { trainable: false });
      g.output('logprobs', alignedLogprobs(c, p, sequenceInputs(g)).logprobs);
      return g;
    };
    const seqs = packSequences([[5, 900, 17, 1099, 3], [8, 9, 1000]], 0);
    const inputs = { input_ids: seqs.input_ids, attention_mask: seqs.attention_mask, position_ids: seqs.position_ids, inv_temperature: scalarF32(1) };
    const fs = await compile(score('frozen'), { modelDir: dir, disablePrepacking: true });
    const adapterFeeds = Object.fromEntries(loraShapes(c, ALL).map(([n, sh]) => [n, hostTensor('float32', sh, adapters.get(n)!)]));
    const got = (await fs.run({ ...inputs, ...adapterFeeds })).logprobs!.data as Float32Array;
    const merged = mergeLora(c, base, adapters, ALL);
    const ms = await compile(score('merged'));
    const want = (await ms.run({ ...inputs, ...Object.fromEntries(tensorShapes(c).map(([n, sh]) => [n, hostTensor('float32', sh, merged.get(n)!)])) })).logprobs!.data as Float32Array;
    const mask = seqs.attention_mask.data;
    let worst = 0;
    for (let i = 0; i < got.length; i++) if (mask[i] && i % seqs.input_ids.dims[1]! !== 0) worst = Math.max(worst, Math.abs(got[i]! - want[i]!));
    assert.ok(worst < 1e-5, `max |Δ log p| ${worst}`);
    assert.ok(Math.abs(want[1]!) > 0.1, 'log-probs are not trivially 0');
    await Promise.all([fs.release(), ms.release()]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('PEFT adapter directory: names, shapes and config as PEFT writes them; reads back', async () => {
  const c = TINY.llama!; // D 32, F 64, 4 heads × Dh 8, 2 KV heads
  const spec: LoraSpec = { rank: 4, alpha: 8, targets: ['q_proj', 'v_proj', 'down_proj'] };
  const dir = mkdtempSync(path.join(tmpdir(), 'opd-peft-'));
  try {
    const adapters = initLora(c, spec, 0);
    await savePeftAdapter(dir, c, spec, adapters, 'Qwen/Qwen3-0.6B');
    const cfg = JSON.parse(readFileSync(path.join(dir, 'adapter_config.json'), 'utf8'));
    assert.equal(cfg.peft_type, 'LORA');
    assert.equal(cfg.task_type, 'CAUSAL_LM');
    assert.equal(cfg.r, 4);
    assert.equal(cfg.lora_alpha, 8);
    assert.deepEqual(cfg.target_modules, ['q_proj', 'v_proj', 'down_proj']);
    assert.equal(cfg.base_model_name_or_path, 'Qwen/Qwen3-0.6B');
    // PEFT's rule: base_model.model.<module path>.lora_A.weight [r, in_features], lora_B.weight [out_features, r]
    const header = readFileSync(path.join(dir, 'adapter_model.safetensors'));
    const json = JSON.parse(header.subarray(8, 8 + Number(header.readBigUInt64LE(0))).toString('utf8'));
    const want: Record<string, number[]> = {};
    for (let i = 0; i < 2; i++) {
      want[`base_model.model.model.layers.${i}.self_attn.q_proj.lora_A.weight`] = [4, 32];
      want[`base_model.model.model.layers.${i}.self_attn.q_proj.lora_B.weight`] = [32, 4];
      want[`base_model.model.model.layers.${i}.self_attn.v_proj.lora_A.weight`] = [4, 32];
      want[`base_model.model.model.layers.${i}.self_attn.v_proj.lora_B.weight`] = [16, 4];
      want[`base_model.model.model.layers.${i}.mlp.down_proj.lora_A.weight`] = [4, 64];
      want[`base_model.model.model.layers.${i}.mlp.down_proj.lora_B.weight`] = [32, 4];
    }
    const got = Object.fromEntries(Object.entries(json).filter(([k]) => k !== '__metadata__').map(([k, v]) => [k, (v as { shape: number[]; dtype: string }).shape]));
    assert.deepEqual(got, want);
    for (const [k, v] of Object.entries(json)) if (k !== '__metadata__') assert.equal((v as { dtype: string }).dtype, 'F32');
    assert.ok(Object.keys(want).every((k) => k.startsWith(PEFT_PREFIX)));
    // B starts at zero, A within PEFT's kaiming-uniform bound 1/√in
    const a = adapters.get('model.layers.0.mlp.down_proj.lora_A.weight')!;
    assert.ok(a.every((x) => Math.abs(x) <= 1 / Math.sqrt(64)) && a.some((x) => x !== 0));
    assert.ok(adapters.get('model.layers.1.self_attn.q_proj.lora_B.weight')!.every((x) => x === 0));
    const back = loadPeftAdapter(dir, c);
    assert.deepEqual(back.spec, spec);
    for (const [k, v] of adapters) assert.deepEqual(back.adapters.get(k), v);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('LoRA trainer: the base file stays bit-identical over steps while the adapters move and the loss falls', async () => {
  const c = parseConfig({ architectures: ['Qwen3ForCausalLM'], vocab_size: 300, hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, head_dim: 8, tie_word_embeddings: true, initializer_range: 0.2 });
  const dir = mkdtempSync(path.join(tmpdir(), 'opd-lora-train-'));
  try {
    const base = new Map(Object.entries(asF32(tinyWeights(c, 6))));
    const copy = new Map([...base].map(([k, v]) => [k, v.slice()]));
    const frozen = await writeFrozenBase(dir, c, base);
    const sha = () => createHash('sha256').update(readFileSync(path.join(dir, BASE_FILE))).digest('hex');
    const before = sha();
    const adapters = Object.fromEntries(initLora(c, ALL, 1));
    const trainer = await LoraTrainer.create(c, frozen, ALL, adapters, { objective: 'policy', loss: {}, runtime: { threads: 1 } });
    const rollouts = randomRollouts(8, 4, 5, 2).map(({ refLogprobs: _r, teacherLogprobs: _t, ...r }) => ({ ...r, advantages: r.completionIds.map(() => 1) }));
    const feeds = packPolicyBatch(rollouts, { padId: 0 });
    const first = await trainer.step(splitMicroBatches(feeds, 4), 0.05); // micro-batches: the first writes, later ones add
    let last = first;
    for (let i = 0; i < 4; i++) last = await trainer.step(feeds, 0.05);
    assert.equal(trainer.t, 5);
    assert.ok(last.loss < first.loss, `loss ${first.loss} -> ${last.loss}`);
    assert.deepEqual(trainer.paramSpecs.map((p) => p.name).sort(), loraShapes(c, ALL).map(([n]) => n).sort());
    assert.ok(Object.entries(trainer.params()).some(([k, v]) => k.endsWith('lora_B.weight') && v.some((x) => x !== 0)), 'B moved off zero');
    assert.equal(sha(), before, 'base.bin unchanged');
    for (const [k, v] of base) assert.deepEqual(v, copy.get(k), `base tensor ${k} unchanged`);
    await trainer.release();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('LoRA trainer: a token id outside the vocabulary is refused, naming the row, position and id (the trunk reads embedding rows on the host)', async () => {
  const c = parseConfig({ architectures: ['Qwen3ForCausalLM'], vocab_size: 300, hidden_size: 32, intermediate_size: 64, num_hidden_layers: 1, num_attention_heads: 4, num_key_value_heads: 2, head_dim: 8, tie_word_embeddings: true, initializer_range: 0.2 });
  const dir = mkdtempSync(path.join(tmpdir(), 'opd-lora-oov-'));
  try {
    const frozen = await writeFrozenBase(dir, c, new Map(Object.entries(asF32(tinyWeights(c, 6)))));
    const trainer = await LoraTrainer.create(c, frozen, ALL, Object.fromEntries(initLora(c, ALL, 1)), { objective: 'policy', loss: {}, runtime: { threads: 1 } });
    const rollouts = randomRollouts(2, 4, 5, 2).map(({ refLogprobs: _r, teacherLogprobs: _t, ...r }) => ({ ...r, advantages: r.completionIds.map(() => 1) }));
    rollouts[1] = { ...rollouts[1]!, completionIds: [300, ...rollouts[1]!.completionIds.slice(1)] };
    const feeds = packPolicyBatch(rollouts, { padId: 0 });
    await assert.rejects(trainer.step(feeds, 0.01), /input_ids\[1\]\[\d+\] = 300 is outside the vocabulary \[0, 300\)/);
    await trainer.release();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('LoRA trainer (frozen base in a file, chunked head sessions) = the fused step of the same objective with the base as inputs, whole batch and in 3 micro-batches', async () => {
  const c = parseConfig({ architectures: ['Qwen2ForCausalLM'], vocab_size: 1100, hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, tie_word_embeddings: false, initializer_range: 0.2 });
  const dir = mkdtempSync(path.join(tmpdir(), 'opd-lora-eq-'));
  try {
    const base = new Map(Object.entries(asF32(tinyWeights(c, 8))));
    const frozen = await writeFrozenBase(dir, c, base, { headRows: 256 }); // 5 head chunks, untied lm_head
    const start = asF32(randomAdapters(c, ALL, 9));
    const loss = { type: 'ppo' as const };
    const o = { weightDecay: 0.01, adamw: { maxGradNorm: 1 } };
    const lora = await LoraTrainer.create(c, frozen, ALL, start, { objective: 'policy', loss, ...o, runtime: { threads: 1 } });
    // micro-batches of different widths: each trunk run pairs micro-batch i's backward with i+1's forward
    const micro = await LoraTrainer.create(c, frozen, ALL, start, { objective: 'policy', loss, ...o, runtime: { threads: 1 } });
    const fused = await Trainer.create(buildPolicyTrainStep(c, { ...o, loss, weights: inputLoraWeights(ALL, { trainable: true, weightDecay: 0.01 }) }), start, { threads: 1 });
    const baseFeeds = Object.fromEntries(tensorShapes(c).map(([n, sh]) => [n, hostTensor('float32', sh, base.get(n)!)]));
    for (let step = 0; step < 3; step++) {
      const rollouts = randomRollouts(20 + step, 5, 5, 1).map(({ refLogprobs: _r, teacherLogprobs: _t, ...r }) => ({ ...r, completionIds: r.completionIds.map((x) => (x * 3) % 1100) }));
      const feeds = packPolicyBatch(rollouts, { padId: 0, temperature: 0.7 });
      const a = await fused.step({ ...feeds, ...baseFeeds }, 0.01);
      const b = await lora.step(feeds, 0.01);
      const parts = splitMicroBatches(feeds, 3);
      assert.notEqual(parts[0]!.input_ids!.dims[1], parts[2]!.input_ids!.dims[1], 'micro-batches of different widths');
      const m = await micro.step(parts, 0.01);
      for (const k of ['loss', 'grad_norm', 'clip_fraction', 'entropy_estimate']) {
        assert.ok(Math.abs(a.metrics[k]! - b.metrics[k]!) <= 1e-4 * Math.max(1, Math.abs(a.metrics[k]!)), `step ${step} ${k}: ${b.metrics[k]} vs ${a.metrics[k]}`);
        if (k !== 'clip_fraction' && k !== 'entropy_estimate') assert.ok(Math.abs(a.metrics[k]! - m.metrics[k]!) <= 1e-4 * Math.max(1, Math.abs(a.metrics[k]!)), `micro-batches, step ${step} ${k}: ${m.metrics[k]} vs ${a.metrics[k]}`);
      }
    }
    const [pa, pb, pm] = [fused.params(), lora.params(), micro.params()];
    for (const k of Object.keys(pa)) {
      let worst = 0;
      for (let i = 0; i < pa[k]!.length; i++) worst = Math.max(worst, Math.abs(pa[k]![i]! - pb[k]![i]!), Math.abs(pa[k]![i]! - pm[k]![i]!));
      assert.ok(worst < 1e-5, `${k}: max |Δ| ${worst}`);
    }
    await Promise.all([lora.release(), micro.release(), fused.release()]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
