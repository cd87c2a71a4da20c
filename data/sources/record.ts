// One raw row (a parsed JSON object, a Parquet or Arrow row) → a TaskRecord, or the reason it is
// malformed. Pure: no I/O, no counting. Fields not mapped to a TaskRecord field go to `meta`, so a
// user reward can read extra columns. A prompt may be a conversation (TRL's conversational "prompt"
// list, or a "messages" column): see conversation.ts.

import type { TaskRecord } from '../tasks/types.ts';
import { describeValue } from '../rewards/user.ts';
import { readCompletion, readMessagesColumn, readPromptConversation, type Conversation } from './conversation.ts';
import type { FieldMap } from './types.ts';

export const DEFAULT_FIELDS: Readonly<FieldMap> = Object.freeze({ prompt: 'prompt', answer: 'answer', tag: 'tag', id: 'id', messages: 'messages', completion: 'completion' });

/** A record, and with `completion: true` its reference assistant reply (the completion column, or messages' final assistant turn). */
export type RowResult = { record: TaskRecord; completion?: string } | { reason: string };

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

/** The prompt: a string (as always), a conversation in the prompt field, or a messages column. */
function readPromptPart(row: Record<string, unknown>, fields: FieldMap): { prompt: string; messages?: Conversation['messages']; completion?: string } | { reason: string } {
  const p = row[fields.prompt];
  const m = row[fields.messages];
  if (!absent(p) && !absent(m)) return { reason: `both field "${fields.prompt}" and field "${fields.messages}" are set; give the prompt in one of them` };
  if (absent(p) && !absent(m)) return readMessagesColumn(m, fields.messages);
  if (!absent(p) && typeof p === 'object' && typeof p !== 'bigint') return readPromptConversation(p, fields.prompt);
  const prompt = readPrompt(row, fields.prompt);
  return typeof prompt === 'string' ? { prompt } : prompt;
}

/** The reference reply for SFT / scoring: the completion field, or messages' final assistant turn (not both). */
function readReply(row: Record<string, unknown>, fields: FieldMap, part: { messages?: unknown; completion?: string }): string | { reason: string } {
  const c = row[fields.completion];
  const fromMessages = absent(row[fields.prompt]) && !absent(row[fields.messages]);
  if (absent(c)) return part.completion ?? { reason: `missing field "${fields.completion}"${fromMessages ? ` (or a final assistant turn in "${fields.messages}")` : ''}` };
  if (part.completion !== undefined) return { reason: `field "${fields.messages}" ends with an assistant turn and field "${fields.completion}" is set too; keep one` };
  return readCompletion(c, fields.completion, part.messages !== undefined);
}

/**
 * Validate one row; `defaultId` is used when the id field is absent. With `o.completion` the row must
 * also hold a reference reply (SFT, scoring), returned beside the record.
 */
export function toTaskRecord(row: Record<string, unknown>, fields: FieldMap, requireAnswer: boolean, defaultId: string, o: { completion?: boolean } = {}): RowResult {
  const part = readPromptPart(row, fields);
  if ('reason' in part) return part;
  const prompt = part.prompt;
  const reply = o.completion ? readReply(row, fields, part) : undefined;
  if (typeof reply === 'object') return reply;
  const answer = readAnswer(row, fields.answer, requireAnswer);
  if (typeof answer !== 'string') return answer;
  const id = readId(row, fields.id, defaultId);
  if (typeof id !== 'string') return id;
  const tag = readTag(row, fields.tag);
  if (typeof tag === 'object') return tag;
  const record: TaskRecord = { id, prompt, answer };
  if (part.messages) record.messages = part.messages;
  if (tag !== undefined) record.tag = tag;
  // the completion column stays in meta unless it was read as the reply (plain records keep their bytes)
  const mapped = new Set([fields.prompt, fields.answer, fields.tag, fields.id, fields.messages, ...(o.completion ? [fields.completion] : [])]);
  const rest = Object.entries(row).filter(([k]) => !mapped.has(k));
  if (rest.length > 0) record.meta = Object.fromEntries(rest);
  return reply === undefined ? { record } : { record, completion: reply };
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
