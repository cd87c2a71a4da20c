// Any ONNX causal-LM file as a scorer: per-token log-probs (and top-k) of token sequences.
//
// Accepted models: inputs `input_ids` [B, T] (+ `attention_mask` [B, T], `position_ids` [B, T],
// `past_key_values.<i>.key|value` [B, Hkv, P, Dh]), output `logits` [B, T, V] with V fixed; ids may
// be int64 or int32, logits float32 or float16. Inputs are found by name in the session's metadata;
// past inputs are fed empty (P = 0; Hkv and Dh read from their declared shapes). Anything else
// (another input, a fused [2, B, H, P, Dh] past, a symbolic vocabulary) is refused at open.
//
// Log-softmax, the gather of each next token and top-k run inside ONNX Runtime, in a small graph
// built with our engine (logits, ids, 1/τ -> logprobs [B, T], top_ids / top_logprobs [B, T, k],
// aligned as student/model/score.ts: row t scores ids[t], row 0 is zero). Preferred: that graph is
// spliced into the LM's own graph (one model, one run, only 1 + 2k numbers per token leave ORT).
// Splicing needs one opset per domain, so it is done when the LM's default opset is >= 18 (opsets
// 19-21 only add types and modes to what a causal LM or our post graph uses; the exceptions,
// GroupNormalization and GridSample, are not LM ops; opset 18 moved Reduce* axes to inputs, so
// older LMs cannot be lifted) and the weights live inside the file; the merged model imports
// max(lm, 21). Otherwise (older opsets, external-data files of multi-GB models) the LM runs in its
// own session and its logits go through the same graph in a second one: correct, but [B, T, V]
// floats cross the host once. One-token rows never reach ORT (see skipEmpty).
//
// Leaves out: real KV-cache use, padded-vocabulary limits (vocabLimit) and vocabularies given only
// symbolically; the [B, T, V] log-softmax is materialised, so batchTokens bounds B·T·V memory.

import { readFileSync, statSync } from 'node:fs';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { type GraphProto, type ModelProto, ModelProtoSchema, OperatorSetIdProtoSchema, TensorProto_DataLocation } from 'onnx-buf';
import { compile } from '../engine/exec.ts';
import { type DType, Graph, type Tensor, cast, dimAdd, gatherElements, logSoftmax, mul, pad, slice, squeeze, topK, unsqueeze } from '../engine/index.ts';
import { buildModel } from '../engine/onnx/emit.ts';
import { type HostTensor, hostTensor } from '../engine/runtime/host.ts';
import { type RuntimeOptions, Session, type ValueInfo } from '../engine/runtime/session.ts';
import { packSequences, scalarF32 } from '../student/model/runner.ts';
import type { ScoreRequest, ScoreResult } from '../student/model/scorer.ts';

export interface OnnxLmOptions extends RuntimeOptions {
  /** Top-k alternatives per scored position (0 = none). */
  topK?: number;
  /** Max tokens (rows × padded length) per ONNX Runtime run; default 4096. */
  batchTokens?: number;
  /** Splice the log-prob graph into the LM when possible (default true); false forces two sessions. */
  fuse?: boolean;
  /** One sequence per run, so a score does not depend on its neighbours (student/model/scorer.ts). */
  alone?: boolean;
}

const PAST_RE = /^past_key_values\.\d+\.(key|value)$/;
const PREFIX = 'opd.';
const FUSE_MIN_OPSET = 18;
const OUR_OPSET = 21;
const PROTOBUF_LIMIT = 2 ** 31 - 1;

export class OnnxLmError extends Error {
  constructor(file: string, detail: string) {
    super(`ONNX causal LM ${file}: ${detail}`);
    this.name = 'OnnxLmError';
  }
}

/** The post graph: logits [B, T, V] + input_ids [B, T] + inv_temperature [] -> aligned log-probs (+ top-k). */
export function buildLogprobGraph(opts: { vocab: number; logitsDtype: DType; idsDtype: DType; topK: number }): Graph {
  const g = new Graph('lm_logprobs');
  const logits = g.input('logits', ['B', 'T', opts.vocab], opts.logitsDtype);
  const idsIn = g.input('input_ids', ['B', 'T'], opts.idsDtype);
  const invTemp = g.input('inv_temperature', [], 'float32');
  const ids = opts.idsDtype === 'int64' ? idsIn : cast(idsIn, 'int64'); // [B, T]
  const z = mul(opts.logitsDtype === 'float32' ? logits : cast(logits, 'float32'), invTemp); // [B, T, V]
  const tm1 = dimAdd('T', -1);
  const lsm = slice(logSoftmax(z, -1), [0], [tm1], [1]); // [B, T-1, V]: the distribution before each next token
  const next = slice(ids, [1], ['T'], [1]); // [B, T-1]
  const lp = squeeze(gatherElements(lsm, unsqueeze(next, -1), -1), -1); // [B, T-1]
  const front = (y: Tensor) => pad(y, y.rank === 2 ? [0, 1, 0, 0] : [0, 1, 0, 0, 0, 0]); // zero row at t = 0
  g.output('logprobs', front(lp)); // [B, T]
  if (opts.topK > 0) {
    const [vals, idx] = topK(lsm, Math.min(opts.topK, opts.vocab), -1); // [B, T-1, k]
    g.output('top_ids', front(idx)); // [B, T, k] int64
    g.output('top_logprobs', front(vals)); // [B, T, k]
  }
  return g;
}

