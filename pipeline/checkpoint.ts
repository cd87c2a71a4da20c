// Checkpoints and their commit protocol (docs/reliability.md habits 1-2, R1-R3, R13).
//
//   <run>/checkpoints/step-000012/
//     model/                  Hugging Face layout (saveModelDir): config.json, safetensors, tokenizer files
//     adapter/                instead of model/ for a LoRA run: PEFT's adapter_config.json and
//                             adapter_model.safetensors, plus the base's config.json
//     optimizer.safetensors   AdamW moments `m.<name>`, `v.<name>` as flat F32 tensors
//     state.json              t, every RNG state, the data cursor, produced shard ids, counters,
//                             tokenizerFrom, meta
//     COMMITTED               manifest of every other file (path, bytes, sha256), written last
//
// Commit: everything is written into `checkpoints/.tmp-step-000012-<pid>-<hex>/`, each file through
// atomicWriteFile (fsync'd); the files are hashed back from disk; COMMITTED is written (atomic, fsync);
// the temp directory is renamed to `step-000012` and `checkpoints/` is fsync'd. Only `step-N`
// directories whose COMMITTED verifies (its own checksum, then the size and sha256 of every file it
// lists) count: a kill at any moment leaves the previous checkpoint as the latest, and a `.tmp-*`
// directory that cleanTemps removes at startup (an error thrown during a save removes its own temp
// directory before rethrowing). COMMITTED holds no wall-clock time, so the same state
// saved twice gives the same bytes (R1). Old checkpoints are removed only after the new one is
// committed, and by renaming them to `.tmp-*` first, so a kill mid-delete never leaves a half-deleted
// `step-N` behind.
//
// Deliberate choices: saving step N when `step-N` exists replaces it (a resume that fell back past a
// corrupt checkpoint redoes that step); committed checkpoints with a step above N are removed, since
// they belong to a timeline abandoned by resuming from an earlier step and the next resume would
// otherwise pick them up. Verification reads every byte (about 1 s per GB), on latestCheckpoint and
// again on loadCheckpoint. Leaves out: a lock against two writers on one run directory, async
// (background) saves, and files a manifest does not list (ignored, never read).

import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { atomicWriteFile, fsyncDir } from '../engine/io/atomic.ts';
import { readSafetensors, writeSafetensors } from '../engine/io/safetensors.ts';
import type { RngState } from '../engine/rng.ts';
import { CorruptArtifactError } from '../data/store/shards.ts';
import type { ModelConfig } from '../student/model/config.ts';
import { type LoraSpec, loadAdapterDir, savePeftAdapter } from '../student/model/lora.ts';
import { type Weights, loadModelDir, saveModelDir } from '../student/model/weights.ts';
import { checkJson, runDirPaths } from './rundir.ts';

/** Everything a resumed run needs to continue exactly where the saved one was (habit 2). */
export interface CheckpointState {
  config: ModelConfig;
  weights: Weights;
  /** AdamW step count and moments (`m.<param>`, `v.<param>`), flattened. */
  optimizer: { t: number; tensors: Record<string, Float32Array> };
  /** Every RNG's Rng.state(), by the name of its use (sampling, shuffle, ...). */
  rng: Record<string, RngState>;
  /** The data cursor (e.g. EpochCursor {epoch, index}); any JSON value. */
  cursor: unknown;
  /** Ids of the Arrow shards already produced (R6: reused on resume, never regenerated). */
  shards: string[];
  /** Step counters: skipped steps, non-finite skips in a row, ... */
  counters: Record<string, number>;
  /**
   * Directory whose tokenizer files are copied into model/ (so the checkpoint loads on its own). It is
   * recorded and handed back by loadCheckpoint as given: pass the run's source directory, not an
   * earlier checkpoint, which keepLast may delete.
   */
  tokenizerFrom: string;
  meta?: Record<string, unknown>;
  /** A LoRA run: `weights` are the adapters of `spec`, saved as a PEFT directory naming `baseModel`. */
  lora?: { spec: LoraSpec; baseModel: string };
}

/** The phases of a save, in order; onPhase(p) runs just before phase p starts. */
export const PHASES = ['weights', 'optimizer', 'state', 'manifest', 'rename', 'prune'] as const;
export type CheckpointPhase = (typeof PHASES)[number];

