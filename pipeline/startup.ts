// What a run's start-up writes, written so that a kill (or a full disk) at any moment leaves either
// nothing or a complete artifact, and verified when a later start reads it (docs/reliability.md,
// "atomic start-up" and "initial student").
//
// - student-init/ (a {builtin} student) is built in a temp directory `.student-init.tmp-<pid>-<hex>`
//   beside it and renamed into place, so it exists complete or not at all. Temp directories a kill
//   left behind are removed at the next start (sweepDeadTemps). A student-init/ left incomplete by an opd from before
//   this change (no student.sha256.json yet, files missing) is rebuilt, with a warning: it is a pure
//   function of run.seed.
// - temp files a killed start left (`.<name>.tmp-<pid>-<hex>` in the run directory, eval/ and
//   lora-base/) are removed when their pid no longer runs (sweepDeadTemps).
// - eval-before.json is derived data: one that is not a JSON object of finite numbers (empty after a
//   kill, damaged) is evaluated again, with a warning naming the file.
// - student.sha256.json records the sha256 of the student's model files (config, weights, tokenizer)
//   as the run first used them; every later start of the run verifies them, and a changed file is a
//   CorruptArtifactError naming it. A run continued with --force on another student directory
//   records the new one (the frozen config already says what changed).
// Leaves out: hashing is a full read of the weights at every start (about 1-2 GB/s).

import { createHash } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { CorruptArtifactError } from '../data/store/shards.ts';
import { atomicWriteFile, fsyncDir, tempPathFor } from '../engine/io/atomic.ts';
import { initModelDir, tinyConfig } from '../student/model/init.ts';
import { pidAlive } from './run-lock.ts';

type Warn = (message: string) => void;

/** The files a built-in student directory holds once complete. */
const BUILTIN_FILES = ['config.json', 'model.safetensors', 'generation_config.json', 'tokenizer.json', 'tokenizer_config.json'];

/**
 * Remove the temp files and directories (`.<name>.tmp-<pid>-<12 hex>`, engine/io/atomic.ts) that a
 * killed process left in `dir`: only those whose pid no longer runs, so a live writer's are kept.
 * A killed LoRA start can leave a multi-GB `.base.bin.tmp-*` in lora-base/. Returns the names removed.
 */
