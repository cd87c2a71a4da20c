// What crosses the queue: the data of a rollout job and of a teacher job, their ids, and their
// results as checksummed Arrow IPC. The only file that knows the layout of either.
//
// A job is a pure function of its data (prompt ids, sampler settings and seed, the weights'
// content hash; or token sequences and the teacher's config entry), so its id is the hash of that
// data: adding the same job twice (a controller restart, a re-enqueue after Redis lost it) is one
// job, and any worker that runs it returns the same bytes. A result is base64 Arrow IPC plus the
// sha256 of those bytes; the controller verifies it before it decodes a row.

import { createHash } from 'node:crypto';
import { Bool, Field, Float32, Int32, List, Schema, Table, tableFromIPC, tableToIPC, vectorFromArray } from 'apache-arrow';
import type { RuntimeOptions } from '../../engine/runtime/session.ts';
import type { Completion } from '../../student/generate/generate.ts';
import type { LoraSpec } from '../../student/model/lora.ts';
import type { TeacherSpec } from '../../teacher/open.ts';
import { type TeacherRequest, type TeacherScore, TeacherScoreError } from '../../teacher/types.ts';

export const ROLLOUT_QUEUE = 'opd-rollout';
/** BullMQ queue names may not hold ':'; teacher ids (config) are plain words. */
export const teacherQueue = (id: string) => `opd-teacher-${id}`;

/** Where a worker gets the weights of `hash`: over HTTP (bearer token) or from a shared directory. */
export interface WeightsRef {
  /** sha256 hex of the weights' safetensors bytes (pipeline/queue/weights.ts). */
  hash: string;
  url?: string;
  token?: string;
  dir?: string;
}

export interface RolloutJobData {
  kind: 'rollout';
  step: number;
  /** Prompt token ids, one row per rollout (a prompt repeated G times). */
  prompts: number[][];
  opts: { maxNewTokens: number; temperature: number; topK?: number; topP?: number; stopTokenIds: number[]; padId: number };
  /** The slice's sampler seed (rollout-step.ts sliceSeed). */
  seed: number;
  /** The student's HF config.json (ModelConfig.raw): parsed again by the worker (parseConfig). */
  model: Record<string, unknown>;
  runtime: RuntimeOptions;
  /** The trained weights: the whole model, or a LoRA run's adapters only. */
  weights: WeightsRef;
  /** A LoRA student: the spec and the frozen base's layout; its base.bin must be at `base.dir` on the worker (a shared run directory). */
  lora?: { spec: LoraSpec; base: { dir: string; entries: Array<[string, { offset: number; length: number; shape: number[] }]>; headRows: number } };
}

export interface TeacherJobData {
  kind: 'teacher';
  step: number;
  teacherId: string;
  /** The teacher's config entry; the worker opens it (its paths must exist on the worker). */
  spec: TeacherSpec;
  runtime: { threads?: number; device?: RuntimeOptions['device']; defaultTokenizer?: string };
  requests: Array<{ ids: number[]; start: number }>;
  /** Also the teacher's k most likely ids and log-probs per scored position (a top-k divergence); absent or 0: none. */
  topK?: number;
}

export type JobData = RolloutJobData | TeacherJobData;

export interface JobResult {
  /** base64 of the Arrow IPC stream. */
  ipc: string;
  sha256: string;
  /** Who ran it (host:pid) and how long the work took there, seconds (the bench's overhead figure). */
  worker: string;
  seconds: number;
  /**
   * A teacher job whose teacher answered a non-finite log-prob (TeacherScoreError with nonFinite):
   * not a failure to retry (the same teacher answers the same), but the step's skip (R7), as in-process.
   */
  nonFinite?: { request: number; detail: string };
}

/** The job's id: its kind, step and the hash of its data (see the header), the weights by their hash alone. */
export function jobId(d: JobData): string {
  // where the weights are fetched from (URL, token) changes with a controller restart; what they are does not
  const what = d.kind === 'rollout' ? { ...d, weights: { hash: d.weights.hash } } : d;
  const h = createHash('sha256').update(JSON.stringify(what)).digest('hex').slice(0, 32);
  return `${d.kind}-${d.step}-${h}`;
}

const listOf = (t: Float32 | Int32) => new List(new Field('item', t, false));

/**
 * A rollout job's result, one row per rollout:
 * - tokens [n]: completion token ids (int32), the stop token included when one was hit
 * - logprobs [n]: the sampler's log-prob of each token, nats (float32: the shard's precision)
 * - truncated: hit maxNewTokens without a stop token
 */
export const completionSchema = new Schema([
  new Field('tokens', listOf(new Int32()), false),
  new Field('logprobs', listOf(new Float32()), false),
  new Field('truncated', new Bool(), false),
]);

/**
 * A teacher job's result, one row per request: logprobs [T − start], nats (float32); with top-k,
 * top_ids and top_logprobs [(T − start)·k], row-major per position (empty without).
 */
export const scoreSchema = new Schema([
  new Field('logprobs', listOf(new Float32()), false),
  new Field('top_ids', listOf(new Int32()), false),
  new Field('top_logprobs', listOf(new Float32()), false),
]);