export interface SaveCheckpointOptions {
  /** Keep this many committed checkpoints (the new one included); default: keep all. */
  keepLast?: number;
  /** Fault injection for tests: called before each phase with the temp directory; may throw or exit. */
  onPhase?: (phase: CheckpointPhase, tempDir: string) => void | Promise<void>;
}

export interface CheckpointRef {
  step: number;
  dir: string;
}

export interface RejectedCheckpoint extends CheckpointRef {
  error: CorruptArtifactError;
}

export type LoadedCheckpoint = CheckpointState & CheckpointRef;

interface ManifestFile {
  path: string;
  bytes: number;
  sha256: string;
}
interface Manifest {
  format: 'opd-checkpoint';
  version: 1;
  step: number;
  files: ManifestFile[];
}

export const COMMITTED = 'COMMITTED';
const MODEL_DIR = 'model';
const OPTIMIZER_FILE = 'optimizer.safetensors';
const STATE_FILE = 'state.json';
const ADAPTER_DIR = 'adapter';
const REQUIRED = [OPTIMIZER_FILE, STATE_FILE];
const STEP_RE = /^step-(\d{6,})$/;
const TEMP_PREFIX = '.tmp-';

export const stepDirName = (step: number) => `step-${String(step).padStart(6, '0')}`;

// ---- saving -----------------------------------------------------------------------------------

/** Writes and commits the checkpoint of `step`, then prunes to keepLast; returns it and the steps removed. */
export async function saveCheckpoint(runDir: string, step: number, state: CheckpointState, opts: SaveCheckpointOptions = {}): Promise<CheckpointRef & { removed: number[] }> {
  checkState(step, state, opts);
  const root = runDirPaths(runDir).checkpoints;
  await ensureDir(root);
  const tmp = path.join(root, `${TEMP_PREFIX}${stepDirName(step)}-${process.pid}-${randomBytes(4).toString('hex')}`);
  const dir = path.join(root, stepDirName(step));
  const phase = async (p: CheckpointPhase) => opts.onPhase?.(p, tmp);
  try {
    await fsp.mkdir(tmp);
    await writeContents(tmp, step, state, phase);
    await phase('rename');
    await commitRename(root, tmp, dir);
  } catch (err) {
    await fsp.rm(tmp, { recursive: true, force: true }).catch(() => undefined);
    throw err;
  }
  await phase('prune');
  const removed = await prune(root, step, opts.keepLast ?? Infinity);
  return { step, dir, removed };
}

/** Everything but the rename: model/, optimizer.safetensors, state.json, then COMMITTED. */
async function writeContents(tmp: string, step: number, s: CheckpointState, phase: (p: CheckpointPhase) => Promise<void>): Promise<void> {
  await phase('weights');
  if (s.lora) {
    await savePeftAdapter(path.join(tmp, ADAPTER_DIR), s.config, s.lora.spec, s.weights, s.lora.baseModel, { withBaseConfig: true });
  } else {
    await saveModelDir(path.join(tmp, MODEL_DIR), { config: s.config, weights: s.weights }, { tokenizerFrom: s.tokenizerFrom });
  }
  await phase('optimizer');
  const tensors = Object.entries(s.optimizer.tensors).map(([name, data]) => ({ name, shape: [data.length], data, dtype: 'F32' as const }));
  await writeSafetensors(path.join(tmp, OPTIMIZER_FILE), tensors);
  await phase('state');
  const { rng, cursor, shards, counters, tokenizerFrom, meta } = s;
  const json = { version: 1, step, t: s.optimizer.t, rng, cursor, shards, counters, tokenizerFrom, meta, ...(s.lora ? { lora: s.lora } : {}) };
  await atomicWriteFile(path.join(tmp, STATE_FILE), utf8(JSON.stringify(json, null, 1) + '\n'));
  await phase('manifest');
  const files = await Promise.all((await listFiles(tmp)).map(async (p) => describeFile(tmp, p)));
  const manifest: Manifest = { format: 'opd-checkpoint', version: 1, step, files };
  // atomicWriteFile fsyncs tmp/ after COMMITTED, which also makes the model/ entry durable.
  await atomicWriteFile(path.join(tmp, COMMITTED), utf8(JSON.stringify({ ...manifest, sha256: manifestSha(manifest) }, null, 1) + '\n'));
}

