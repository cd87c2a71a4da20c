// AdamW-as-ops against an independent plain-TypeScript transcription of torch.optim.AdamW and
// torch.nn.utils.clip_grad_norm_, plus the non-finite guard.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { compile } from '../exec.ts';
import { Graph, mul, sumAll, add } from '../index.ts';
import { hostTensor, type HostTensor } from '../runtime/host.ts';
import { finishTrainStep, param } from '../train/graph.ts';
import { Rng } from '../rng.ts';

/** torch.optim.AdamW.step for one tensor, float64, written from the documented algorithm. */
function torchAdamW(p: number[], g: number[], m: number[], v: number[], t: number, lr: number, wd: number, b1: number, b2: number, eps: number) {
  for (let i = 0; i < p.length; i++) {
    p[i] = p[i]! * (1 - lr * wd);
    m[i] = b1 * m[i]! + (1 - b1) * g[i]!;
    v[i] = b2 * v[i]! + (1 - b2) * g[i]! * g[i]!;
    const bc1 = 1 - Math.pow(b1, t);
    const bc2 = 1 - Math.pow(b2, t);
    const denom = Math.sqrt(v[i]!) / Math.sqrt(bc2) + eps;
    p[i] = p[i]! - (lr / bc1) * (m[i]! / denom);
  }
}

/** Two parameters, loss = Σ w·Gw + Σ b·Gb, so the gradients are exactly Gw and Gb. */
async function fixedGradientModel(opts: { maxGradNorm?: number; dtype?: 'float64' | 'float32' } = {}) {
  const dtype = opts.dtype ?? 'float64';
  const g = new Graph('adamw-test');
  const w = param(g, 'w', [2, 3], { weightDecay: 0.1, dtype });
  const b = param(g, 'b', [3], { weightDecay: 0, dtype });
  const gw = g.input('Gw', [2, 3], dtype);
  const gb = g.input('Gb', [3], dtype);
  const loss = add(sumAll(mul(w, gw)), sumAll(mul(b, gb)));
  const ts = finishTrainStep(g, loss, { adamw: { beta1: 0.9, beta2: 0.95, eps: 1e-8, maxGradNorm: opts.maxGradNorm } });
  return { ts, session: await compile(ts.graph) };
}

const f64 = (dims: number[], data: number[]) => hostTensor('float64', dims, Float64Array.from(data));
const arr = (t: HostTensor) => Array.from(t.data as Float64Array);

test('AdamW matches torch semantics over several steps (decay on w only)', async () => {
  const { session } = await fixedGradientModel();
  const ref = { w: [0.5, -1, 2, 0.25, -0.75, 1.5], b: [0.1, -0.2, 0.3] };
  const st = { mw: new Array(6).fill(0), vw: new Array(6).fill(0), mb: [0, 0, 0], vb: [0, 0, 0] };
  let cur: Record<string, HostTensor> = {
    w: f64([2, 3], ref.w), b: f64([3], ref.b),
    'm.w': f64([2, 3], st.mw), 'v.w': f64([2, 3], st.vw), 'm.b': f64([3], st.mb), 'v.b': f64([3], st.vb),
  };
  const ref2 = { w: [...ref.w], b: [...ref.b] };
  for (let t = 1; t <= 5; t++) {
    const gw = [1, -2, 0.5, 3, -0.1, 0.01].map((x) => x * t); // gradients change every step
    const gb = [0.3, -0.3, 2].map((x) => x / t);
    const lr = 0.01 * t;
    const out = await session.run({ ...cur, Gw: f64([2, 3], gw), Gb: f64([3], gb), lr: f64([], [lr]), step: f64([], [t]) });
    torchAdamW(ref2.w, gw, st.mw, st.vw, t, lr, 0.1, 0.9, 0.95, 1e-8);
    torchAdamW(ref2.b, gb, st.mb, st.vb, t, lr, 0, 0.9, 0.95, 1e-8);
    for (const [got, want] of [[arr(out['w.next']!), ref2.w], [arr(out['b.next']!), ref2.b], [arr(out['m.w.next']!), st.mw], [arr(out['v.b.next']!), st.vb]] as const) {
      got.forEach((x, i) => assert.ok(Math.abs(x - want[i]!) <= 1e-6 * Math.abs(want[i]!) + 1e-12, `step ${t} elem ${i}: ${x} vs ${want[i]}`));
    }
    assert.equal(arr(out.skipped!)[0], 0);
    cur = { w: out['w.next']!, b: out['b.next']!, 'm.w': out['m.w.next']!, 'v.w': out['v.w.next']!, 'm.b': out['m.b.next']!, 'v.b': out['v.b.next']! };
  }
});

