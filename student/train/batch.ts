// Host side of the train step: rollouts (or SFT examples) of different lengths packed into the
// train graph's feeds, and a whole batch split into micro-batches.
//
// Layout: each row is prompt ++ completion, right-padded; position t holds token t, so completion
// token j of a row with prompt length P sits at t = P + j, where its log-prob is aligned (the
// score graph's convention). loss_mask is 1 exactly there: prompt and padding never enter the loss
// or its denominator. Aggregation weights and batch_tokens are computed here over the whole batch,
// before any split, which is what makes the micro-batch losses sum to the batch loss.

import { type HostTensor, hostTensor } from '../../engine/runtime/host.ts';
import { packSequences } from '../model/runner.ts';
import { type Aggregation, type AggregationOptions, completionCounts, lossWeights } from './aggregate.ts';

export type FloatDType = 'float32' | 'float64';
export type Feeds = Record<string, HostTensor>;

/**
 * One sampled completion with what the policy loss needs, per completion token unless noted. The
 * pipeline's rollout record (data/schemas.ts `RolloutRow`) satisfies it as it is, field names
 * included, so a step's rollouts are packed without conversion.
 */
export interface PolicyRollout {
  promptIds: readonly number[];
  completionIds: readonly number[];
  /** The blended advantage: one per completion token, or one number for the whole rollout. */
  advantages: number | readonly number[];
  /** log π_old of each completion token, recorded by the sampler (at its temperature), nats; fed as old_logprobs. */
  samplerLogprobs: readonly number[];
  refLogprobs?: readonly number[];
  teacherLogprobs?: readonly number[];
  /** k of the teacher's top-k per completion token (0 or absent: none). */
  teacherTopK?: number;
  /** The teacher's top-k ids and their log-probs, row-major [C·k] (completion token j at j·k .. j·k+k−1). */
  teacherTopIds?: readonly number[];
  teacherTopLogprobs?: readonly number[];
  /** The rollout hit the token limit (masked out entirely when `maskTruncated`). */
  truncated?: boolean;
}

export interface PackOptions extends AggregationOptions {
  padId: number;
  dtype?: FloatDType;
  /** Sampling temperature τ of the old log-probs; the graph divides logits by τ (default 1). */
  temperature?: number;
  /** Pad every row to this many positions (default: the longest row). */
  width?: number;
}

export interface PolicyPackOptions extends PackOptions {
  aggregation?: Aggregation;
  /** Give truncated rollouts no weight (docs/algorithms.md §6). */
  maskTruncated?: boolean;
  /**
   * Whether the train graph has the distillation loss, the one input that reads teacher_logprobs:
   * false leaves the rollouts' teacher log-probs out of the feeds. Default: fed when every rollout carries them.
   */
  distill?: boolean;
  /**
   * Feed the teacher's top-k (teacher_top_ids int64 / teacher_top_logprobs, [B, T, topK]) for a
   * top-k divergence: every rollout must carry exactly this k. Absent: no top-k feeds.
   */
  topK?: number;
  /** The student's vocabulary rows: top-k ids must lie below it (checked when given). */
  vocabRows?: number;
}

/** Per-token columns a rollout may carry, by feed name. */
const COLUMNS = {
  old_logprobs: (r: PolicyRollout) => r.samplerLogprobs,
  ref_logprobs: (r: PolicyRollout) => r.refLogprobs,
  teacher_logprobs: (r: PolicyRollout) => r.teacherLogprobs,
  advantages: (r: PolicyRollout) => (typeof r.advantages === 'number' ? new Array(r.completionIds.length).fill(r.advantages) : r.advantages),
} as const;