/** The atomic step: an existing `step-N` is first moved to a `.tmp-` name (replaced, then removed). */
async function commitRename(root: string, tmp: string, dir: string): Promise<void> {
  let aside: string | null = null;
  if (fs.existsSync(dir)) {
    aside = path.join(root, `${TEMP_PREFIX}old-${path.basename(dir)}-${process.pid}-${randomBytes(4).toString('hex')}`);
    await fsp.rename(dir, aside);
  }
  await fsp.rename(tmp, dir);
  await fsyncDir(root);
  if (aside !== null) await fsp.rm(aside, { recursive: true, force: true });
}

/** Removes committed checkpoints above `step`, and all but the newest `keep` at or below it. */
async function prune(root: string, step: number, keep: number): Promise<number[]> {
  const others = listCheckpointDirs(root).filter((c) => c.step !== step);
  const older = others.filter((c) => c.step < step).reverse();
  const doomed = [...others.filter((c) => c.step > step), ...older.slice(Math.max(0, keep - 1))];
  const trash: string[] = [];
  for (const c of doomed) {
    const t = path.join(root, `${TEMP_PREFIX}del-${path.basename(c.dir)}-${process.pid}-${randomBytes(4).toString('hex')}`);
    await fsp.rename(c.dir, t);
    trash.push(t);
  }
  if (trash.length === 0) return [];
  await fsyncDir(root);
  for (const t of trash) await fsp.rm(t, { recursive: true, force: true });
  return doomed.map((c) => c.step).sort((a, b) => a - b);
}

/** Refuse bad input before the first byte is written (habit 5). */
function checkState(step: number, s: CheckpointState, opts: SaveCheckpointOptions): void {
  const fail = (what: string) => new Error(`saveCheckpoint(step ${step}): ${what}`);
  if (!Number.isSafeInteger(step) || step < 0) throw fail('step must be a non-negative integer');
  const keep = opts.keepLast;
  if (keep !== undefined && !(Number.isInteger(keep) && keep >= 1)) throw fail(`keepLast must be an integer >= 1, got ${keep}`);
  if (!Number.isSafeInteger(s.optimizer.t) || s.optimizer.t < 0) throw fail(`optimizer.t must be a non-negative integer, got ${s.optimizer.t}`);
  for (const [name, a] of Object.entries(s.optimizer.tensors)) if (!(a instanceof Float32Array)) throw fail(`optimizer tensor ${name} is not a Float32Array`);
  for (const [name, r] of Object.entries(s.rng)) if (!isRngState(r)) throw fail(`rng.${name} is not four unsigned 32-bit integers`);
  for (const [name, v] of Object.entries(s.counters)) if (typeof v !== 'number' || !Number.isFinite(v)) throw fail(`counter ${name} is ${v}, not a finite number`);
  if (!Array.isArray(s.shards) || !s.shards.every((x) => typeof x === 'string')) throw fail('shards must be an array of shard ids (strings)');
  if (typeof s.tokenizerFrom !== 'string' || s.tokenizerFrom === '') throw fail('tokenizerFrom must name a directory');
  if (s.cursor === undefined) throw fail('cursor is missing');
  checkJson(s.cursor, 'cursor');
  if (s.meta !== undefined) checkJson(s.meta, 'meta');
}

const isRngState = (r: unknown): r is RngState =>
  Array.isArray(r) && r.length === 4 && r.every((x) => Number.isInteger(x) && x >= 0 && x <= 0xffffffff);

// ---- finding and verifying --------------------------------------------------------------------

/** The `step-N` directories in the run, oldest first (committed or not, verified or not). */
export function listCheckpoints(runDir: string): CheckpointRef[] {
  return listCheckpointDirs(runDirPaths(runDir).checkpoints);
}

function listCheckpointDirs(root: string): CheckpointRef[] {
  if (!fs.existsSync(root)) return [];
  const refs: CheckpointRef[] = [];
  for (const e of fs.readdirSync(root, { withFileTypes: true })) {
    const step = parseStep(e.name);
    if (e.isDirectory() && step !== null) refs.push({ step, dir: path.join(root, e.name) });
  }
  return refs.sort((a, b) => a.step - b.step);
}

function parseStep(name: string): number | null {
  const m = STEP_RE.exec(name);
  const step = m ? Number(m[1]) : NaN;
  return Number.isSafeInteger(step) && stepDirName(step) === name ? step : null;
}