test('global grad-norm clipping scales gradients by max_norm / (norm + 1e-6)', async () => {
  const { session } = await fixedGradientModel({ maxGradNorm: 1 });
  const gw = [3, 0, 0, 0, 0, 0];
  const gb = [0, 4, 0]; // total norm 5
  const zeros6 = new Array(6).fill(0);
  const out = await session.run({
    w: f64([2, 3], zeros6), b: f64([3], [0, 0, 0]), 'm.w': f64([2, 3], zeros6), 'v.w': f64([2, 3], zeros6),
    'm.b': f64([3], [0, 0, 0]), 'v.b': f64([3], [0, 0, 0]), Gw: f64([2, 3], gw), Gb: f64([3], gb), lr: f64([], [0.1]), step: f64([], [1]),
  });
  assert.ok(Math.abs(arr(out.grad_norm!)[0]! - 5) < 1e-12, 'grad_norm reports the pre-clip norm');
  const c = 1 / (5 + 1e-6);
  // first moment after one step = (1-β1)·c·g
  assert.ok(Math.abs(arr(out['m.w.next']!)[0]! - 0.1 * c * 3) < 1e-12);
  assert.ok(Math.abs(arr(out['v.b.next']!)[1]! - 0.05 * c * c * 16) < 1e-12);
});

test('a NaN gradient or loss leaves parameters and moments bit-identical and reports the skip', async () => {
  const { session } = await fixedGradientModel({ dtype: 'float64' });
  const base = {
    w: f64([2, 3], [1, 2, 3, 4, 5, 6]), b: f64([3], [7, 8, 9]), 'm.w': f64([2, 3], [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]),
    'v.w': f64([2, 3], [1, 1, 1, 1, 1, 1]), 'm.b': f64([3], [0.1, 0.1, 0.1]), 'v.b': f64([3], [2, 2, 2]), lr: f64([], [0.1]), step: f64([], [3]),
  };
  for (const bad of [NaN, Infinity, -Infinity]) {
    const out = await session.run({ ...base, Gw: f64([2, 3], [1, 1, bad, 1, 1, 1]), Gb: f64([3], [1, 1, 1]) });
    assert.equal(arr(out.skipped!)[0], 1, `skip reported for ${bad}`);
    for (const name of ['w', 'b', 'm.w', 'v.w', 'm.b', 'v.b'] as const) {
      const before = Buffer.from((base[name].data as Float64Array).buffer);
      const after = Buffer.from((out[`${name}.next`]!.data as Float64Array).buffer);
      assert.ok(before.equals(after), `${name} unchanged after a ${bad} gradient`);
    }
  }
  const ok = await session.run({ ...base, Gw: f64([2, 3], [1, 1, 1, 1, 1, 1]), Gb: f64([3], [1, 1, 1]) });
  assert.equal(arr(ok.skipped!)[0], 0, 'a finite step is applied');
  assert.notDeepEqual(arr(ok['w.next']!), arr(base.w));
});

test('hostAdamW (JS, host arrays) = the chunked graph AdamW to float32 rounding, clipping on, and skips on a non-finite loss', async () => {
  const { hostAdamW } = await import('./host.ts');
  const { ChunkedAdamW } = await import('./chunked.ts');
  const rng = new Rng(5);
  const make = () => {
    const f = (s: number) => Float32Array.from({ length: 3000 }, () => s * rng.normal());
    return [{ name: 'a', p: f(1), g: f(3), m: f(0.1), v: Float32Array.from({ length: 3000 }, () => Math.abs(rng.normal())), weightDecay: 0.1 }];
  };
  const a = make();
  const b = a.map((s) => ({ ...s, p: s.p.slice(), g: s.g.slice(), m: s.m.slice(), v: s.v.slice() }));
  const cfg = { maxGradNorm: 1 };
  const graph = await ChunkedAdamW.create(cfg, { chunk: 1000, threads: 1 });
  for (let t = 1; t <= 3; t++) {
    const ra = hostAdamW(a, 0.01, t, true, cfg);
    const rb = await graph.step(b, 0.01, t, await graph.gradNormSq(b), true);
    assert.ok(Math.abs(ra.gradNorm - rb.gradNorm) <= 1e-5 * rb.gradNorm, `grad norm ${ra.gradNorm} vs ${rb.gradNorm}`);
    assert.ok(ra.gradNorm > 1, 'clipping is active');
  }
  for (const k of ['p', 'm', 'v'] as const) {
    let worst = 0;
    for (let i = 0; i < 3000; i++) worst = Math.max(worst, Math.abs(a[0]![k][i]! - b[0]![k][i]!) / Math.max(1e-3, Math.abs(b[0]![k][i]!)));
    assert.ok(worst < 1e-4, `${k}: max rel diff ${worst}`);
  }
  const before = a[0]!.p.slice();
  assert.equal(hostAdamW(a, 0.01, 4, false, cfg).skipped, true);
  assert.deepEqual(a[0]!.p, before, 'a skipped step writes nothing');
  await graph.release();
});
