// Arrow schemas of every stage boundary, in one file. Each field says its shape and unit.
// Stages exchange and store these tables only; no untyped bags of arrays cross folders.

import { Field, Float32, Int32, List, Schema, Table, Utf8, vectorFromArray } from 'apache-arrow';

const listOf = (t: Float32 | Int32) => new List(new Field('item', t, false));

/**
 * Teacher scores, one row per scored sequence (the score cache and per-step shards).
 * - key: sha256 hex of (teacher identity, top-k, start, ids): what the cache is looked up by
 * - teacher_id: TeacherIdentity.modelId
 * - start: index of the first scored token in the sequence
 * - ids [T]: the whole token sequence (prompt + completion), int32 token ids
 * - logprobs [T − start]: teacher log π_T(ids[t] | ids[<t]) for t ≥ start, nats (float32)
 * - top_k: k of the top-k columns (0 when absent)
 * - top_ids [(T − start)·k], top_logprobs [(T − start)·k]: row-major per position, nats
 */
export const teacherScoreSchema = new Schema([
  new Field('key', new Utf8(), false),
  new Field('teacher_id', new Utf8(), false),
  new Field('start', new Int32(), false),
  new Field('ids', listOf(new Int32()), false),
  new Field('logprobs', listOf(new Float32()), false),
  new Field('top_k', new Int32(), false),
  new Field('top_ids', listOf(new Int32()), false),
  new Field('top_logprobs', listOf(new Float32()), false),
]);

export interface TeacherScoreRow {
  key: string;
  teacherId: string;
  start: number;
  ids: readonly number[];
  logprobs: readonly number[];
  topK: number;
  topIds: readonly number[]; // flattened [(T − start)·k]
  topLogprobs: readonly number[];
}

export function teacherScoresToTable(rows: readonly TeacherScoreRow[]): Table {
  const col = <T>(f: (r: TeacherScoreRow) => T) => rows.map(f);
  return new Table(teacherScoreSchema, {
    key: vectorFromArray(col((r) => r.key), new Utf8()),
    teacher_id: vectorFromArray(col((r) => r.teacherId), new Utf8()),
    start: vectorFromArray(col((r) => r.start), new Int32()),
    ids: vectorFromArray(col((r) => [...r.ids]), listOf(new Int32())),
    logprobs: vectorFromArray(col((r) => [...r.logprobs]), listOf(new Float32())),
    top_k: vectorFromArray(col((r) => r.topK), new Int32()),
    top_ids: vectorFromArray(col((r) => [...r.topIds]), listOf(new Int32())),
    top_logprobs: vectorFromArray(col((r) => [...r.topLogprobs]), listOf(new Float32())),
  } as never);
}

export function tableToTeacherScores(t: Table): TeacherScoreRow[] {
  const out: TeacherScoreRow[] = [];
  for (let i = 0; i < t.numRows; i++) {
    const r = t.get(i)!;
    out.push({
      key: r.key,
      teacherId: r.teacher_id,
      start: r.start,
      ids: Array.from(r.ids.toArray() as Int32Array),
      logprobs: Array.from(r.logprobs.toArray() as Float32Array),
      topK: r.top_k,
      topIds: Array.from(r.top_ids.toArray() as Int32Array),
      topLogprobs: Array.from(r.top_logprobs.toArray() as Float32Array),
    });
  }
  return out;
}