/** Why `lm` cannot take the post graph in its own graph, or null when it can. */
function fuseBlocker(lm: ModelProto): string | null {
  const opset = defaultOpset(lm);
  if (opset < FUSE_MIN_OPSET) return `default-domain opset ${opset} < ${FUSE_MIN_OPSET}`;
  const g = lm.graph!;
  if (g.initializer.some((t) => t.dataLocation === TensorProto_DataLocation.EXTERNAL)) return 'weights in external data files';
  return null;
}

function defaultOpset(m: ModelProto): number {
  const o = m.opsetImport.find((x) => x.domain === '' || x.domain === 'ai.onnx');
  return o ? Number(o.version) : 0;
}

/**
 * Splice `post` into `lm`: post's `logits` input becomes the LM's logits, its `input_ids` the LM's
 * input, every other post name gets the "opd." prefix; the model's outputs become post's outputs.
 */
export function composeModel(lm: ModelProto, post: Graph, logitsName: string, idsName: string): Uint8Array {
  const p = buildModel(post).graph!;
  const rename = (n: string) => (n === '' ? n : n === 'logits' ? logitsName : n === 'input_ids' ? idsName : PREFIX + n);
  for (const node of p.node) {
    node.name = PREFIX + node.name;
    node.input = node.input.map(rename);
    node.output = node.output.map(rename);
  }
  for (const t of p.initializer) t.name = rename(t.name);
  for (const v of [...p.input, ...p.output]) v.name = rename(v.name);
  const g: GraphProto = lm.graph!;
  const taken = new Set([...g.input.map((i) => i.name), ...g.initializer.map((t) => t.name), ...g.node.flatMap((n) => n.output)]);
  const clash = [...p.initializer.map((t) => t.name), ...p.node.flatMap((n) => n.output)].find((n) => taken.has(n));
  if (clash) throw new Error(`composeModel: name "${clash}" already exists in the LM`);
  g.node.push(...p.node);
  g.initializer.push(...p.initializer);
  g.input.push(...p.input.filter((i) => i.name === PREFIX + 'inv_temperature'));
  g.output = p.output;
  const version = BigInt(Math.max(defaultOpset(lm), OUR_OPSET));
  lm.opsetImport = [...lm.opsetImport.filter((x) => !(x.domain === '' || x.domain === 'ai.onnx')), create(OperatorSetIdProtoSchema, { domain: '', version })];
  lm.irVersion = lm.irVersion > 10n ? lm.irVersion : 10n;
  return toBinary(ModelProtoSchema, lm);
}

/** The LM's inputs by role, from session metadata. */
interface LmInputs {
  ids: ValueInfo;
  mask?: ValueInfo;
  positions?: ValueInfo;
  past: ValueInfo[];
}

function detectInputs(s: Session, file: string): LmInputs {
  const byName = (n: string) => s.inputs.find((i) => i.name === n);
  const ids = byName('input_ids');
  if (!ids) throw new OnnxLmError(file, `no "input_ids" input (inputs: ${s.inputNames.join(', ')})`);
  const known = new Set(['input_ids', 'attention_mask', 'position_ids', PREFIX + 'inv_temperature']);
  const other = s.inputNames.filter((n) => !known.has(n) && !PAST_RE.test(n));
  if (other.length) throw new OnnxLmError(file, `unsupported input(s) ${other.join(', ')}; accepted: input_ids, attention_mask, position_ids, past_key_values.<i>.key|value`);
  for (const i of [ids, byName('attention_mask'), byName('position_ids')]) {
    if (i && i.dtype !== 'int64' && i.dtype !== 'int32') throw new OnnxLmError(file, `input "${i.name}" is ${i.type}; int64 or int32 expected`);
  }
  const past = s.inputs.filter((i) => PAST_RE.test(i.name));
  for (const p of past) {
    const ok = p.shape.length === 4 && typeof p.shape[1] === 'number' && typeof p.shape[3] === 'number';
    if (!ok || (p.dtype !== 'float32' && p.dtype !== 'float16'))
      throw new OnnxLmError(file, `past input "${p.name}" is ${p.type}[${p.shape.join(', ')}]; expected float32/float16 [batch, kv_heads, past_len, head_dim] with fixed heads and head_dim`);
  }
  return { ids, mask: byName('attention_mask'), positions: byName('position_ids'), past };
}

