// Load a prompt file into TaskRecords, never dropping a record silently (R11, R12).
//
// Every row read ends in exactly one place: `records`, `rejects` (malformed — bad JSON, missing
// prompt or answer, wrong types, duplicate id — or a too-long prompt under onTooLong 'reject'), or
// the `filteredTooLong` count (too-long prompts under 'filter'). Prompts are never sliced. Rejects
// go to `rejectsFile` with source, line/row, reason and text; the load then fails when
// rejects / rows read > maxRejectFraction, and when no record is left at all.

import { existsSync, statSync } from 'node:fs';
import { atomicWriteFile } from '../../engine/io/atomic.ts';
import { basename, resolve } from 'node:path';
import type { TaskRecord } from '../tasks/types.ts';
import { encodePrompt } from '../chat.ts';
import { FORMATS, formatOf, type SourceRow } from './readers.ts';
import { DEFAULT_FIELDS, previewText, toTaskRecord } from './record.ts';
import type { FieldMap, LoadResult, Reject, SourceOptions } from './types.ts';

/** Raised when a load stops; carries what was rejected. */
export class PromptSourceError extends Error {
  constructor(message: string, readonly rejects: readonly Reject[]) {
    super(message);
    this.name = 'PromptSourceError';
  }
}

interface Resolved {
  fields: FieldMap;
  requireAnswer: boolean;
  maxRejectFraction: number;
  maxPromptLength: number;
  onTooLong: 'reject' | 'filter';
  promptLength: (record: TaskRecord) => number;
  requireCompletion: boolean;
  unitName: string;
  /** "prompt source x.jsonl" or, with opts.name, e.g. "data.path x.jsonl": how messages name the file. */
  label: string;
  limitName: string;
  contextLimit?: { tokens: number; what: string };
}

function resolveOptions(source: string, o: SourceOptions): Resolved {
  const label = `${o.name ?? 'prompt source'} ${source}`;
  const limitName = o.limitName ?? 'maxPromptLength';
  const maxRejectFraction = o.maxRejectFraction ?? 0.01;
  if (!(maxRejectFraction >= 0 && maxRejectFraction <= 1)) throw new Error(`${label}: maxRejectFraction must be in [0, 1], got ${maxRejectFraction}`);
  const maxPromptLength = o.maxPromptLength ?? Infinity;
  if (!(maxPromptLength > 0)) throw new Error(`${label}: ${limitName} must be positive, got ${maxPromptLength}`);
  const onTooLong = o.onTooLong ?? 'reject';
  if (onTooLong !== 'reject' && onTooLong !== 'filter') throw new Error(`${label}: onTooLong must be 'reject' or 'filter', got ${String(onTooLong)}`);
  const tok = o.tokenizer;
  const encoder = new TextEncoder();
  return {
    fields: { ...DEFAULT_FIELDS, ...o.fields },
    requireAnswer: o.requireAnswer ?? true,
    maxRejectFraction,
    maxPromptLength,
    onTooLong,
    promptLength: tok
      ? (rec) => encodePrompt(tok, rec, o.chat).length
      : (rec) => (rec.messages ? rec.messages.reduce((a, m) => a + encoder.encode(m.content).length, 0) : encoder.encode(rec.prompt).length),
    requireCompletion: o.requireCompletion ?? false,
    unitName: tok ? 'tokens' : 'bytes',
    label,
    limitName,
    contextLimit: tok ? o.contextLimit : undefined,
  };
}

/** Mutable tallies of one load. */
interface Tally {
  records: TaskRecord[];
  completions: string[];
  rejects: Reject[];
  filteredTooLong: number;
  total: number;
  firstSeen: Map<string, number>;
}

