// The run config as a markdown table (path, type, default, doc), generated from the schema so the
// README never drifts from the code. Sections get a row of their own; fields of one form of a
// union (a task vs a prompt file, a local vs an http teacher) say which form they belong to.

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

/** A markdown table of `docRows(schema)`. */
export function markdownTable(rows: readonly DocRow[]): string {
  const cell = (t: string) => t.replace(/\|/g, '\\|').replace(/\n/g, ' ');
  const lines = ['| field | type | default | doc |', '| --- | --- | --- | --- |'];
  for (const r of rows) lines.push(`| \`${cell(r.path)}\` | ${cell(r.type)} | ${cell(r.default)} | ${cell(r.doc)} |`);
  return lines.join('\n') + '\n';
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