function pack(t: Table, worker: string, seconds: number): JobResult {
  const bytes = tableToIPC(t, 'stream');
  return { ipc: Buffer.from(bytes).toString('base64'), sha256: createHash('sha256').update(bytes).digest('hex'), worker, seconds };
}

function unpack(r: JobResult | undefined, id: string, schema: Schema, rows: number): Table {
  if (!r || typeof r.ipc !== 'string') throw new Error(`queue job ${id}: the result holds no Arrow IPC; the worker runs another opd version`);
  const bytes = Buffer.from(r.ipc, 'base64');
  const sum = createHash('sha256').update(bytes).digest('hex');
  if (sum !== r.sha256) throw new Error(`queue job ${id}: result checksum ${sum.slice(0, 12)} ≠ ${String(r.sha256).slice(0, 12)} sent by worker ${r.worker}; the result was damaged in transit`);
  const t = tableFromIPC(bytes);
  const names = t.schema.fields.map((f) => f.name).join(',');
  if (names !== schema.fields.map((f) => f.name).join(',') || t.numRows !== rows)
    throw new Error(`queue job ${id}: result from worker ${r.worker} has columns [${names}] × ${t.numRows} rows, expected [${schema.fields.map((f) => f.name)}] × ${rows}`);
  return t;
}

export function completionsResult(c: readonly Completion[], worker: string, seconds: number): JobResult {
  return pack(
    new Table(completionSchema, {
      tokens: vectorFromArray(c.map((x) => x.tokens), listOf(new Int32())),
      logprobs: vectorFromArray(c.map((x) => x.logprobs), listOf(new Float32())),
      truncated: vectorFromArray(c.map((x) => x.truncated), new Bool()),
    } as never),
    worker,
    seconds,
  );
}

export function readCompletions(r: JobResult | undefined, id: string, rows: number): Completion[] {
  const t = unpack(r, id, completionSchema, rows);
  const out: Completion[] = [];
  for (let i = 0; i < t.numRows; i++) {
    const x = t.get(i)!;
    const truncated = x.truncated as boolean;
    out.push({ tokens: Array.from(x.tokens.toArray() as Int32Array), logprobs: Array.from(x.logprobs.toArray() as Float32Array), truncated, finishReason: truncated ? 'length' : 'stop' });
  }
  return out;
}

export function scoresResult(s: readonly TeacherScore[], worker: string, seconds: number): JobResult {
  return pack(
    new Table(scoreSchema, {
      logprobs: vectorFromArray(s.map((x) => x.logprobs), listOf(new Float32())),
      top_ids: vectorFromArray(s.map((x) => x.topIds?.flat() ?? []), listOf(new Int32())),
      top_logprobs: vectorFromArray(s.map((x) => x.topLogprobs?.flat() ?? []), listOf(new Float32())),
    } as never),
    worker,
    seconds,
  );
}

/** A teacher job's result: the scores, or the non-finite score the teacher answered (then no table). */
export async function teacherResult(score: () => Promise<TeacherScore[]>, worker: string, t0: number): Promise<JobResult> {
  try {
    return scoresResult(await score(), worker, (performance.now() - t0) / 1e3);
  } catch (e) {
    if (!(e instanceof TeacherScoreError && e.nonFinite)) throw e;
    return { ipc: '', sha256: '', worker, seconds: (performance.now() - t0) / 1e3, nonFinite: { request: e.request, detail: e.message.replace(/^teacher score for request \d+: /, '') } };
  }
}

export function readScores(r: JobResult | undefined, id: string, reqs: readonly TeacherRequest[], topK = 0): TeacherScore[] {
  // the loop's skip guard turns this into a skipped step (pipeline/recipes/skip-guard.ts), as for a local teacher
  if (r?.nonFinite) throw new TeacherScoreError(r.nonFinite.request, `${r.nonFinite.detail} (worker ${r.worker}, queue job ${id})`, true);
  const t = unpack(r, id, scoreSchema, reqs.length);
  const out: TeacherScore[] = [];
  for (let i = 0; i < t.numRows; i++) {
    const row = t.get(i)!;
    const logprobs = Array.from(row.logprobs.toArray() as Float32Array);
    const n = reqs[i]!.ids.length - reqs[i]!.start;
    if (logprobs.length !== n) throw new Error(`queue job ${id}: request ${i} has ${logprobs.length} teacher log-probs from worker ${r!.worker}, expected ${n}`);
    if (!topK) {
      out.push({ logprobs });
      continue;
    }
    const ids = Array.from(row.top_ids.toArray() as Int32Array);
    const lps = Array.from(row.top_logprobs.toArray() as Float32Array);
    if (ids.length !== n * topK || lps.length !== n * topK) throw new Error(`queue job ${id}: request ${i} has ${ids.length} top-${topK} entries from worker ${r!.worker}, expected ${n * topK}`);
    const rows = <T>(a: T[]) => Array.from({ length: n }, (_, p) => a.slice(p * topK, (p + 1) * topK));
    out.push({ logprobs, topIds: rows(ids), topLogprobs: rows(lps) });
  }
  return out;
}