function logitsInfo(file: string, shape: ReadonlyArray<number | string>, dtype: DType | null): { vocab: number; dtype: DType } {
  const v = shape[2];
  if (shape.length !== 3 || typeof v !== 'number') throw new OnnxLmError(file, `output "logits" must be [batch, seq, vocab] with a fixed vocab, declared [${shape.join(', ')}]`);
  if (dtype !== 'float32' && dtype !== 'float16') throw new OnnxLmError(file, `output "logits" is ${dtype}; float32 or float16 expected`);
  return { vocab: v, dtype };
}

export class OnnxLm {
  /** Rows per run: the declared batch when the export fixes it, else unbounded (batchTokens rules). */
  private readonly maxRows: number;

  private constructor(
    readonly file: string,
    /** 'fused': one session; 'two-session': LM session + log-prob session (see header). */
    readonly mode: 'fused' | 'two-session',
    /** Why fusing was not done (null when fused). */
    readonly fuseBlockedBy: string | null,
    readonly vocabSize: number,
    private readonly lm: Session,
    private readonly post: Session | null,
    private readonly inputs: LmInputs,
    private readonly topK: number,
    private readonly batchTokens: number,
    alone = false,
  ) {
    const b = inputs.ids.shape[0];
    this.maxRows = alone ? 1 : typeof b === 'number' ? b : Infinity; // some exports fix the batch (often at 1)
  }

  static async open(file: string, opts: OnnxLmOptions = {}): Promise<OnnxLm> {
    const topK = opts.topK ?? 0;
    const rt: RuntimeOptions = { device: opts.device, threads: opts.threads };
    let size: number;
    try {
      size = statSync(file).size;
    } catch (e) {
      throw new OnnxLmError(file, `cannot read the file (${(e as Error).message})`);
    }
    let blocker: string | null = opts.fuse === false ? 'fuse: false was asked' : size >= PROTOBUF_LIMIT ? 'file over 2 GB' : null;
    let proto: ModelProto | null = null;
    if (!blocker) {
      try {
        proto = fromBinary(ModelProtoSchema, readFileSync(file));
      } catch (e) {
        throw new OnnxLmError(file, `not a readable ONNX model (${(e as Error).message})`);
      }
      blocker = fuseBlocker(proto);
    }
    if (proto && !blocker) {
      const out = proto.graph!.output.find((o) => o.name === 'logits');
      if (!out) throw new OnnxLmError(file, `no "logits" output (outputs: ${proto.graph!.output.map((o) => o.name).join(', ')})`);
      const t = out.type?.value.case === 'tensorType' ? out.type.value.value : undefined;
      const shape = t?.shape?.dim.map((d) => (d.value.case === 'dimValue' ? Number(d.value.value) : String(d.value.value ?? '?'))) ?? [];
      const info = logitsInfo(file, shape, elemDtype(t?.elemType));
      const idsIn = proto.graph!.input.find((i) => i.name === 'input_ids');
      if (!idsIn) throw new OnnxLmError(file, `no "input_ids" input (inputs: ${proto.graph!.input.map((i) => i.name).join(', ')})`);
      const idsDtype = idsIn.type?.value.case === 'tensorType' ? elemDtype(idsIn.type.value.value.elemType) : null;
      const post = buildLogprobGraph({ vocab: info.vocab, logitsDtype: info.dtype, idsDtype: idsDtype ?? 'int64', topK });
      const bytes = composeModel(proto, post, 'logits', 'input_ids');
      proto = null; // let the parsed copy go before ORT loads its own
      const s = await Session.create(bytes, { ...rt, name: `${file} (+log-probs)` });
      return new OnnxLm(file, 'fused', null, info.vocab, s, null, detectInputs(s, file), topK, opts.batchTokens ?? 4096, opts.alone);
    }
    const s = await Session.create(file, rt);
    const inputs = detectInputs(s, file);
    const out = s.output('logits');
    if (!out) throw new OnnxLmError(file, `no "logits" output (outputs: ${s.outputNames.join(', ')})`);
    const info = logitsInfo(file, out.shape, out.dtype);
    const post = await compile(buildLogprobGraph({ vocab: info.vocab, logitsDtype: info.dtype, idsDtype: inputs.ids.dtype!, topK }), rt);
    return new OnnxLm(file, 'two-session', blocker, info.vocab, s, post, inputs, topK, opts.batchTokens ?? 4096, opts.alone);
  }