/** Route one row to records, rejects or the filtered count. */
function routeRow(row: SourceRow, file: string, unit: 'line' | 'row', r: Resolved, t: Tally): void {
  t.total++;
  const reject = (reason: string, text: string) => t.rejects.push({ source: file, [unit]: row.index, reason, text });
  if ('problem' in row) return void reject(row.problem.reason, row.problem.text);
  const result = toTaskRecord(row.value, r.fields, r.requireAnswer, `${basename(file)}:${row.index}`, { completion: r.requireCompletion });
  if ('reason' in result) return void reject(result.reason, previewText(row.value));
  const { record } = result;
  let length: number;
  try {
    length = r.promptLength(record);
  } catch (e) {
    // a model without a chat template is no record's fault: stop at once, saying what to change
    if (/^no chat template/.test((e as Error).message))
      throw new PromptSourceError(`${r.label}: ${unit} ${row.index} is a conversation, but ${(e as Error).message}; or set the chat template mode to "none" (data.chatTemplate, --chat-template) to use each conversation's last user turn as a plain prompt`, t.rejects);
    return void reject(`cannot render the prompt: ${(e as Error).message}`, previewText(row.value));
  }
  if (length > r.maxPromptLength) {
    if (r.onTooLong === 'filter') return void t.filteredTooLong++;
    return void reject(`prompt too long: ${length} ${r.unitName} > ${r.limitName} ${r.maxPromptLength}`, previewText(row.value));
  }
  if (r.contextLimit && length > r.contextLimit.tokens) {
    throw new Error(`${r.label} ${unit} ${row.index} (id ${JSON.stringify(record.id)}): the prompt has ${length} tokens, more than the ${r.contextLimit.tokens} the model can take ` +
      `(${r.contextLimit.what}); prompts are never sliced: shorten or remove it, or set ${r.limitName} (with onTooLong 'reject' or 'filter') to at most ${r.contextLimit.tokens}`);
  }
  const first = t.firstSeen.get(record.id);
  if (first !== undefined) return void reject(`duplicate id ${JSON.stringify(record.id)} (first at ${unit} ${first})`, previewText(row.value));
  t.firstSeen.set(record.id, row.index);
  t.records.push(record);
  if (result.completion !== undefined) t.completions.push(result.completion);
}

async function writeRejects(path: string, rejects: readonly Reject[]): Promise<void> {
  await atomicWriteFile(path, Buffer.from(rejects.map((r) => JSON.stringify(r) + '\n').join(''))); // whole or absent after a kill
}

function summarize(file: string, t: Tally, r: Resolved, rejectsFile?: string): string {
  const parts = [`${file}: ${t.records.length} of ${t.total} records loaded`, `${t.rejects.length} rejected${rejectsFile && t.rejects.length ? ` (see ${rejectsFile})` : ''}`];
  if (r.maxPromptLength !== Infinity) parts.push(`${t.filteredTooLong} filtered as longer than ${r.maxPromptLength} ${r.unitName}`);
  return parts.join(', ');
}

function checkThreshold(file: string, t: Tally, r: Resolved, rejectsFile?: string): void {
  const where = (x: Reject) => `${x.line !== undefined ? `line ${x.line}` : `row ${x.row}`}: ${x.reason}`;
  const first = t.rejects.slice(0, 3).map(where).join('; ');
  const seeFile = rejectsFile ? `; all rejects in ${rejectsFile}` : '';
  if (t.total === 0) throw new PromptSourceError(`${r.label}: no records`, t.rejects);
  const fraction = t.rejects.length / t.total;
  if (fraction > r.maxRejectFraction)
    throw new PromptSourceError(
      `${r.label}: ${t.rejects.length} of ${t.total} records rejected (${(100 * fraction).toFixed(1)}% > maxRejectFraction ` +
        `${(100 * r.maxRejectFraction).toFixed(1)}%); first: ${first}${seeFile}`,
      t.rejects,
    );
  if (t.records.length === 0)
    throw new PromptSourceError(`${r.label}: no usable records (${t.rejects.length} rejected, ${t.filteredTooLong} filtered as too long)${seeFile}`, t.rejects);
}

/** Read `file` (JSONL, Parquet or Arrow IPC) into TaskRecords under `opts`; see the header for the rules. */
export async function loadPrompts(file: string, opts: SourceOptions = {}): Promise<LoadResult> {
  const r = resolveOptions(file, opts);
  const reader = FORMATS[opts.format ?? formatOf(file)];
  if (!existsSync(file)) throw new PromptSourceError(`${r.label}: no such file (resolved to ${resolve(file)})`, []);
  if (statSync(file).isDirectory()) throw new PromptSourceError(`${r.label}: is a directory, not a prompt file`, []);
  const t: Tally = { records: [], completions: [], rejects: [], filteredTooLong: 0, total: 0, firstSeen: new Map() };
  for await (const row of reader.read(file)) routeRow(row, file, reader.unit, r, t);
  if (opts.rejectsFile) await writeRejects(opts.rejectsFile, t.rejects);
  checkThreshold(file, t, r, opts.rejectsFile);
  const { records, rejects, filteredTooLong, total } = t;
  return { source: file, records, ...(r.requireCompletion ? { completions: t.completions } : {}), rejects, filteredTooLong, total, summary: summarize(file, t, r, opts.rejectsFile) };
}
