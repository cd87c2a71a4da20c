// Finite-difference check of every VJP rule, one table row per primitive use.
//
// For a row f with float inputs x_i and a random cotangent r (a graph input shaped like f's output),
// one ONNX graph outputs L = Σ f(x)·r and grad(L, x_i). With a random direction v_i per input,
//   analytic = Σ_i <dL/dx_i, v_i>,   numeric = (L(x + h·v) − L(x − h·v)) / 2h,
// both from the same ONNX Runtime session (three runs). Rows run in float64 with h = 1e-5, where the
// two agree to ~1e-9 (tolerance 1e-6); ops that ONNX Runtime's CPU provider only has in float32 run
// in float32 on dyadic inputs (see engine/testing/fd.ts) with a looser tolerance justified per row.
// L is always accumulated in float64 (f's output is cast up), so only f's own rounding is noise.
// Not covered here: behaviour at kinks and ties (Abs at 0, Max ties), which FD cannot judge.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { compile } from './exec.ts';
import {
  type DType,
  type Shape,
  type Tensor,
  Graph,
  abs,
  add,
  cast,
  clip,
  concat,
  cos,
  cumsum,
  div,
  erf,
  evalDim,
  exp,
  expand,
  gather,
  gatherElements,
  gatherND,
  grad,
  identity,
  isFloat,
  log,
  logSoftmax,
  matmul,
  gemmT,
  maximum,
  minimum,
  mul,
  neg,
  pad,
  pow,
  reciprocal,
  reduceMax,
  reduceMean,
  reduceSum,
  reduceSumSquare,
  reshape,
  scatterElements,
  scatterND,
  sigmoid,
  sin,
  slice,
  softmax,
  sqrt,
  sub,
  sumAll,
  tanh,
  topK,
  transpose,
  trilu,
  where,
} from './index.ts';
import { allPrimitives } from './ir/primitive.ts';
import { attention, causalBias } from './nn/layers.ts';
import { type HostTensor, hostTensor } from './runtime/host.ts';
import { DYADIC_STEP, type Kind, direction, dot, relErr, rngFor, sample } from './testing/fd.ts';

/** An input: a shape (normal draws) or a shape with a sampling kind. */
type In = Shape | { shape: Shape; kind: Kind };
const pos = (shape: Shape): In => ({ shape, kind: 'positive' });
const distinct = (shape: Shape): In => ({ shape, kind: 'distinct' });

interface Row {
  name: string;
  in: In[];
  f: (x: Tensor[], g: Graph) => Tensor;
  /** Input dtype; float32 only where ONNX Runtime's CPU provider lacks a float64 kernel. */
  dtype?: DType;
  /** Dyadic inputs, directions and step (implied by float32). */
  dyadic?: boolean;
  /** Values of symbolic dims in the feeds. */
  dims?: Record<string, number>;
  /** A known engine bug this row exposes: it is reported but does not fail the suite. */
}

const ids = (g: Graph, shape: number[], v: number[]) => g.constant(BigInt64Array.from(v, BigInt), shape, 'int64');
const mask = (g: Graph, shape: number[], v: number[]) => g.constant(Uint8Array.from(v), shape, 'bool');
const unaries = { neg, exp, sigmoid, tanh, sin, cos, abs, identity };