/** Feeds of the policy train step for `rollouts` (all of them one optimizer step). */
export function packPolicyBatch(rollouts: readonly PolicyRollout[], o: PolicyPackOptions): Feeds {
  const base = packCompletions(rollouts, o, (r) => !(o.maskTruncated && r.truncated));
  const { b, t } = base;
  const feeds = base.feeds;
  for (const [name, column] of Object.entries(COLUMNS)) {
    if (name === 'teacher_logprobs' && o.distill === false) continue;
    const present = rollouts.map((r) => column(r) !== undefined);
    if (!present.some(Boolean)) continue;
    if (!present.every(Boolean)) throw new Error(`packPolicyBatch: ${name} is given for some rollouts but not all`);
    const data = floatArray(o.dtype, b * t);
    rollouts.forEach((r, i) => {
      const vals = column(r)!;
      if (vals.length !== r.completionIds.length)
        throw new Error(`packPolicyBatch: rollout ${i} has ${r.completionIds.length} completion tokens but ${vals.length} ${name}`);
      vals.forEach((v, j) => (data[i * t + r.promptIds.length + j] = v));
    });
    feeds[name] = hostTensor(dtypeOf(o), [b, t], data);
  }
  if (o.topK) packTopk(feeds, rollouts, o.topK, b, t, o);
  addWeights(feeds, base.mask, b, t, o.aggregation ?? 'token_mean', o);
  return feeds;
}

/** teacher_top_ids / teacher_top_logprobs [B, T, k], aligned like the log-probs, zero off the completion. */
function packTopk(feeds: Feeds, rollouts: readonly PolicyRollout[], k: number, b: number, t: number, o: PolicyPackOptions): void {
  const ids = new BigInt64Array(b * t * k);
  const lps = floatArray(o.dtype, b * t * k);
  rollouts.forEach((r, i) => {
    const n = r.completionIds.length;
    const where = `packPolicyBatch: rollout ${i}`;
    if (n === 0) return;
    if (r.teacherTopK !== k)
      throw new Error(`${where} carries the teacher's top-${r.teacherTopK ?? 0}, but the train step's divergence needs top-${k}; the rollouts were scored under another algo.blend.topK (sample them anew, or set topK to ${r.teacherTopK ?? 'the teacher’s k'})`);
    if (r.teacherTopIds?.length !== n * k || r.teacherTopLogprobs?.length !== n * k)
      throw new Error(`${where}: ${n} completion tokens × top-${k} need ${n * k} teacher top-k ids and log-probs, got ${r.teacherTopIds?.length ?? 0} and ${r.teacherTopLogprobs?.length ?? 0}`);
    for (let j = 0; j < n; j++) {
      const seen = new Set<number>();
      for (let q = 0; q < k; q++) {
        const id = r.teacherTopIds[j * k + q]!;
        const lp = r.teacherTopLogprobs[j * k + q]!;
        if (!Number.isInteger(id) || id < 0 || (o.vocabRows !== undefined && id >= o.vocabRows))
          throw new Error(`${where}, completion token ${j}: teacher top-k id ${id} is outside the student's vocabulary [0, ${o.vocabRows ?? '∞'}); a top-k divergence needs a teacher with the student's tokenizer`);
        if (seen.has(id)) throw new Error(`${where}, completion token ${j}: teacher top-k id ${id} appears twice; the teacher's top-k must be k distinct ids`);
        seen.add(id);
        if (!(Number.isFinite(lp) && lp <= 1e-4)) throw new Error(`${where}, completion token ${j}: teacher top-k log-prob ${lp} is not a finite number ≤ 0`);
        const at = ((i * t + r.promptIds.length + j) * k + q);
        ids[at] = BigInt(id);
        lps[at] = lp;
      }
    }
  });
  feeds.teacher_top_ids = hostTensor('int64', [b, t, k], ids);
  feeds.teacher_top_logprobs = hostTensor(dtypeOf(o), [b, t, k], lps);
}

/** One SFT demonstration: the loss covers the completion only. */
export interface SftExample {
  promptIds: readonly number[];
  completionIds: readonly number[];
}

/** Feeds of the SFT train step (token-mean cross-entropy over the whole batch). */
export function packSftBatch(examples: readonly SftExample[], o: PackOptions): Feeds {
  const base = packCompletions(examples, o, () => true);
  addWeights(base.feeds, base.mask, base.b, base.t, 'token_mean', o);
  return base.feeds;
}

