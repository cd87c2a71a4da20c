// The run directory: where one training run keeps everything it produces (docs/design.md "Data and the run
// directory"), and the small helpers that read and write its plain files.
//
//   <root>/<name>/
//     config.json     the frozen config, written once at the start; a resume compares against it (R14)
//     metrics.jsonl   one JSON object per step, each line fsync'd; cut back on resume (R1)
//     log.jsonl       the winston JSON log (pipeline/log.ts writes it)
//     shards/         Arrow shards + manifest.json (data/store/shards.ts)
//     checkpoints/    step-NNNNNN/ directories (pipeline/checkpoint.ts)
//     report/         HTML + plots
//     eval-before.json held-out accuracy and reward of the student before training (and the teacher)
//     eval/           every held-out completion with its reward and verdict: before.jsonl,
//                     teacher-<id>.jsonl, step-NNNNNN.jsonl (in-run evaluations), after.jsonl
//     rejects*.jsonl  prompt-file records that were not loaded (data/sources)
//     summary.json    the final numbers
//     elapsed.json    wall-clock seconds of each segment of the run (each `opd run` / `opd resume` of
//                     the directory); summary.json's wall_s is their sum. Kept outside the
//                     checkpoints so that the same state saved twice gives the same bytes (R1)
//     student-init/   the {builtin} student, created whole or not at all (pipeline/startup.ts)
//     student.sha256.json the student's model files as the run first used them, verified at every start
//     run.lock        {pid, host, since, command} of the process running the directory (pipeline/run-lock.ts)
//
// Every whole-file write goes through atomicWriteFile (temp name, fsync, rename, fsync dir). Metrics are
// appended, so a kill -9 can leave a torn last line; readers drop that one line (it has no trailing
// newline, so it can only be the last write) and truncateMetricsAfter rewrites the file without it.
// Non-finite metric values are written as the strings "NaN", "Infinity", "-Infinity": JSON has no
// such numbers and null would hide them. One process writes a run directory at a time: runJob
// holds run.lock (pipeline/run-lock.ts).

import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { atomicWriteFile, fsyncDir } from '../engine/io/atomic.ts';
import { writeError } from '../engine/io/disk-errors.ts';
import { CorruptArtifactError } from '../data/store/shards.ts';

/** Absolute paths of everything a run directory holds. */
export interface RunDir {
  dir: string;
  name: string;
  config: string;
  metrics: string;
  log: string;
  shards: string;
  checkpoints: string;
  report: string;
  /** Held-out completions, one JSONL file per evaluation (created when first written). */
  eval: string;
  summary: string;
  /** Wall-clock seconds per segment of the run (readSegments / writeSegments). */
  elapsed: string;
}

/** The paths of the run directory `dir` (nothing is created or checked). */
export function runDirPaths(dir: string): RunDir {
  const d = path.resolve(dir);
  const at = (f: string) => path.join(d, f);
  return {
    dir: d, name: path.basename(d), config: at('config.json'), metrics: at('metrics.jsonl'), log: at('log.jsonl'),
    shards: at('shards'), checkpoints: at('checkpoints'), report: at('report'), eval: at('eval'), summary: at('summary.json'),
    elapsed: at('elapsed.json'),
  };
}

const SUBDIRS = ['shards', 'checkpoints', 'report'] as const;

/**
 * Creates a new run directory under `root` with its subdirectories. Without `name` it is
 * `YYYYMMDD-HHMMSS-<6 hex>` (UTC time + random suffix, retried on the rare clash); a given `name`
 * that already exists is refused (resume opens it with openRunDir instead).
 */
