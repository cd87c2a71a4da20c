// Reading a zod schema back as data: the child schema at a config path, what values a schema allows
// (for error messages and the docs table), its default and its one-line doc.
//
// Only the schema kinds the run config uses are understood: object (strict, or loose = open to any
// key), array, record, union (plain and discriminated), enum, literal, number, string, boolean,
// unknown, and the default / prefault / optional wrappers. Anything else is described as "a value".
// A plain union of objects is resolved against the input by its *marker* keys: the keys one branch
// has and no other (data: `task` vs `path`); a union with a primitive branch by the value's type.

import type { z } from 'zod';

export type Schema = z.ZodType;

/** The parts of a zod 4 def this module reads; every field is optional because kinds differ. */
interface Def {
  type: string;
  innerType?: Schema;
  defaultValue?: unknown;
  shape?: Record<string, Schema>;
  catchall?: Schema;
  element?: Schema;
  valueType?: Schema;
  options?: Schema[];
  discriminator?: string;
  entries?: Record<string, string | number>;
  values?: unknown[];
  format?: string;
  checks?: { _zod: { def: CheckDef } }[];
}

interface CheckDef {
  check: string;
  value?: number;
  inclusive?: boolean;
  minimum?: number;
  pattern?: RegExp;
}

const defOf = (s: Schema): Def => s.def as unknown as Def;
const WRAPPERS = new Set(['default', 'prefault', 'optional', 'nullable', 'readonly']);

export interface Unwrapped {
  /** The schema under every default/optional wrapper. */
  inner: Schema;
  /** True when the field may be left out (it has a default or is optional). */
  optional: boolean;
  /** The `.default()` value, or the `.prefault()` input (a section filled from its fields' defaults). */
  default?: { value: unknown; prefault: boolean };
  /** The first `.describe()` text found from the outside in. */
  doc?: string;
}

export function unwrap(s: Schema): Unwrapped {
  const out: Unwrapped = { inner: s, optional: false };
  for (let cur = s; ; cur = defOf(cur).innerType!) {
    out.doc ??= cur.description;
    const d = defOf(cur);
    if (!WRAPPERS.has(d.type)) return { ...out, inner: cur };
    if (d.type !== 'nullable' && d.type !== 'readonly') out.optional = true;
    if ((d.type === 'default' || d.type === 'prefault') && !out.default) out.default = { value: d.defaultValue, prefault: d.type === 'prefault' };
  }
}

export const kindOf = (s: Schema): string => defOf(unwrap(s).inner).type;

const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The branches of a union (after unwrapping), else []. */
export function branchesOf(s: Schema): Schema[] {
  const d = defOf(unwrap(s).inner);
  return d.type === 'union' ? d.options!.map((b) => unwrap(b).inner) : [];
}

/** Keys of an object schema, or of every object branch of a union; [] for anything else. */
export function keysOf(s: Schema): string[] {
  const d = defOf(unwrap(s).inner);
  if (d.type === 'object') return Object.keys(d.shape!);
  return [...new Set(branchesOf(s).flatMap(keysOf))];
}

/** For each object branch of a union: the required keys no other branch has (its markers). */
export function markersOf(s: Schema): string[][] {
  const branches = branchesOf(s);
  return branches.map((b, i) => {
    if (kindOf(b) !== 'object') return [];
    const own = keysOf(b).filter((k) => !branches.some((o, j) => j !== i && keysOf(o).includes(k)));
    return own.filter((k) => !unwrap(defOf(b).shape![k]!).optional);
  });
}

/** The union branch `value` belongs to, or undefined when it cannot be told (or several fit). */
export function pickBranch(s: Schema, value: unknown): Schema | undefined {
  const d = defOf(unwrap(s).inner);
  const branches = branchesOf(s);
  if (d.discriminator !== undefined) {
    const tag = isPlainObject(value) ? value[d.discriminator] : undefined;
    return branches.find((b) => (defOf(unwrap(defOf(b).shape![d.discriminator!]!).inner).values ?? []).includes(tag));
  }
  const typed = branches.filter((b) => fitsType(kindOf(b), value));
  if (typed.length <= 1 || !isPlainObject(value)) return typed.length === 1 ? typed[0] : undefined;
  const marked = markersOf(s)
    .map((m, i) => ({ i, hit: m.some((k) => Object.hasOwn(value, k)) }))
    .filter((x) => x.hit);
  return marked.length === 1 ? branches[marked[0]!.i] : undefined;
}

function fitsType(kind: string, v: unknown): boolean {
  if (kind === 'object' || kind === 'record') return isPlainObject(v);
  if (kind === 'array') return Array.isArray(v);
  if (kind === 'enum' || kind === 'literal' || kind === 'string') return typeof v === 'string';
  if (kind === 'number') return typeof v === 'number';
  if (kind === 'boolean') return typeof v === 'boolean';
  return true;
}

/** True when an object at this schema accepts any key (record, loose object, unknown). */
export function isOpen(s: Schema): boolean {
  const d = defOf(unwrap(s).inner);
  return d.type === 'record' || d.type === 'unknown' || (d.type === 'object' && d.catchall !== undefined && defOf(d.catchall).type !== 'never');
}