/** ids / attention_mask / position_ids / inv_temperature and the completion mask of prompt ++ completion rows. */
function packCompletions<R extends SftExample>(rows: readonly R[], o: PackOptions, keep: (r: R) => boolean) {
  if (rows.length === 0) throw new Error('pack: empty batch');
  rows.forEach((r, i) => {
    if (r.promptIds.length === 0) throw new Error(`pack: row ${i} has an empty prompt; a completion needs at least one token (e.g. BOS) before it, since nothing predicts position 0`);
  });
  const packed = packSequences(rows.map((r) => [...r.promptIds, ...r.completionIds]), o.padId, 'right', o.width);
  const [b, t] = packed.input_ids.dims as [number, number];
  const mask = floatArray(o.dtype, b * t);
  rows.forEach((r, i) => {
    if (!keep(r)) return;
    for (let j = 0; j < r.completionIds.length; j++) mask[i * t + r.promptIds.length + j] = 1;
  });
  const dtype = dtypeOf(o);
  const feeds: Feeds = {
    input_ids: packed.input_ids,
    attention_mask: packed.attention_mask,
    position_ids: packed.position_ids,
    inv_temperature: hostTensor(dtype, [], floatArray(o.dtype, 1).fill(1 / (o.temperature ?? 1))),
    loss_mask: hostTensor(dtype, [b, t], mask),
  };
  return { feeds, mask, b, t };
}

function addWeights(feeds: Feeds, mask: Float32Array | Float64Array, b: number, t: number, mode: Aggregation, o: PackOptions & AggregationOptions): void {
  const m = { data: mask, b, t };
  const tokens = completionCounts(m).reduce((a, c) => a + c, 0);
  feeds.loss_weights = hostTensor(dtypeOf(o), [b, t], toFloat(o.dtype, lossWeights(mode, m, o)));
  feeds.batch_tokens = hostTensor(dtypeOf(o), [], floatArray(o.dtype, 1).fill(Math.max(1, tokens)));
}

/**
 * Split a packed batch into `count` micro-batches of consecutive rows (sizes differ by at most 1).
 * Rank-0 feeds are shared; every [B, T, ...] feed is cut to the rows and then to the longest row's
 * real length, so a micro-batch of short rows carries no dead padding columns.
 */
export function splitMicroBatches(feeds: Feeds, count: number): Feeds[] {
  const b = feeds.input_ids?.dims[0];
  const mask = feeds.attention_mask;
  if (b === undefined || !mask) throw new Error('splitMicroBatches: feeds need input_ids and attention_mask');
  if (!Number.isInteger(count) || count < 1 || count > b) throw new Error(`splitMicroBatches: count must be an integer in [1, ${b}], got ${count}`);
  const t = mask.dims[1]!;
  const out: Feeds[] = [];
  for (let k = 0, lo = 0; k < count; k++) {
    const hi = lo + Math.floor(b / count) + (k < b % count ? 1 : 0);
    let width = 1;
    for (let r = lo; r < hi; r++) for (let c = 0; c < t; c++) if (mask.data[r * t + c]) width = Math.max(width, c + 1);
    out.push(Object.fromEntries(Object.entries(feeds).map(([n, x]) => [n, x.dims.length === 0 ? x : cut(x, lo, hi, width)])));
    lo = hi;
  }
  return out;
}

/** Rows [lo, hi) of a [B, T, ...] tensor, keeping the first `width` positions of each row. */
function cut(x: HostTensor, lo: number, hi: number, width: number): HostTensor {
  const [, t, ...rest] = x.dims as number[];
  if (t === undefined) throw new Error(`splitMicroBatches: feed of dims [${x.dims}] is neither a scalar nor [B, T, ...]`);
  const inner = rest.reduce((a, c) => a * c, 1);
  const data = new (x.data.constructor as new (n: number) => typeof x.data)((hi - lo) * width * inner);
  for (let r = lo; r < hi; r++) data.set(x.data.subarray(r * t * inner, (r * t + width) * inner) as never, (r - lo) * width * inner);
  return hostTensor(x.dtype, [hi - lo, width, ...rest], data);
}

const dtypeOf = (o: { dtype?: FloatDType }): FloatDType => o.dtype ?? 'float32';
const floatArray = (dtype: FloatDType | undefined, n: number) => ((dtype ?? 'float32') === 'float64' ? new Float64Array(n) : new Float32Array(n));
const toFloat = (dtype: FloatDType | undefined, a: Float64Array) => ((dtype ?? 'float32') === 'float64' ? a : Float32Array.from(a));