export async function createRunDir(root: string, name?: string, now: Date = new Date()): Promise<RunDir> {
  await fsp.mkdir(root, { recursive: true });
  if (name !== undefined) checkName(name);
  for (let attempt = 0; ; attempt++) {
    const n = name ?? `${stamp(now)}-${randomBytes(3).toString('hex')}`;
    const rd = runDirPaths(path.join(root, n));
    try {
      await fsp.mkdir(rd.dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      if (name !== undefined) throw new Error(`run directory ${rd.dir} already exists; pick another name or resume it`);
      if (attempt >= 10) throw err;
      continue;
    }
    for (const sub of SUBDIRS) await fsp.mkdir(path.join(rd.dir, sub));
    await fsyncDir(rd.dir);
    await fsyncDir(path.resolve(root));
    return rd;
  }
}

/** An existing run directory (to resume); missing subdirectories are created. */
export async function openRunDir(dir: string): Promise<RunDir> {
  const rd = runDirPaths(dir);
  if (!fs.existsSync(rd.dir) || !fs.statSync(rd.dir).isDirectory()) throw new Error(`run directory ${rd.dir} does not exist`);
  for (const sub of SUBDIRS) await fsp.mkdir(path.join(rd.dir, sub), { recursive: true });
  return rd;
}

function checkName(name: string): void {
  if (name === '' || name === '.' || name === '..' || /[\\/\0]/.test(name)) throw new Error(`run name ${JSON.stringify(name)} is not a plain directory name`);
}

const stamp = (d: Date) => d.toISOString().replace(/\.\d+Z$/, '').replace(/-|:/g, '').replace('T', '-');

// ---- metrics.jsonl ----------------------------------------------------------------------------

/** One line of metrics.jsonl: the step it belongs to, then any JSON fields. */
export type MetricsRecord = { step: number } & Record<string, unknown>;

/** Appends `record` as one line and fsyncs it; refuses to append after a torn line (resume must truncate first). */
export async function appendMetrics(runDir: string, record: MetricsRecord): Promise<void> {
  if (!Number.isSafeInteger(record.step)) throw new Error(`appendMetrics: step must be an integer, got ${JSON.stringify(record.step)}`);
  const file = runDirPaths(runDir).metrics;
  const line = Buffer.from(JSON.stringify(record, finiteReplacer) + '\n');
  const fh = await fsp.open(file, 'a+').catch((e: unknown) => {
    throw writeError(e, file);
  });
  try {
    const { size } = await fh.stat();
    if (size > 0 && !(await endsWithNewline(fh, size))) {
      throw new CorruptArtifactError(file, 'the last line is incomplete (the job was killed mid-write); call truncateMetricsAfter(step) when resuming');
    }
    try {
      for (let off = 0; off < line.length; ) off += (await fh.write(line, off)).bytesWritten;
      await fh.sync();
    } catch (e) {
      // a full disk can cut the line: take it back, so the file keeps whole lines only
      await fh.truncate(size).catch(() => undefined);
      throw writeError(e, file);
    }
  } finally {
    await fh.close();
  }
}

async function endsWithNewline(fh: fsp.FileHandle, size: number): Promise<boolean> {
  const b = Buffer.alloc(1);
  await fh.read(b, 0, 1, size - 1);
  return b[0] === 0x0a;
}

/** JSON has no NaN/Infinity and would write null: keep what happened visible as a string. */
function finiteReplacer(_key: string, v: unknown): unknown {
  return typeof v === 'number' && !Number.isFinite(v) ? String(v) : v;
}

/** Every complete record in metrics.jsonl (none if the file does not exist); a torn last line is dropped. */
export function readMetrics(runDir: string): MetricsRecord[] {
  return metricsLines(runDirPaths(runDir).metrics).lines.map((l) => l.record);
}

/** The complete lines (text and parsed record) and whether a torn last line follows them. */
function metricsLines(file: string): { lines: Array<{ text: string; record: MetricsRecord }>; torn: boolean } {
  if (!fs.existsSync(file)) return { lines: [], torn: false };
  const parts = fs.readFileSync(file, 'utf8').split('\n');
  const last = parts.pop()!; // after the last '\n': empty, or a torn line a kill left behind
  return { lines: parts.map((text, i) => ({ text, record: parseMetricsLine(file, text, i + 1) })), torn: last !== '' };
}

function parseMetricsLine(file: string, line: string, lineNo: number): MetricsRecord {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch (err) {
    throw new CorruptArtifactError(file, `line ${lineNo} is not JSON (${(err as Error).message})`);
  }
  const step = (v as { step?: unknown } | null)?.step;
  if (typeof v !== 'object' || v === null || Array.isArray(v) || !Number.isSafeInteger(step)) {
    throw new CorruptArtifactError(file, `line ${lineNo} is not an object with an integer "step"`);
  }
  return v as MetricsRecord;
}

/**
 * Before resuming from the checkpoint of `step`: keeps the records of steps <= `step` (pass -1 to
 * keep none), drops later ones and any torn last line, and rewrites the file atomically, so that
 * the metrics of the resumed run line up with an uninterrupted run. Returns how many lines went.
 */
export async function truncateMetricsAfter(runDir: string, step: number): Promise<number> {
  if (!Number.isSafeInteger(step)) throw new Error(`truncateMetricsAfter: step must be an integer, got ${step}`);
  const file = runDirPaths(runDir).metrics;
  const { lines, torn } = metricsLines(file);
  const kept = lines.filter((l) => l.record.step <= step);
  if (kept.length === lines.length && !torn) return 0;
  await atomicWriteFile(file, Buffer.from(kept.map((l) => l.text + '\n').join('')));
  return lines.length - kept.length + (torn ? 1 : 0);
}

// ---- elapsed.json -----------------------------------------------------------------------------

/**
 * The seconds of each recorded segment of the run, oldest first ([] when none is recorded). A
 * segment is one runJob over the directory, from its start to its last record (the start of the
 * loop, each finished step, the end): a segment killed with -9 counts up to its last finished step;
 * one interrupted during start-up, before the loop, counts nothing.
 */
export function readSegments(runDir: string, warn: (msg: string) => void = () => {}): number[] {
  const file = runDirPaths(runDir).elapsed;
  if (!fs.existsSync(file)) return [];
  try {
    const seg = (JSON.parse(fs.readFileSync(file, 'utf8')) as { segments_s?: unknown })?.segments_s;
    if (Array.isArray(seg) && seg.every((x) => typeof x === 'number' && Number.isFinite(x) && x >= 0)) return seg as number[];
  } catch {
    // reported below
  }
  // a timing record is not worth refusing a resume over: say so and count the earlier time as 0
  warn(`${file} is not {"segments_s": [seconds, ...]}: wall_s will not include the earlier segments`);
  return [];
}

/** Replace elapsed.json with `segments` (seconds per segment, oldest first). */
export async function writeSegments(runDir: string, segments: readonly number[]): Promise<void> {
  await atomicWriteFile(runDirPaths(runDir).elapsed, Buffer.from(JSON.stringify({ segments_s: segments }) + '\n'));
}

// ---- the frozen config ------------------------------------------------------------------------

/** Writes config.json once; a second write is refused unless `replace` (an explicit resume override). */
export async function writeFrozenConfig(runDir: string, config: unknown, opts: { replace?: boolean } = {}): Promise<void> {
  const file = runDirPaths(runDir).config;
  checkJson(config, 'config');
  if (!opts.replace && fs.existsSync(file)) throw new Error(`${file} already exists: a run's config is frozen (pass replace to overwrite it on an explicit override)`);
  await atomicWriteFile(file, Buffer.from(JSON.stringify(config, null, 2) + '\n'));
}

/** The frozen config as written; a file that is not JSON is a CorruptArtifactError. */
export function readFrozenConfig(runDir: string): unknown {
  const file = runDirPaths(runDir).config;
  if (!fs.existsSync(file)) throw new Error(`${file} does not exist: this is not a run directory, or the run never started`);
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    throw new CorruptArtifactError(file, `not valid JSON (${(err as Error).message})`);
  }
}