/**
 * The newest checkpoint whose COMMITTED verifies, or null; `rejected` lists each newer one passed
 * over, with a CorruptArtifactError naming the file at fault. I/O errors other than corruption throw.
 */
export async function latestCheckpoint(runDir: string): Promise<{ latest: CheckpointRef | null; rejected: RejectedCheckpoint[] }> {
  const rejected: RejectedCheckpoint[] = [];
  for (const ref of listCheckpoints(runDir).reverse()) {
    try {
      await verifyCheckpoint(ref.dir);
      return { latest: ref, rejected };
    } catch (err) {
      if (!(err instanceof CorruptArtifactError)) throw err;
      rejected.push({ ...ref, error: err });
    }
  }
  return { latest: null, rejected };
}

/** Checks COMMITTED (structure, own checksum, step) and the size, then the sha256, of every file it lists. */
export async function verifyCheckpoint(dir: string): Promise<void> {
  const manifest = readManifest(dir);
  for (const f of manifest.files) {
    const file = path.join(dir, f.path);
    let size: number;
    try {
      size = (await fsp.stat(file)).size;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new CorruptArtifactError(file, `listed in ${COMMITTED} but missing`);
      throw err;
    }
    if (size !== f.bytes) throw new CorruptArtifactError(file, `size ${size} bytes, ${COMMITTED} says ${f.bytes}`);
  }
  for (const f of manifest.files) {
    const file = path.join(dir, f.path);
    if ((await sha256File(file)) !== f.sha256) throw new CorruptArtifactError(file, `sha256 does not match ${COMMITTED}`);
  }
}

function readManifest(dir: string): Manifest {
  const file = path.join(dir, COMMITTED);
  const bad = (why: string) => new CorruptArtifactError(file, why);
  if (!fs.existsSync(file)) throw bad(`missing: ${dir} was never committed`);
  let m: Manifest & { sha256?: unknown };
  try {
    m = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    throw bad(`not valid JSON (${(err as Error).message})`);
  }
  if (m?.format !== 'opd-checkpoint' || m.version !== 1 || !Number.isSafeInteger(m.step) || !Array.isArray(m.files)) {
    throw bad('not an opd checkpoint manifest (format, version, step, files)');
  }
  const { sha256, ...body } = m;
  if (sha256 !== manifestSha(body)) throw bad('its own checksum does not match its contents');
  const step = parseStep(path.basename(dir));
  if (step !== null && step !== m.step) throw bad(`says step ${m.step} but the directory is ${path.basename(dir)}`);
  for (const f of m.files) {
    if (!isSafeRelative(f?.path) || !Number.isSafeInteger(f.bytes) || typeof f.sha256 !== 'string') throw bad(`has a malformed entry ${JSON.stringify(f)}`);
  }
  const listed = new Set(m.files.map((f) => f.path));
  for (const r of REQUIRED) if (!listed.has(r)) throw bad(`does not list ${r}`);
  if (!listed.has(`${MODEL_DIR}/config.json`) && !listed.has(`${ADAPTER_DIR}/adapter_config.json`)) throw bad(`lists neither ${MODEL_DIR}/config.json nor ${ADAPTER_DIR}/adapter_config.json`);
  return m;
}

const isSafeRelative = (p: unknown): p is string =>
  typeof p === 'string' && p !== '' && !path.isAbsolute(p) && !p.split('/').some((s) => s === '..' || s === '.' || s === '');

// ---- loading ----------------------------------------------------------------------------------

/** Verifies and reads the committed checkpoint `dir` (a `step-N` directory; a temp one is refused). */
export async function loadCheckpoint(dir: string): Promise<LoadedCheckpoint> {
  const step = parseStep(path.basename(dir));
  if (step === null) throw new Error(`${dir} is not a checkpoint directory (expected a name like ${stepDirName(12)}); temp directories are never loaded`);
  await verifyCheckpoint(dir);
  const adapterDir = path.join(dir, ADAPTER_DIR);
  const model = fs.existsSync(path.join(adapterDir, 'adapter_config.json')) ? loadAdapterDir(adapterDir) : await loadModelDir(path.join(dir, MODEL_DIR));
  const tensors = readOptimizer(path.join(dir, OPTIMIZER_FILE));
  const s = readState(path.join(dir, STATE_FILE), step);
  return {
    step, dir, config: model.config, weights: model.weights, optimizer: { t: s.t, tensors },
    rng: s.rng, cursor: s.cursor, shards: s.shards, counters: s.counters, tokenizerFrom: s.tokenizerFrom, meta: s.meta,
    ...(s.lora ? { lora: s.lora } : {}),
  };
}