const rows: Row[] = [
  // Broadcasting binaries: both operands differentiable, gradients summed back to each shape.
  { name: 'Add [3,1,4] + [2,4]', in: [[3, 1, 4], [2, 4]], f: ([a, b]) => add(a!, b!) },
  { name: 'Add [2,3] + scalar input', in: [[2, 3], []], f: ([a, s]) => add(a!, s!) },
  { name: 'Sub [2,3] - [3]', in: [[2, 3], [3]], f: ([a, b]) => sub(a!, b!) },
  { name: 'Sub scalar - [2,3]', in: [[], [2, 3]], f: ([s, b]) => sub(s!, b!) },
  { name: 'Mul [3,1,4] * [2,4]', in: [[3, 1, 4], [2, 4]], f: ([a, b]) => mul(a!, b!) },
  { name: 'Div [3,1,4] / [2,4]', in: [[3, 1, 4], pos([2, 4])], f: ([a, b]) => div(a!, b!) },
  { name: 'Div [2,3] / scalar', in: [[2, 3], pos([])], f: ([a, s]) => div(a!, s!) },
  { name: 'Pow base^exp, both differentiable', in: [pos([2, 3]), [3]], f: ([a, b]) => pow(a!, b!) },
  { name: 'Pow x^3, constant exponent', in: [[2, 3]], f: ([x]) => pow(x!, 3) },
  { name: 'Max [3,1,4] vs [2,4]', in: [[3, 1, 4], [2, 4]], f: ([a, b]) => maximum(a!, b!) },
  { name: 'Min [2,3] vs [3]', in: [[2, 3], [3]], f: ([a, b]) => minimum(a!, b!) },
  { name: 'clip to [-0.5, 0.5]', in: [[3, 4]], f: ([x]) => clip(x!, -0.5, 0.5) },
  {
    name: 'Where [3,2,4] cond wider than both, [4] vs [2,1]',
    in: [[4], [2, 1]],
    f: ([a, b], g) => where(mask(g, [3, 2, 4], Array.from({ length: 24 }, (_, i) => (i % 3 === 0 ? 1 : 0))), a!, b!),
  },
  {
    name: 'Where [3,1,4] cond, [2,4] vs scalar',
    in: [[2, 4], []],
    f: ([a, s], g) => where(mask(g, [3, 1, 4], [1, 0, 0, 1, 0, 1, 1, 0, 1, 1, 0, 0]), a!, s!),
  },

  // Unaries.
  ...Object.entries(unaries).map(([name, op]): Row => ({ name, in: [[3, 4]], f: ([x]) => op(x!) })),
  { name: 'log on positive inputs', in: [pos([3, 4])], f: ([x]) => log(x!) },
  { name: 'sqrt on positive inputs', in: [pos([3, 4])], f: ([x]) => sqrt(x!) },
  { name: 'reciprocal', in: [pos([3, 4])], f: ([x]) => reciprocal(x!) },
  // float32: ORT's CPU provider has no float64 Erf kernel. With h = 2^-7 on dyadic inputs the
  // truncation error h²/6·|erf'''/erf'| is ≲ 2e-5 relative and the float32 rounding of 12 outputs
  // (≤ 6e-8 each, divided by 2h) ≲ 3e-5, so the float32 tolerance is 2e-4 (observed: ~3e-7).
  { name: 'erf (float32)', in: [[3, 4]], dtype: 'float32', f: ([x]) => erf(x!) },
  // Dyadic x makes x ± h·v exact in float32, so the round trip is exact and f is quadratic: FD is exact.
  {
    name: 'Cast float64 -> float32 -> float64 round trip',
    in: [[3, 4]],
    dyadic: true,
    f: ([x]) => mul(cast(cast(x!, 'float32'), 'float64'), x!),
  },

  // Reductions.
  { name: 'ReduceSum axes [0,2], keepdims false', in: [[3, 4, 5]], f: ([x]) => reduceSum(x!, [0, 2], false) },
  { name: 'ReduceSum axis 1, keepdims true', in: [[3, 4, 5]], f: ([x]) => reduceSum(x!, 1, true) },
  { name: 'ReduceMean axes [0,2], keepdims true', in: [[3, 4, 5]], f: ([x]) => reduceMean(x!, [0, 2], true) },
  { name: 'ReduceMean axis -1, keepdims false', in: [[3, 4, 5]], f: ([x]) => reduceMean(x!, -1, false) },
  { name: 'ReduceMax axis 1, keepdims false (distinct)', in: [distinct([3, 4, 5])], f: ([x]) => reduceMax(x!, 1, false) },
  { name: 'ReduceMax axes [0,2], keepdims true (distinct)', in: [distinct([3, 4, 5])], f: ([x]) => reduceMax(x!, [0, 2], true) },
  { name: 'ReduceSumSquare axes [1,2]', in: [[3, 4, 5]], f: ([x]) => reduceSumSquare(x!, [1, 2], false) },
  { name: 'sumAll to a scalar', in: [[3, 4]], f: ([x]) => sumAll(mul(x!, x!)) },

  // Shape ops.
  { name: 'Reshape [2,3,4] -> [6,4]', in: [[2, 3, 4]], f: ([x]) => reshape(x!, [6, 4]) },
  { name: 'Transpose perm [2,0,1]', in: [[2, 3, 4]], f: ([x]) => transpose(x!, [2, 0, 1]) },
  { name: 'Expand [3,1] -> [2,3,4]', in: [[3, 1]], f: ([x]) => expand(x!, [2, 3, 4]) },
  { name: 'Concat of 3 inputs on axis 1', in: [[2, 1, 3], [2, 3, 3], [2, 2, 3]], f: (xs) => concat(xs, 1) },
  { name: 'Slice the middle of both axes', in: [[4, 6]], f: ([x]) => slice(x!, [1, 2], [3, 5], [0, 1]) },
  { name: 'Pad [2,3] by [1,0 | 2,1]', in: [[2, 3]], f: ([x]) => pad(x!, [1, 0, 2, 1]) },
  {
    name: 'ReduceSum over no axes is the identity',
    in: [[3, 5]],
    f: ([x]) => reduceSum(x!, [], false),
  },

  // Indexing: gathers scatter-add back, so repeated indices must accumulate.
  { name: 'Gather axis 0, repeated indices', in: [[4, 3]], f: ([x], g) => gather(x!, ids(g, [2, 3], [0, 2, 2, 3, 0, 2])) },
  { name: 'Gather axis 0, negative indices', in: [[4, 3]], f: ([x], g) => gather(x!, ids(g, [3], [-1, 0, -1])) },
  { name: 'GatherElements axis 1, repeats', in: [[3, 4]], f: ([x], g) => gatherElements(x!, ids(g, [3, 2], [1, 1, 0, 3, 2, 0]), 1) },
  { name: 'GatherElements axis 0', in: [[3, 4]], f: ([x], g) => gatherElements(x!, ids(g, [2, 4], [2, 0, 1, 2, 2, 1, 0, 0]), 0) },
  {
    name: 'ScatterElements none, axis 1',
    in: [[3, 4], [3, 2]],
    f: ([x, u], g) => scatterElements(x!, ids(g, [3, 2], [0, 2, 3, 1, 2, 0]), u!, 1, 'none'),
  },
  {
    name: 'ScatterElements add, duplicate indices',
    in: [[3, 4], [3, 2]],
    f: ([x, u], g) => scatterElements(x!, ids(g, [3, 2], [1, 1, 0, 3, 2, 2]), u!, 1, 'add'),
  },
  { name: 'ScatterND none, rows', in: [[4, 3], [2, 3]], f: ([x, u], g) => scatterND(x!, ids(g, [2, 1], [1, 3]), u!, 'none') },
  {
    name: 'ScatterND add, duplicate elements',
    in: [[4, 3], [3]],
    f: ([x, u], g) => scatterND(x!, ids(g, [3, 2], [0, 1, 2, 2, 0, 1]), u!, 'add'),
  },
  { name: 'GatherND pairs, repeated', in: [[3, 4, 2]], f: ([x], g) => gatherND(x!, ids(g, [3, 2], [0, 1, 2, 3, 0, 1])) },
  { name: 'GatherND rows', in: [[3, 4, 2]], f: ([x], g) => gatherND(x!, ids(g, [2, 1], [1, 1])) },
  { name: 'TopK k=2 last axis (distinct)', in: [distinct([3, 5])], f: ([x]) => topK(x!, 2, -1)[0] },
  { name: 'TopK k=2 axis 0 (distinct)', in: [distinct([4, 3])], f: ([x]) => topK(x!, 2, 0)[0] },

  // MatMul, softmax family, cumsum, trilu.
  { name: 'Gemm transB [3,4] · [5,4]ᵀ', in: [[3, 4], [5, 4]], f: ([a, b]) => gemmT(a!, b!) },
  { name: 'MatMul [3,4] @ [4,5]', in: [[3, 4], [4, 5]], f: ([a, b]) => matmul(a!, b!) },
  { name: 'MatMul batched broadcast [2,1,3,4] @ [3,4,5]', in: [[2, 1, 3, 4], [3, 4, 5]], f: ([a, b]) => matmul(a!, b!) },
  { name: 'MatMul rank-2 weight fast path [2,3,4] @ [4,5]', in: [[2, 3, 4], [4, 5]], f: ([a, b]) => matmul(a!, b!) },
  { name: 'MatMul [3,4] @ batched [2,4,5]', in: [[3, 4], [2, 4, 5]], f: ([a, b]) => matmul(a!, b!) },
  { name: 'Softmax last axis', in: [[3, 5]], f: ([x]) => softmax(x!, -1) },
  { name: 'Softmax axis 0 of [3,4,2]', in: [[3, 4, 2]], f: ([x]) => softmax(x!, 0) },
  { name: 'LogSoftmax last axis', in: [[3, 5]], f: ([x]) => logSoftmax(x!, -1) },
  { name: 'LogSoftmax axis 1 of [3,4,2]', in: [[3, 4, 2]], f: ([x]) => logSoftmax(x!, 1) },
  { name: 'CumSum forward, axis 1', in: [[3, 5]], f: ([x]) => cumsum(x!, 1) },
  { name: 'CumSum reverse, axis 1', in: [[3, 5]], f: ([x]) => cumsum(x!, 1, { reverse: true }) },
  { name: 'CumSum exclusive, axis 0', in: [[3, 5]], f: ([x]) => cumsum(x!, 0, { exclusive: true }) },
  { name: 'CumSum reverse exclusive, axis -1', in: [[3, 5]], f: ([x]) => cumsum(x!, -1, { reverse: true, exclusive: true }) },
  { name: 'Trilu upper k=1, batched', in: [[2, 4, 5]], f: ([x]) => trilu(x!, true, 1) },
  { name: 'Trilu lower k=-1', in: [[4, 5]], f: ([x]) => trilu(x!, false, -1) },
  { name: 'Trilu lower k=0', in: [[4, 4]], f: ([x]) => trilu(x!, false, 0) },

  // Graph structure: fan-out and symbolic dims.
  { name: 'fan-out mul(x, x)', in: [[3, 4]], f: ([x]) => mul(x!, x!) },
  { name: 'fan-out x·sin(x) + x', in: [[3, 4]], f: ([x]) => add(mul(x!, sin(x!)), x!) },
  { name: 'symbolic [B,3] * [3], mean over B', in: [['B', 3], [3]], dims: { B: 2 }, f: ([x, w]) => reduceMean(mul(x!, w!), 0, true) },
  { name: 'symbolic [B,3] output', in: [['B', 3]], dims: { B: 2 }, f: ([x]) => tanh(x!) },
  { name: 'symbolic Slice [B,6] -> [B-1,3]', in: [['B', 6]], dims: { B: 3 }, f: ([x]) => slice(x!, [1, 2], ['B', 5], [0, 1]) },
  { name: 'symbolic Concat [B,2] ++ [T,2]', in: [['B', 2], ['T', 2]], dims: { B: 3, T: 2 }, f: (xs) => concat(xs, 0) },
  {
    name: 'symbolic fast path [B,2,3] @ [3,4]',
    in: [['B', 2, 3], [3, 4]],
    dims: { B: 2 },
    f: ([x, w]) => matmul(x!, w!),
  },

  // Composites.
  {
    name: 'token log-probs: logSoftmax then gatherElements of ids',
    in: [[2, 3, 7]],
    f: ([logits], g) => gatherElements(logSoftmax(logits!, -1), ids(g, [2, 3, 1], [0, 6, 3, 3, 1, 5]), -1),
  },
  {
    name: 'RMS norm x·(mean(x²)+eps)^-0.5·w',
    in: [[2, 3, 8], [8]],
    f: ([x, w]) => mul(mul(x!, pow(add(reduceMean(mul(x!, x!), -1, true), 1e-6), -0.5)), w!),
  },
  {
    name: 'causal attention with grouped KV heads',
    in: [[1, 2, 3, 4], [1, 1, 3, 4], [1, 1, 3, 4]],
    f: ([q, k, v], g) => attention(q!, k!, v!, causalBias(g, 3, 'float64')),
  },
];

