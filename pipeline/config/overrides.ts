// CLI overrides of a raw config: `--set rollout.groupSize=8 --set algo.blend.mode=replace`.
//
// Each override is PATH=VALUE. PATH is dotted; array entries are `teachers.0.url` or
// `teachers[0].url` (an index may be one past the end, to append). VALUE is parsed as JSON when it
// is JSON (8, 0.5, true, "x", [..], {..}), else taken as a string (replace, runs/models/x);
// `null` removes the field, so its default applies again. A path the schema does not have is an
// error naming the closest known key. Values are not checked here: the parse that follows does that.

import { allowedText, childOf, formatPath, isOpen, keysOf, kindOf, pickBranch, type Schema } from './introspect.ts';
import { ConfigError, unknownKey } from './errors.ts';

type Key = string | number;
type Container = Record<string, unknown> | unknown[];

const isContainer = (v: unknown): v is Container => typeof v === 'object' && v !== null;

/** "teachers[0].url" or "teachers.0.url" → ["teachers", 0, "url"]. */
export function parseOverridePath(text: string): Key[] | null {
  const parts = text.replace(/\[(\d+)\]/g, '.$1').split('.');
  if (parts.some((p) => p === '')) return null;
  return parts.map((p) => (/^\d+$/.test(p) ? Number(p) : p));
}

/** VALUE as JSON when it parses, else the string itself. */
export function parseOverrideValue(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** A copy of `raw` with every override applied in order; `raw` is not changed. */
export function applyOverrides(raw: unknown, overrides: readonly string[], schema: Schema): Record<string, unknown> {
  if (!isContainer(raw) || Array.isArray(raw)) throw new ConfigError('config', [{ path: '', message: 'expected a JSON object' }]);
  const out = structuredClone(raw) as Record<string, unknown>;
  for (const o of overrides) {
    const fail = (path: string, message: string) => new ConfigError(`--set ${o}`, [{ path, message }]);
    const eq = o.indexOf('=');
    const path = eq > 0 ? parseOverridePath(o.slice(0, eq)) : null;
    if (!path) throw fail('', 'expected PATH=VALUE, e.g. rollout.groupSize=8 or teachers[0].url=http://host:8000');
    checkPath(schema, out, path, fail);
    setAt(out, path, parseOverrideValue(o.slice(eq + 1)));
  }
  return out;
}

/** Throws unless every step of `path` exists in the schema (reading `root` to pick union branches). */
function checkPath(schema: Schema, root: unknown, path: readonly Key[], fail: (path: string, message: string) => Error): void {
  let s: Schema = schema;
  let v: unknown = root;
  for (let i = 0; i < path.length; i++) {
    const key = path[i]!;
    const here = formatPath(path.slice(0, i));
    const next = childOf(s, key, v);
    if (!next) {
      const known = keysOf(pickBranch(s, v) ?? s);
      if (known.length === 0 && !isOpen(s)) throw fail(here, `holds ${allowedText(s)}, which has no field "${key}"`);
      throw fail(formatPath(path.slice(0, i + 1)), unknownKey(String(key), known, here));
    }
    const length = Array.isArray(v) ? v.length : 0;
    if (typeof key === 'number' && key > length)
      throw fail(formatPath(path.slice(0, i + 1)), `index ${key} is past the end: ${here} has ${length} entries (use ${length} to append)`);
    if (kindOf(next) === 'unknown') return; // free-form below here (taskConfig, reward params)
    [s, v] = [next, isContainer(v) ? (v as Record<Key, unknown>)[key] : undefined];
  }
}

/** Set `value` at `path`, creating objects/lists on the way; `null` deletes the field. */
function setAt(root: Container, path: readonly Key[], value: unknown): void {
  let cur: Container = root;
  for (let i = 0; i < path.length - 1; i++) {
    const key = path[i]!;
    const next = (cur as Record<Key, unknown>)[key];
    if (!isContainer(next)) (cur as Record<Key, unknown>)[key] = typeof path[i + 1] === 'number' ? [] : {};
    cur = (cur as Record<Key, unknown>)[key] as Container;
  }
  const last = path[path.length - 1]!;
  if (value !== null) (cur as Record<Key, unknown>)[last] = value;
  else if (Array.isArray(cur) && typeof last === 'number') cur.splice(last, 1);
  else delete (cur as Record<Key, unknown>)[last];
}
