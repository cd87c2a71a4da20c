// The files and directories a run config reads, and the check that each exists before a job starts,
// so a wrong path is one line naming its field instead of an ENOENT from deep inside a loader.
//
// Relative paths resolve against the current directory -- the directory `opd` is started in -- never
// against the config file's folder: the same rule as every path on the command line (--model,
// --data, --set student=...), so a path means the same in a config file and in an override. See
// docs/config.md, "Paths". run.outDir is an output (created when missing) and is not checked.

import { existsSync, statSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { attributeToOverrides, ConfigError, type ConfigProblem } from './errors.ts';
import { formatPath } from './introspect.ts';
import { parseOverridePath } from './overrides.ts';
import type { RunConfig } from './schema.ts';
import { studentPath } from './sources.ts';

type Kind = 'file' | 'directory' | 'file or directory';

export interface InputPath {
  /** Dotted config path, e.g. "teachers[0].path". */
  field: string;
  /** As written in the config. */
  path: string;
  kind: Kind;
  /** What the path should hold, for the message. */
  what: string;
}

/** Every input path of `c`, in config order. */
export function inputPaths(c: RunConfig): InputPath[] {
  const out: InputPath[] = [];
  const sp = studentPath(c.student);
  if (sp !== null) out.push({ field: typeof c.student === 'string' ? 'student' : 'student.path', path: sp, kind: 'directory', what: 'the student model directory' });
  c.teachers.forEach((t, i) => {
    if (t.kind === 'local') out.push({ field: `teachers[${i}].path`, path: t.path, kind: 'file or directory', what: 'a teacher model directory or .onnx file' });
    if (t.tokenizer !== undefined) out.push({ field: `teachers[${i}].tokenizer`, path: t.tokenizer, kind: 'directory', what: 'a tokenizer directory' });
  });
  if ('path' in c.data) {
    out.push({ field: 'data.path', path: c.data.path, kind: 'file', what: 'the prompt file' });
    if (typeof c.data.test === 'string') out.push({ field: 'data.test', path: c.data.test, kind: 'file', what: 'the held-out prompt file' });
  }
  c.rewards.forEach((r, i) => {
    if (r.type === 'module' && typeof r.path === 'string') out.push({ field: `rewards[${i}].path`, path: r.path, kind: 'file', what: 'the reward module' });
  });
  return out;
}

/** The problem with one input path, or null when it exists and is of the right kind. */
export function pathProblem(p: InputPath, cwd = process.cwd()): ConfigProblem | null {
  const abs = resolve(cwd, p.path);
  const where = isAbsolute(p.path) ? '' : ` (relative paths resolve against the current directory: ${abs})`;
  if (!existsSync(abs)) return { path: p.field, message: `no such ${p.kind === 'directory' ? 'directory' : 'file'} ${JSON.stringify(p.path)}${where}; expected ${p.what}` };
  const isDir = statSync(abs).isDirectory();
  if (p.kind === 'file' && isDir) return { path: p.field, message: `${JSON.stringify(p.path)} is a directory${where}; expected ${p.what}` };
  if (p.kind === 'directory' && !isDir) return { path: p.field, message: `${JSON.stringify(p.path)} is a file${where}; expected ${p.what}` };
  return null;
}

/**
 * Throws a ConfigError listing every input path of `c` that is missing or of the wrong kind, each
 * attributed to `source` (the config file) or to the `--set` override that set it.
 */
export function checkInputPaths(c: RunConfig, source: string, overrides: readonly string[] = [], cwd = process.cwd()): void {
  const problems = inputPaths(c).flatMap((p) => pathProblem(p, cwd) ?? []);
  if (problems.length) throw new ConfigError(source, attributeToOverrides(problems, overrides, overridePathText));
}

/** The dotted path an override "PATH=VALUE" sets, as problems name it, or null when malformed. */
export function overridePathText(o: string): string | null {
  const eq = o.indexOf('=');
  const path = eq > 0 ? parseOverridePath(o.slice(0, eq)) : null;
  return path ? formatPath(path) : null;
}
