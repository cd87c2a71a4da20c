// One raw row (a parsed JSON object, a Parquet or Arrow row) → a TaskRecord, or the reason it is
// malformed. Pure: no I/O, no counting. Fields not mapped to a TaskRecord field go to `meta`, so a
// user reward can read extra columns.

import type { TaskRecord } from '../tasks/types.ts';
import { describeValue } from '../rewards/user.ts';
import type { FieldMap } from './types.ts';

export const DEFAULT_FIELDS: Readonly<FieldMap> = Object.freeze({ prompt: 'prompt', answer: 'answer', tag: 'tag', id: 'id' });

export type RowResult = { record: TaskRecord } | { reason: string };

const absent = (v: unknown) => v === undefined || v === null;
const wrongType = (name: string, want: string, v: unknown) => `field "${name}" must be ${want}, got ${describeValue(v)}`;

function readPrompt(row: Record<string, unknown>, name: string): string | { reason: string } {
  const v = row[name];
  if (absent(v)) return { reason: `missing field "${name}"` };
  if (typeof v !== 'string') return { reason: wrongType(name, 'a string', v) };
  if (v.trim() === '') return { reason: `field "${name}" is empty` };
  return v;
}

function readAnswer(row: Record<string, unknown>, name: string, required: boolean): string | { reason: string } {
  const v = row[name];
  if (absent(v)) return required ? { reason: `missing field "${name}"` } : '';
  if (typeof v === 'string') return v;
  if ((typeof v === 'number' && Number.isFinite(v)) || typeof v === 'bigint') return String(v);
  return { reason: wrongType(name, 'a string or a finite number', v) };
}

function readId(row: Record<string, unknown>, name: string, fallback: string): string | { reason: string } {
  const v = row[name];
  if (absent(v)) return fallback;
  if (typeof v === 'string' && v !== '') return v;
  if ((typeof v === 'number' && Number.isInteger(v)) || typeof v === 'bigint') return String(v);
  return { reason: wrongType(name, 'a non-empty string or an integer', v) };
}

function readTag(row: Record<string, unknown>, name: string): string | undefined | { reason: string } {
  const v = row[name];
  if (absent(v)) return undefined;
  return typeof v === 'string' ? v : { reason: wrongType(name, 'a string', v) };
}

/** Validate one row; `defaultId` is used when the id field is absent. */
export function toTaskRecord(row: Record<string, unknown>, fields: FieldMap, requireAnswer: boolean, defaultId: string): RowResult {
  const prompt = readPrompt(row, fields.prompt);
  if (typeof prompt !== 'string') return prompt;
  const answer = readAnswer(row, fields.answer, requireAnswer);
  if (typeof answer !== 'string') return answer;
  const id = readId(row, fields.id, defaultId);
  if (typeof id !== 'string') return id;
  const tag = readTag(row, fields.tag);
  if (typeof tag === 'object') return tag;
  const record: TaskRecord = { id, prompt, answer };
  if (tag !== undefined) record.tag = tag;
  const mapped = new Set(Object.values(fields));
  const rest = Object.entries(row).filter(([k]) => !mapped.has(k));
  if (rest.length > 0) record.meta = Object.fromEntries(rest);
  return { record };
}

/** JSON for a rejects file: bigint-safe, cut to 200 characters. */
export function previewText(value: unknown): string {
  let text: string;
  try {
    text = typeof value === 'string' ? value : JSON.stringify(value, (_k, v) => (typeof v === 'bigint' ? v.toString() : v)) ?? String(value);
  } catch {
    text = String(value);
  }
  return text.length > 200 ? text.slice(0, 200) + '…' : text;
}
