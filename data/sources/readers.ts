// The file formats a prompt source can be, as a registry: extension → format → row reader.
// Each reader yields rows in file order, either a parsed object or a per-row problem (JSONL's bad
// lines); a file that cannot be read at all (missing, not Parquet, not Arrow IPC) throws naming it.
// Parquet and Arrow files are read whole into memory: prompt sets are small next to a model.

import { readFile } from 'node:fs/promises';
import { extname } from 'node:path';
import { tableFromIPC, Vector } from 'apache-arrow';
import { asyncBufferFromFile, parquetReadObjects } from 'hyparquet';
import { readJsonl, type JsonlProblem } from '../jsonl.ts';
import type { SourceFormat } from './types.ts';

/** A row (JSONL: 1-based line; Parquet/Arrow: 0-based row) and its object, or why it has none. */
export type SourceRow = { index: number; value: Record<string, unknown> } | { index: number; problem: { reason: string; text: string } };

export interface FormatReader {
  /** What `SourceRow.index` counts, named in rejects and default ids. */
  readonly unit: 'line' | 'row';
  read(path: string): AsyncIterable<SourceRow>;
}

async function* jsonlRows(path: string): AsyncGenerator<SourceRow> {
  const problems: JsonlProblem[] = [];
  const drain = () => problems.splice(0).map((p) => ({ index: p.line, problem: { reason: p.reason, text: p.text } }));
  for await (const r of readJsonl(path, (p) => problems.push(p))) {
    yield* drain();
    yield { index: r.line, value: r.value };
  }
  yield* drain();
}

async function* parquetRows(path: string): AsyncGenerator<SourceRow> {
  let rows: Record<string, unknown>[];
  try {
    rows = await parquetReadObjects({ file: await asyncBufferFromFile(path) });
  } catch (e) {
    throw new Error(`prompt source ${path}: cannot read as Parquet: ${(e as Error).message}`, { cause: e });
  }
  for (const [index, value] of rows.entries()) yield { index, value };
}

/** Arrow list/struct cells come back as Vectors; readers of `meta` expect plain arrays. */
const plainCell = (v: unknown) => (v instanceof Vector ? v.toJSON() : v);

async function* arrowRows(path: string): AsyncGenerator<SourceRow> {
  let table;
  try {
    table = tableFromIPC(await readFile(path));
  } catch (e) {
    throw new Error(`prompt source ${path}: cannot read as Arrow IPC: ${(e as Error).message}`, { cause: e });
  }
  for (let index = 0; index < table.numRows; index++) {
    const row = (table.get(index)?.toJSON() ?? {}) as Record<string, unknown>;
    yield { index, value: Object.fromEntries(Object.entries(row).map(([k, v]) => [k, plainCell(v)])) };
  }
}

export const FORMATS: Readonly<Record<SourceFormat, FormatReader>> = Object.freeze({
  jsonl: { unit: 'line', read: jsonlRows },
  parquet: { unit: 'row', read: parquetRows },
  arrow: { unit: 'row', read: arrowRows },
});

const EXTENSIONS: Readonly<Record<string, SourceFormat>> = Object.freeze({
  '.jsonl': 'jsonl',
  '.ndjson': 'jsonl',
  '.parquet': 'parquet',
  '.arrow': 'arrow',
  '.arrows': 'arrow',
  '.ipc': 'arrow',
  '.feather': 'arrow',
});

/** The format `path`'s extension implies; throws listing the known extensions. */
export function formatOf(path: string): SourceFormat {
  const ext = extname(path).toLowerCase();
  const format = Object.hasOwn(EXTENSIONS, ext) ? EXTENSIONS[ext] : undefined;
  if (!format) throw new Error(`prompt source ${path}: unknown extension "${ext}"; known: ${Object.keys(EXTENSIONS).join(', ')} (or pass format)`);
  return format;
}