export async function sweepDeadTemps(dir: string): Promise<string[]> {
  let entries: string[];
  try {
    entries = await fsp.readdir(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
  const gone: string[] = [];
  for (const e of entries) {
    const m = /^\..+\.tmp-(\d+)-[0-9a-f]{12}$/.exec(e);
    if (!m || pidAlive(Number(m[1]))) continue;
    await fsp.rm(path.join(dir, e), { recursive: true, force: true });
    gone.push(e);
  }
  return gone;
}


/** `<runDir>/student-init`, the tiny built-in student of `seed`: created once, whole or not at all. */
export async function builtinStudentDir(runDir: string, seed: number, warn: Warn = () => {}): Promise<string> {
  const dir = path.join(runDir, 'student-init');
  await sweepDeadTemps(runDir); // a half-built .student-init.tmp-* of a killed start among them
  if (fs.existsSync(dir)) {
    const missing = BUILTIN_FILES.filter((f) => !fs.existsSync(path.join(dir, f)));
    if (missing.length === 0 || fs.existsSync(path.join(runDir, STUDENT_RECORD))) return dir; // a recorded one is verified by the caller
    warn(`${dir} is incomplete (no ${missing.join(', ')}; an earlier start was killed while creating it): creating it again from run.seed ${seed}`);
    await fsp.rm(dir, { recursive: true, force: true });
  }
  const tmp = tempPathFor(dir);
  try {
    await initModelDir(tmp, tinyConfig(), seed);
    await fsyncDir(tmp);
    await fsp.rename(tmp, dir);
  } catch (e) {
    await fsp.rm(tmp, { recursive: true, force: true }).catch(() => undefined);
    throw e;
  }
  await fsyncDir(runDir);
  return dir;
}

// ---- eval-before.json ---------------------------------------------------------------------------

/** eval-before.json's numbers, or null when there is none or it is damaged (then `warn` says so: it is evaluated again). */
export function readEvalBefore(file: string, warn: Warn): Record<string, number> | null {
  if (!fs.existsSync(file)) return null;
  let why: string;
  try {
    const v = JSON.parse(fs.readFileSync(file, 'utf8')) as unknown;
    if (typeof v === 'object' && v !== null && !Array.isArray(v) && Object.keys(v).length > 0 && Object.values(v).every((x) => typeof x === 'number' && Number.isFinite(x))) {
      return v as Record<string, number>;
    }
    why = 'not a JSON object of finite numbers';
  } catch (e) {
    why = `not valid JSON: ${(e as Error).message}`;
  }
  warn(`${file} is damaged (${why}; a start was killed while writing it?): evaluating the held-out prompts before training again`);
  return null;
}

/** Replace eval-before.json atomically. */
export async function writeEvalBefore(file: string, before: Record<string, number>): Promise<void> {
  await atomicWriteFile(file, Buffer.from(JSON.stringify(before) + '\n'));
}

// ---- the initial student's hashes ---------------------------------------------------------------

export const STUDENT_RECORD = 'student.sha256.json';

interface StudentRecord {
  dir: string;
  files: Record<string, string>;
}

/** The files of a model directory that a run depends on: config, weights (and index), tokenizer files. */
function modelFiles(dir: string): string[] {
  return fs
    .readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isFile() && /\.(safetensors|json|txt|model)$/.test(e.name) && !e.name.startsWith('.'))
    .map((e) => e.name)
    .sort();
}

async function sha256File(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of fs.createReadStream(file, { highWaterMark: 1 << 22 })) h.update(chunk as Buffer);
  return h.digest('hex');
}

/**
 * On a run's first start: record the sha256 of the student directory's model files in
 * <run>/student.sha256.json (atomically). On every later start: verify them; a file changed, cut or
 * gone is a CorruptArtifactError naming it. Returns 'recorded' or 'verified'.
 */
export async function checkStudentFiles(runDir: string, studentDir: string, log: { info: Warn; warn: Warn } = { info: () => {}, warn: () => {} }): Promise<'recorded' | 'verified'> {
  const recordFile = path.join(runDir, STUDENT_RECORD);
  const dir = path.resolve(studentDir);
  let rec: StudentRecord | null = null;
  if (fs.existsSync(recordFile)) {
    try {
      const v = JSON.parse(fs.readFileSync(recordFile, 'utf8')) as StudentRecord;
      if (typeof v?.dir === 'string' && typeof v.files === 'object' && v.files !== null && Object.values(v.files).every((x) => typeof x === 'string' && /^[0-9a-f]{64}$/.test(x))) rec = v;
    } catch {
      // reported below
    }
    if (!rec) throw new CorruptArtifactError(recordFile, 'not {"dir": ..., "files": {name: sha256}}; it records the student files this run started from, so the student cannot be verified');
  }
  if (rec && rec.dir === dir) {
    for (const [name, want] of Object.entries(rec.files)) {
      const file = path.join(dir, name);
      if (!fs.existsSync(file)) throw new CorruptArtifactError(file, `missing; this run started from it (recorded in ${recordFile})`);
      const got = await sha256File(file);
      if (got !== want) throw new CorruptArtifactError(file, `sha256 ${got.slice(0, 16)}… differs from ${want.slice(0, 16)}… recorded in ${recordFile} when this run started`);
    }
    return 'verified';
  }
  if (rec) log.info(`the student directory changed from ${rec.dir} to ${dir} (the config was overridden): recording its files in ${recordFile}`);
  const files: Record<string, string> = {};
  for (const name of modelFiles(dir)) files[name] = await sha256File(path.join(dir, name));
  await atomicWriteFile(recordFile, Buffer.from(JSON.stringify({ dir, files }, null, 1) + '\n'));
  return 'recorded';
}