function build(row: Row) {
  const dtype = row.dtype ?? 'float64';
  const g = new Graph(row.name.replace(/\W+/g, '_'));
  const xs = row.in.map((spec, i) => g.input(`x${i}`, 'shape' in spec ? spec.shape : spec, dtype));
  return { g, xs, y: row.f(xs, g) };
}

async function check(row: Row): Promise<number> {
  const dyadic = row.dyadic || row.dtype === 'float32';
  const h = dyadic ? DYADIC_STEP : 1e-5;
  const { g, xs, y } = build(row);
  const r = g.input('r', y.shape, 'float64');
  const L = sumAll(mul(cast(y, 'float64'), r));
  g.output('L', L);
  grad(L, xs).forEach((d, i) => g.output(`d${i}`, d));

  const dimsOf = (s: Shape) => s.map((d) => evalDim(d, row.dims ?? {}));
  const numel = (s: Shape) => dimsOf(s).reduce((a, b) => a * b, 1);
  const rng = rngFor(row.name);
  const x0 = row.in.map((spec, i) => sample(rng, numel(xs[i]!.shape), 'kind' in spec ? spec.kind : 'normal', dyadic));
  const v = xs.map((x) => direction(rng, numel(x.shape), dyadic));
  const rv = Float64Array.from(sample(rng, numel(y.shape), 'normal', false));
  const feeds = (step: number) => {
    const f: Record<string, HostTensor> = { r: hostTensor('float64', dimsOf(y.shape), rv) };
    xs.forEach((x, i) => {
      const vals = x0[i]!.map((a, j) => a + step * v[i]![j]!);
      f[`x${i}`] = hostTensor(x.dtype, dimsOf(x.shape), x.dtype === 'float32' ? Float32Array.from(vals) : Float64Array.from(vals));
    });
    return f;
  };

  const session = await compile(g);
  try {
    const base = await session.run(feeds(0));
    const analytic = xs.reduce((s, _, i) => s + dot(base[`d${i}`]!.data as ArrayLike<number>, v[i]!), 0);
    const Lat = async (step: number) => Number((await session.run(feeds(step), ['L'])).L!.data[0]);
    const numeric = ((await Lat(h)) - (await Lat(-h))) / (2 * h);
    const err = relErr(analytic, numeric);
    const tol = row.dtype === 'float32' ? 2e-4 : 1e-6;
    assert.ok(err < tol, `${row.name}: analytic ${analytic} vs numeric ${numeric} (rel err ${err.toExponential(2)} >= ${tol})`);
    assert.ok(Math.abs(analytic) > 1e-6, `${row.name}: gradient is ~0, the check would be vacuous`);
    return err;
  } finally {
    await session.release();
  }
}

/** Ops of the forward nodes that some input's value flows into through a float tensor. */
function opsOnPath(row: Row): Set<string> {
  const { g, xs } = build(row);
  const reach = new Set(xs.map((x) => x.id));
  const ops = new Set<string>();
  for (const n of g.nodes) {
    if (!n.inputs.some((t) => reach.has(t.id) && isFloat(t.dtype))) continue;
    ops.add(n.op);
    for (const o of n.outputs) reach.add(o.id);
  }
  return ops;
}

describe('VJP rules match central finite differences', () => {
  for (const row of rows) test(row.name, async (t) => t.diagnostic(`rel err ${(await check(row)).toExponential(2)}`));
  test('every differentiable primitive has a row', () => {
    const covered = new Set(rows.flatMap((r) => [...opsOnPath(r)]));
    const missing = allPrimitives()
      .filter((p) => p.vjp && !covered.has(p.name))
      .map((p) => p.name);
    assert.deepEqual(missing, [], `primitives with a VJP but no finite-difference row: ${missing.join(', ')}`);
  });
});
