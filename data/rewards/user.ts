// User reward functions loaded from a JS/TS module: its default export, or a named one, called as
// (prompt, completion, record) => number | Promise<number>.
//
// Every failure names the module path and what is wrong: file missing, import failed, export
// missing (listing what the module does export), export not a function; at call time a throw or a
// result that is not a finite number raises an error naming the record id — never a silent 0.
// .ts modules need a TypeScript loader in the process (opd runs under tsx); .js/.mjs always work.

import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { RewardFn } from './types.ts';

/** A short human description of any value, for error messages. */
export function describeValue(v: unknown): string {
  if (typeof v === 'number') return Number.isNaN(v) ? 'NaN' : String(v);
  if (typeof v === 'string') return `a string ${JSON.stringify(v.length > 40 ? v.slice(0, 40) + '…' : v)}`;
  if (v === null || v === undefined) return String(v);
  if (typeof v === 'function') return 'a function';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'object') return v instanceof Promise ? 'a Promise' : 'an object';
  return `a ${typeof v} (${String(v)})`;
}

async function importModule(path: string, abs: string): Promise<Record<string, unknown>> {
  if (!existsSync(abs)) throw new Error(`reward module ${path}: file not found (resolved to ${abs})`);
  try {
    return (await import(pathToFileURL(abs).href)) as Record<string, unknown>;
  } catch (e) {
    const hint = /\.[cm]?ts$/.test(abs) ? ' (a .ts module needs a TypeScript loader such as tsx in this process)' : '';
    throw new Error(`reward module ${path}: failed to import: ${(e as Error).message}${hint}`, { cause: e });
  }
}

export interface LoadUserRewardOptions {
  /** The export to use; default "default". */
  exportName?: string;
  /** Directory a relative path resolves against; default the current directory. */
  baseDir?: string;
}

/** Load and check a user reward; the returned function validates every result. */
export async function loadUserReward(path: string, opts: LoadUserRewardOptions = {}): Promise<RewardFn> {
  const name = opts.exportName ?? 'default';
  const mod = await importModule(path, resolve(opts.baseDir ?? process.cwd(), path));
  if (!(name in mod)) {
    const names = Object.keys(mod).join(', ') || 'nothing';
    throw new Error(`reward module ${path}: no export named "${name}" (it exports: ${names})`);
  }
  const fn = mod[name];
  if (typeof fn !== 'function')
    throw new Error(`reward module ${path}: export "${name}" is ${describeValue(fn)}, not a function (prompt, completion, record) => number`);
  const where = `reward module ${path} (export "${name}")`;
  return async (prompt, completion, record) => {
    let v: unknown;
    try {
      v = await fn(prompt, completion, record);
    } catch (e) {
      throw new Error(`${where} threw on record ${record.id}: ${(e as Error)?.message ?? String(e)}`, { cause: e });
    }
    if (typeof v !== 'number' || !Number.isFinite(v))
      throw new Error(`${where} returned ${describeValue(v)} for record ${record.id}; a reward must be a finite number`);
    return v;
  };
}