function readOptimizer(file: string): Record<string, Float32Array> {
  const out: Record<string, Float32Array> = {};
  for (const [name, t] of readSafetensors(file).tensors) {
    if (!(t.data instanceof Float32Array) || t.dtype !== 'F32') throw new CorruptArtifactError(file, `tensor ${name} is ${t.dtype}, not F32`);
    out[name] = t.data;
  }
  return out;
}

type SavedState = Pick<CheckpointState, 'rng' | 'cursor' | 'shards' | 'counters' | 'tokenizerFrom' | 'meta' | 'lora'> & { t: number };

function readState(file: string, step: number): SavedState {
  const bad = (why: string) => new CorruptArtifactError(file, why);
  let s: Record<string, unknown>;
  try {
    s = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    throw bad(`not valid JSON (${(err as Error).message})`);
  }
  if (s?.version !== 1 || s.step !== step) throw bad(`version ${String(s?.version)} / step ${String(s?.step)}, expected 1 / ${step}`);
  if (!Number.isSafeInteger(s.t)) throw bad('t is not an integer');
  const rng = s.rng as Record<string, unknown>;
  if (typeof rng !== 'object' || rng === null || !Object.values(rng).every(isRngState)) throw bad('rng is not a map of four-u32 states');
  if (!Array.isArray(s.shards) || !s.shards.every((x) => typeof x === 'string')) throw bad('shards is not a list of ids');
  const counters = s.counters as Record<string, unknown>;
  const numbers = typeof counters === 'object' && counters !== null && Object.values(counters).every((v) => typeof v === 'number');
  if (!numbers) throw bad('counters is not a map of numbers');
  if (typeof s.tokenizerFrom !== 'string') throw bad('tokenizerFrom is not a path');
  if (!('cursor' in s)) throw bad('cursor is missing');
  return {
    t: s.t as number, rng: rng as Record<string, RngState>, cursor: s.cursor, shards: s.shards, counters: counters as Record<string, number>,
    tokenizerFrom: s.tokenizerFrom, meta: s.meta as Record<string, unknown> | undefined,
    ...(s.lora ? { lora: s.lora as CheckpointState['lora'] } : {}),
  };
}

// ---- temp directories and small helpers ----------------------------------------------------------

/** Removes `.tmp-*` leftovers of killed saves and deletes in checkpoints/ (call at startup, single writer). */
export async function cleanTemps(runDir: string): Promise<string[]> {
  const root = runDirPaths(runDir).checkpoints;
  if (!fs.existsSync(root)) return [];
  const temps = fs.readdirSync(root).filter((n) => n.startsWith(TEMP_PREFIX)).sort();
  for (const n of temps) await fsp.rm(path.join(root, n), { recursive: true, force: true });
  if (temps.length > 0) await fsyncDir(root);
  return temps;
}

async function ensureDir(dir: string): Promise<void> {
  if (fs.existsSync(dir)) return;
  await fsp.mkdir(dir, { recursive: true });
  await fsyncDir(path.dirname(dir));
}

/** Every regular file under `dir`, as sorted '/'-separated relative paths. */
async function listFiles(dir: string, prefix = ''): Promise<string[]> {
  const out: string[] = [];
  for (const e of await fsp.readdir(path.join(dir, prefix), { withFileTypes: true })) {
    const rel = prefix === '' ? e.name : `${prefix}/${e.name}`;
    if (e.isDirectory()) out.push(...(await listFiles(dir, rel)));
    else if (e.isFile()) out.push(rel);
    else throw new Error(`${path.join(dir, rel)}: unexpected non-file entry in a checkpoint`);
  }
  return out.sort();
}

async function describeFile(dir: string, rel: string): Promise<ManifestFile> {
  const file = path.join(dir, rel);
  return { path: rel, bytes: (await fsp.stat(file)).size, sha256: await sha256File(file) };
}

async function sha256File(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of fs.createReadStream(file, { highWaterMark: 1 << 20 })) h.update(chunk as Buffer);
  return h.digest('hex');
}

const manifestSha = (m: unknown) => createHash('sha256').update(JSON.stringify(m)).digest('hex');
const utf8 = (s: string) => new TextEncoder().encode(s);