/** Refuses what JSON.stringify would silently drop or change (undefined, functions, NaN, bigint, class instances). */
export function checkJson(v: unknown, at: string): void {
  const fail = (what: string) => new Error(`${at} is ${what}, which JSON cannot hold; it must be plain JSON`);
  if (v === null || typeof v === 'string' || typeof v === 'boolean') return;
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw fail(String(v));
    return;
  }
  if (Array.isArray(v)) return v.forEach((x, i) => checkJson(x, `${at}[${i}]`));
  if (typeof v !== 'object') throw fail(typeof v);
  const proto = Object.getPrototypeOf(v);
  if (proto !== Object.prototype && proto !== null) throw fail(`a ${(v as object).constructor?.name ?? 'non-plain'} object`);
  for (const [k, x] of Object.entries(v)) checkJson(x, `${at}.${k}`);
}

// ---- comparing configs (R14) ------------------------------------------------------------------

/** One difference: `old`/`new` is undefined where the path is absent on that side. */
export interface ConfigChange {
  path: string;
  kind: 'changed' | 'added' | 'removed';
  old: unknown;
  new: unknown;
}

/**
 * The leaf paths (`model.path`, `data.files[2]`) where `next` differs from `prev`, in a stable order.
 * `ignore` lists paths that may change (e.g. `train.steps`); each also covers everything beneath it.
 */
