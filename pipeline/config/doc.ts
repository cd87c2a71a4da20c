// The run config as markdown tables (path, type, default, unit, meaning), generated from the schema
// so docs/config.md never drifts from the code (`opd config --doc`; a test compares the two).
// Sections get a row of their own; fields of one form of a union (a task vs a prompt file, a local
// vs an http teacher) say which form they belong to. The unit is read from the doc's parentheses,
// where every field states it: "Prompts per step (count)", "Timeout (ms)", "τ (unitless; ...)".

import { allowedText, branchesOf, keysOf, kindOf, markersOf, type Schema, unwrap } from './introspect.ts';

export interface DocRow {
  path: string;
  type: string;
  default: string;
  doc: string;
}

/** Every field of `schema` in declaration order, one row each. */
export function docRows(schema: Schema): DocRow[] {
  const rows: DocRow[] = [];
  walk(schema, '', '', rows);
  const seen = new Set<string>();
  return rows.filter((r) => !seen.has(r.path) && seen.add(r.path));
}

/** The units a doc may state, as the first word(s) of a parenthesised, `;`/`,`-separated part. */
export const UNITS = ['count', 'steps', 'tokens', 'ms', 'fraction', 'unitless', 'reward units', 'gradient units', 'path'] as const;

/** The unit `doc` states ("" when none): "Prompts per step (count); ..." → "count". */
export function unitOf(doc: string): string {
  for (const group of doc.matchAll(/\(([^()]*)\)/g))
    for (const part of group[1]!.split(/[;,]/)) {
      const unit = UNITS.find((u) => part.trim() === u || part.trim().startsWith(`${u} `));
      if (unit) return unit;
    }
  return '';
}

/** A markdown table of `rows`: field, type, default, unit, meaning. */
export function markdownTable(rows: readonly DocRow[]): string {
  const cell = (t: string) => t.replace(/\|/g, '\\|').replace(/\n/g, ' ');
  const lines = ['| field | type | default | unit | meaning |', '| --- | --- | --- | --- | --- |'];
  for (const r of rows) lines.push(`| \`${cell(r.path)}\` | ${cell(r.type)} | ${cell(r.default)} | ${unitOf(r.doc)} | ${cell(r.doc)} |`);
  return lines.join('\n') + '\n';
}

/**
 * The whole reference: one table per top-level key of `schema` (under a heading with its doc), then
 * the reward types from `rewards` (type → "type {params}: what it returns" descriptions).
 */
export function referenceMarkdown(schema: Schema, rewards: Readonly<Record<string, { description: string }>>): string {
  const rows = docRows(schema);
  const top = (p: string) => p.split(/[.[]/)[0]!;
  const parts = [
    '## Fields\n\nEvery field with its type, default, unit and meaning. A section\'s fields are `section.field`, a list\'s `list[].field`; ' +
      '"(with path)" or "(kind http)" before a meaning says which form of a union the field belongs to.\n',
  ];
  for (const key of keysOf(schema)) {
    const own = rows.filter((r) => top(r.path) === key);
    const head = own.find((r) => r.path === key);
    const body = own.filter((r) => r !== head || r.type !== 'section');
    parts.push(`### \`${key}\`\n\n${head?.doc ?? ''}${head?.default && head.type === 'section' ? ` (default ${head.default})` : ''}\n\n${markdownTable(body)}`);
  }
  const lines = ['| type | params (default) | value |', '| --- | --- | --- |'];
  for (const type of Object.keys(rewards).sort()) {
    const m = /^\S+ (\{[^}]*\})?:? ?(.*)$/.exec(rewards[type]!.description);
    lines.push(`| \`${type}\` | ${m?.[1] ? `\`${m[1]}\`` : ''} | ${(m?.[2] ?? rewards[type]!.description).replace(/\|/g, '\\|')} |`);
  }
  parts.push(`### Reward types (\`rewards[].type\`)\n\nEvery term also takes \`weight\` (unitless, default 1); its other keys are the params below.\n\n${lines.join('\n')}\n`);
  return parts.join('\n');
}

function defaultText(s: Schema): string {
  const u = unwrap(s);
  if (u.default?.prefault) return '';
  if (u.default) return '`' + JSON.stringify(u.default.value) + '`';
  return u.optional ? 'optional' : '**required**';
}

function walk(s: Schema, path: string, form: string, rows: DocRow[]): void {
  const u = unwrap(s);
  const kind = kindOf(s);
  const doc = (form ? `(${form}) ` : '') + (u.doc ?? '');
  const join = (k: string) => (path ? `${path}.${k}` : k);
  if (kind === 'object') {
    if (path) rows.push({ path, type: 'section', default: defaultText(s), doc });
    const shape = (u.inner as unknown as { shape: Record<string, Schema> }).shape;
    for (const k of keysOf(s)) walk(shape[k]!, join(k), form, rows);
    return;
  }
  if (kind === 'array') {
    const element = (u.inner.def as unknown as { element: Schema }).element;
    const objects = kindOf(element) === 'object' || branchesOf(element).length > 0;
    rows.push({ path, type: allowedText(s, true), default: defaultText(s), doc });
    if (objects) walkUnionOrObject(element, `${path}[]`, form, rows);
    return;
  }
  if (kind === 'union') {
    rows.push({ path, type: allowedText(s, true), default: defaultText(s), doc });
    walkUnionOrObject(s, path, form, rows, false);
    return;
  }
  rows.push({ path, type: allowedText(s, true), default: defaultText(s), doc });
}

/** Fields of an object, or of each object form of a union, each labelled with its form. */
function walkUnionOrObject(s: Schema, path: string, form: string, rows: DocRow[], sectionRow = true): void {
  const branches = branchesOf(s);
  if (branches.length === 0) {
    if (!sectionRow) return;
    const shape = (unwrap(s).inner as unknown as { shape: Record<string, Schema> }).shape;
    for (const k of keysOf(s)) walk(shape[k]!, `${path}.${k}`, form, rows);
    return;
  }
  const disc = (unwrap(s).inner.def as unknown as { discriminator?: string }).discriminator;
  const markers = markersOf(s);
  const objects = branches.filter((b) => kindOf(b) === 'object');
  const shapeOf = (b: Schema) => (b as unknown as { shape: Record<string, Schema> }).shape;
  const tagOf = (b: Schema) => String((shapeOf(b)[disc!]!.def as unknown as { values: unknown[] }).values[0]);
  if (disc) {
    const docs = objects.map((b) => `${tagOf(b)}: ${unwrap(shapeOf(b)[disc]!).doc ?? ''}`).join('; ');
    rows.push({ path: `${path}.${disc}`, type: objects.map(tagOf).join(' | '), default: '**required**', doc: docs });
  }
  branches.forEach((b, i) => {
    if (kindOf(b) !== 'object') return;
    const label = disc ? `${disc} ${tagOf(b)}` : `with ${markers[i]![0]}`;
    for (const k of keysOf(b)) {
      if (k === disc) continue;
      const shared = objects.every((o) => keysOf(o).includes(k));
      walk(shapeOf(b)[k]!, `${path}.${k}`, shared || objects.length === 1 ? form : label, rows);
    }
  });
}