/**
 * The schema of `key` under `s`, where `value` is the input at `s` (it picks a union's branch).
 * Undefined when `s` has no such key. Keys under open objects get an `unknown` schema.
 */
export function childOf(s: Schema, key: string | number, value: unknown): Schema | undefined {
  const d = defOf(unwrap(s).inner);
  if (d.type === 'union') {
    const picked = pickBranch(s, value);
    const found = picked && childOf(picked, key, value);
    if (found) return found;
    for (const b of branchesOf(s)) if (kindOf(b) === 'object' && Object.hasOwn(defOf(b).shape!, key)) return childOf(b, key, value);
    return undefined;
  }
  if (d.type === 'object') {
    if (Object.hasOwn(d.shape!, key)) return d.shape![key];
    return isOpen(s) ? d.catchall : undefined;
  }
  if (d.type === 'array') return typeof key === 'number' || /^\d+$/.test(key) ? d.element : undefined;
  if (d.type === 'record') return d.valueType;
  return undefined;
}

/** The input value at `path` under `root` (undefined where absent). */
export function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let v = root;
  for (const k of path) v = isPlainObject(v) || Array.isArray(v) ? (v as Record<PropertyKey, unknown>)[k] : undefined;
  return v;
}

/** The schema at `path` under `root`, reading `input` to pick union branches; undefined if none. */
export function schemaAt(root: Schema, path: readonly PropertyKey[], input: unknown): Schema | undefined {
  let s: Schema | undefined = root;
  for (let i = 0; i < path.length && s; i++) s = childOf(s, path[i] as string | number, valueAt(input, path.slice(0, i)));
  return s;
}

/** "teachers[0].url" from ["teachers", 0, "url"]. */
export function formatPath(path: readonly PropertyKey[]): string {
  return path.reduce<string>((acc, k) => (typeof k === 'number' ? `${acc}[${k}]` : acc === '' ? String(k) : `${acc}.${String(k)}`), '');
}

// ---- what a schema allows, in words ---------------------------------------------------------------

/**
 * The allowed values of `s`: "an integer ≥ 1", "a number in (0, 1]", "one of a | b", ... With
 * `terse` (the docs table) the article and "one of" are dropped: "integer ≥ 1", "a | b".
 */
export function allowedText(s: Schema, terse = false): string {
  const a = (text: string) => (terse ? text.replace(/^(an?|one of) /, '') : text);
  const d = defOf(unwrap(s).inner);
  switch (d.type) {
    case 'enum':
      return a(`one of ${Object.values(d.entries!).join(' | ')}`);
    case 'literal':
      return d.values!.map((v) => JSON.stringify(v)).join(' | ');
    case 'number':
      return a(numberText(d));
    case 'string':
      return a(stringText(d));
    case 'boolean':
      return terse ? 'boolean' : 'true or false';
    case 'array':
      return `${terse ? 'list' : 'a list'}${minText(d)} of ${plural(allowedText(d.element!, true))}`;
    case 'record':
      return `${terse ? 'map' : 'an object mapping'} string → ${allowedText(d.valueType!, true)}`;
    case 'object':
      return terse ? 'object' : `an object {${keysOf(s).join(', ')}${isOpen(s) ? ', ...' : ''}}`;
    case 'union': {
      const markers = markersOf(s);
      const texts = branchesOf(s).map((b, i) => (!terse && markers[i]!.length > 0 ? `an object {${markers[i]![0]}${keysOf(b).length > 1 ? ', ...' : ''}}` : allowedText(b, terse)));
      return [...new Set(texts)].join(' or ');
    }
    case 'unknown':
      return terse ? 'any' : 'any JSON value';
    default:
      return terse ? d.type : 'a value';
  }
}

function checksOf(d: Def): CheckDef[] {
  return (d.checks ?? []).map((c) => c._zod.def);
}

function numberText(d: Def): string {
  const base = d.format?.includes('int') ? 'an integer' : 'a number';
  const lo = checksOf(d).find((c) => c.check === 'greater_than');
  const hi = checksOf(d).find((c) => c.check === 'less_than');
  if (lo && hi) return `${base} in ${lo.inclusive ? '[' : '('}${lo.value}, ${hi.value}${hi.inclusive ? ']' : ')'}`;
  if (lo) return `${base} ${lo.inclusive ? '≥' : '>'} ${lo.value}`;
  if (hi) return `${base} ${hi.inclusive ? '≤' : '<'} ${hi.value}`;
  return base;
}

function stringText(d: Def): string {
  const re = checksOf(d).find((c) => c.check === 'string_format' && c.pattern);
  if (re) return `a string matching ${re.pattern}`;
  return checksOf(d).some((c) => c.check === 'min_length' && (c.minimum ?? 0) > 0) ? 'a non-empty string' : 'a string';
}

function minText(d: Def): string {
  const min = checksOf(d).find((c) => c.check === 'min_length')?.minimum;
  return min ? ` of at least ${min}` : '';
}

const plural = (t: string) => (/^(string|integer|number|boolean|object)\b/.test(t) ? t.replace(/^(\w+)/, '$1s') : t);