export function compareConfigs(prev: unknown, next: unknown, opts: { ignore?: readonly string[] } = {}): ConfigChange[] {
  const ignore = opts.ignore ?? [];
  const out: ConfigChange[] = [];
  diff(prev, next, '', ignore, out);
  return out;
}

function diff(a: unknown, b: unknown, at: string, ignore: readonly string[], out: ConfigChange[]): void {
  if (at !== '' && isIgnored(at, ignore)) return;
  if (Array.isArray(a) && Array.isArray(b)) {
    for (let i = 0; i < Math.max(a.length, b.length); i++) diffKey(a, b, i, `${at}[${i}]`, ignore, out);
    return;
  }
  if (isPlainObject(a) && isPlainObject(b)) {
    const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
    for (const k of keys) diffKey(a, b, k, at === '' ? k : `${at}.${k}`, ignore, out);
    return;
  }
  if (!Object.is(a, b)) out.push({ path: at, kind: 'changed', old: a, new: b });
}

function diffKey(a: object, b: object, k: string | number, at: string, ignore: readonly string[], out: ConfigChange[]): void {
  const inA = Object.hasOwn(a, k);
  const inB = Object.hasOwn(b, k);
  const va = (a as Record<string, unknown>)[k];
  const vb = (b as Record<string, unknown>)[k];
  if (inA && inB) return diff(va, vb, at, ignore, out);
  if (isIgnored(at, ignore)) return;
  out.push(inA ? { path: at, kind: 'removed', old: va, new: undefined } : { path: at, kind: 'added', old: undefined, new: vb });
}

const isIgnored = (at: string, ignore: readonly string[]) =>
  ignore.some((p) => at === p || at.startsWith(p + '.') || at.startsWith(p + '['));
const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** One readable line per change, for the refusal message. */
export function formatChanges(changes: readonly ConfigChange[]): string {
  const show = (v: unknown) => (v === undefined ? '(absent)' : JSON.stringify(v));
  return changes.map((c) => `  ${c.path}: ${show(c.old)} -> ${show(c.new)}`).join('\n');
}

/** R14: resuming with a config that differs from the frozen one, without an explicit override. */
export class ConfigChangedError extends Error {
  override name = 'ConfigChangedError';
  constructor(readonly file: string, readonly changes: ConfigChange[]) {
    super(`${file}: the config differs from the one this run was started with:\n${formatChanges(changes)}\n` +
      'resume with the original config, start a new run, or pass --force to accept these changes');
  }
}

/** Throws ConfigChangedError unless the configs agree outside `ignore`, or `override` is set; returns the changes. */
export function checkResumeConfig(runDir: string, next: unknown, opts: { ignore?: readonly string[]; override?: boolean } = {}): ConfigChange[] {
  const changes = compareConfigs(readFrozenConfig(runDir), next, opts);
  if (changes.length > 0 && !opts.override) throw new ConfigChangedError(runDirPaths(runDir).config, changes);
  return changes;
}