  /** Scores `reqs` (validated by the caller) at temperature τ; grouped by length under batchTokens, input order kept. */
  score(reqs: readonly ScoreRequest[], temperature = 1): Promise<ScoreResult[]> {
    return skipEmpty(reqs, this.topK, (some) => this.scoreAll(some, temperature));
  }

  private async scoreAll(reqs: readonly ScoreRequest[], temperature: number): Promise<ScoreResult[]> {
    const order = reqs.map((_, i) => i).sort((a, b) => reqs[a]!.ids.length - reqs[b]!.ids.length);
    const out: ScoreResult[] = new Array(reqs.length);
    for (let i = 0; i < order.length; ) {
      let j = i + 1;
      while (j < order.length && j - i < this.maxRows && (j - i + 1) * reqs[order[j]!]!.ids.length <= this.batchTokens) j++;
      const group = order.slice(i, j);
      const results = await this.scoreBatch(group.map((k) => reqs[k]!), temperature);
      group.forEach((k, n) => (out[k] = results[n]!));
      i = j;
    }
    return out;
  }

  private async scoreBatch(reqs: readonly ScoreRequest[], temperature: number): Promise<ScoreResult[]> {
    const packed = packSequences(reqs.map((r) => r.ids), 0, 'right');
    const [b, t] = packed.input_ids.dims as [number, number];
    const x = this.inputs;
    const feeds: Record<string, HostTensor> = { input_ids: asIndex(packed.input_ids, x.ids) };
    if (x.mask) feeds.attention_mask = asIndex(packed.attention_mask, x.mask);
    if (x.positions) feeds.position_ids = asIndex(packed.position_ids, x.positions);
    for (const p of x.past) feeds[p.name] = hostTensor(p.dtype!, [b, p.shape[1] as number, 0, p.shape[3] as number]);
    const invTemp = scalarF32(1 / temperature);
    let run: Record<string, HostTensor>;
    if (this.post) {
      const { logits } = await this.lm.run(feeds, ['logits']);
      run = await this.post.run({ logits: logits!, input_ids: feeds.input_ids!, inv_temperature: invTemp });
    } else {
      run = await this.lm.run({ ...feeds, [PREFIX + 'inv_temperature']: invTemp });
    }
    const get = (n: string) => run[n] ?? run[PREFIX + n];
    const lp = get('logprobs')!.data as Float32Array;
    const topIds = get('top_ids')?.data as BigInt64Array | undefined;
    const topLp = get('top_logprobs')?.data as Float32Array | undefined;
    const k = topIds ? topIds.length / (b * t) : 0;
    return reqs.map((r, row) => {
      const res: ScoreResult = { logprobs: [] };
      if (k) [res.topIds, res.topLogprobs] = [[], []];
      for (let pos = r.start; pos < r.ids.length; pos++) {
        res.logprobs.push(lp[row * t + pos]!);
        if (k) {
          const at = (row * t + pos) * k;
          res.topIds!.push(Array.from(topIds!.subarray(at, at + k), Number));
          res.topLogprobs!.push(Array.from(topLp!.subarray(at, at + k)));
        }
      }
      return res;
    });
  }

  async release(): Promise<void> {
    await this.lm.release();
    await this.post?.release();
  }
}

/**
 * Runs `score` only on requests with something to score; the rest get empty results. Besides saving
 * work this keeps ORT away from a batch of one-token rows: TopK over the resulting empty [B, 0, V]
 * tensor dies with SIGFPE in ORT 1.30 (the student's Scorer included), taking the process with it.
 */
export async function skipEmpty(reqs: readonly ScoreRequest[], topK: number, score: (reqs: ScoreRequest[]) => Promise<ScoreResult[]>): Promise<ScoreResult[]> {
  const live = reqs.flatMap((r, i) => (r.start < r.ids.length ? [i] : []));
  const scored = live.length ? await score(live.map((i) => reqs[i]!)) : [];
  const out: ScoreResult[] = reqs.map(() => (topK ? { logprobs: [], topIds: [], topLogprobs: [] } : { logprobs: [] }));
  live.forEach((i, n) => (out[i] = scored[n]!));
  return out;
}

/** int64 packed ids as the dtype the model declares for them. */
function asIndex(t: HostTensor, info: ValueInfo): HostTensor {
  if (info.dtype !== 'int32') return t;
  return hostTensor('int32', t.dims, Int32Array.from(t.data as BigInt64Array, Number));
}

/** ONNX TensorProto.DataType -> DType for the types an LM's ids and logits use. */
function elemDtype(code: number | undefined): DType | null {
  return ({ 1: 'float32', 10: 'float16', 7: 'int64', 6: 'int32' } as Record<number, DType>)[code ?? -1] ?? null;
}
