// Immutable Arrow shards with a checksummed manifest.
//
// Arrow IPC carries no checksums: a flipped byte or a file cut at a batch boundary can read back
// "fine". So every shard a directory holds is listed in `manifest.json` with its row count, schema
// fingerprint, byte size and sha256, and verified on every read; a mismatch is a CorruptArtifactError
// naming the file, never fewer rows or wrong values. Shards and the manifest are written atomically
// (temp name, fsync, rename, fsync dir); the manifest is rewritten last, so a shard that is on disk
// but not listed was never committed and is ignored.

import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { type Schema, type Table, tableFromIPC, tableToIPC } from 'apache-arrow';
import { atomicWriteFile } from '../../engine/io/atomic.ts';

export interface ShardEntry {
  file: string;
  rows: number;
  bytes: number;
  sha256: string;
  schema: string; // fingerprint of field names, types and nullability
}

export interface Manifest {
  version: 1;
  shards: ShardEntry[];
}

export class CorruptArtifactError extends Error {
  constructor(
    readonly file: string,
    readonly reason: string,
  ) {
    super(`${file}: corrupt artifact: ${reason}. The file was changed or cut after it was written; delete it (and its manifest entry) to regenerate, or restore it from a copy.`);
    this.name = 'CorruptArtifactError';
  }
}

export function schemaFingerprint(schema: Schema): string {
  const text = schema.fields.map((f) => `${f.name}:${String(f.type)}:${f.nullable ? 'null' : 'nonnull'}`).join(',');
  return createHash('sha256').update(text).digest('hex').slice(0, 16);
}

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

export function readManifest(dir: string): Manifest {
  const path = join(dir, 'manifest.json');
  if (!existsSync(path)) return { version: 1, shards: [] };
  try {
    const m = JSON.parse(readFileSync(path, 'utf8')) as Manifest;
    if (m.version !== 1 || !Array.isArray(m.shards)) throw new Error('unexpected structure');
    return m;
  } catch (e) {
    throw new CorruptArtifactError(path, `manifest is not valid (${(e as Error).message})`);
  }
}

/** Write `table` as shard `name` (e.g. "step-000012.rollouts") and list it in the manifest. */
export async function writeShard(dir: string, name: string, table: Table): Promise<ShardEntry> {
  await mkdir(dir, { recursive: true });
  const file = `${name}.arrow`;
  const manifest = readManifest(dir);
  if (manifest.shards.some((s) => s.file === file)) throw new Error(`${join(dir, file)}: shard already committed (shards are immutable)`);
  const bytes = tableToIPC(table, 'file');
  await atomicWriteFile(join(dir, file), bytes);
  const entry: ShardEntry = { file, rows: table.numRows, bytes: bytes.byteLength, sha256: sha256(bytes), schema: schemaFingerprint(table.schema) };
  manifest.shards.push(entry);
  await atomicWriteFile(join(dir, 'manifest.json'), new TextEncoder().encode(JSON.stringify(manifest, null, 1) + '\n'));
  return entry;
}

/** Read and verify a committed shard; `schema` (when given) must match what was written. */
export function readShard(dir: string, name: string, schema?: Schema): Table {
  const file = name.endsWith('.arrow') ? name : `${name}.arrow`;
  const path = join(dir, file);
  const entry = readManifest(dir).shards.find((s) => s.file === file);
  if (!entry) throw new Error(`${path}: no such committed shard in ${join(dir, 'manifest.json')}`);
  if (!existsSync(path)) throw new CorruptArtifactError(path, 'listed in the manifest but missing');
  const bytes = readFileSync(path);
  if (bytes.byteLength !== entry.bytes) throw new CorruptArtifactError(path, `size ${bytes.byteLength} bytes, manifest says ${entry.bytes}`);
  if (sha256(bytes) !== entry.sha256) throw new CorruptArtifactError(path, 'sha256 does not match the manifest');
  let table: Table;
  try {
    table = tableFromIPC(bytes);
  } catch (e) {
    throw new CorruptArtifactError(path, `not a readable Arrow IPC file (${(e as Error).message})`);
  }
  if (table.numRows !== entry.rows) throw new CorruptArtifactError(path, `${table.numRows} rows, manifest says ${entry.rows}`);
  const fp = schemaFingerprint(table.schema);
  if (fp !== entry.schema || (schema && schemaFingerprint(schema) !== fp))
    throw new CorruptArtifactError(path, `schema ${fp} differs from the expected ${schema ? schemaFingerprint(schema) : entry.schema}`);
  return table;
}

export function listShards(dir: string): ShardEntry[] {
  return readManifest(dir).shards;
}
