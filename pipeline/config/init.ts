// `opd config --init`: a starting run config for your own data, written as JSON with `//` comments
// (the loader accepts them: jsonc.ts). Every field it spells out gets its one-line doc, type and
// default from the schema above it, so the comments cannot drift from the code; values marked
// DEFAULT are the schema's defaults, the others are placeholders to replace (paths) or choices a
// first run on a prompt file needs (a held-out fraction, a prompt limit, a reward).

import { docRows, type DocRow } from './doc.ts';
import { type Schema, schemaAt, unwrap } from './introspect.ts';

/** Marks a value taken from the schema's default. */
const DEFAULT = Symbol('default');

/** The starting config; DEFAULT = the schema's default. Keys follow the schema's order. */
const STARTER = {
  run: { name: 'my-run', outDir: DEFAULT, seed: DEFAULT, steps: DEFAULT, evalEvery: DEFAULT, evalPrompts: DEFAULT, accuracyThreshold: DEFAULT, checkpointEvery: DEFAULT },
  student: 'models/student',
  teachers: [{ id: 'teacher', kind: 'local', path: 'models/teacher' }],
  data: { path: 'data/train.jsonl', fields: { prompt: DEFAULT, answer: DEFAULT }, test: 0.1, maxPromptTokens: 256, onTooLong: DEFAULT },
  rewards: [{ type: 'numeric_match', weight: 1 }],
  rollout: { groupSize: DEFAULT, promptsPerStep: DEFAULT, maxNewTokens: 64, temperature: DEFAULT },
  algo: { blend: { mode: DEFAULT }, lambdaSchedule: { lambda: DEFAULT } },
  loss: { type: DEFAULT, aggregation: DEFAULT },
  train: { optimizer: { lr: DEFAULT, warmupSteps: DEFAULT, maxGradNorm: DEFAULT } },
  runtime: { device: DEFAULT },
} as const;

/** Extra comment lines above a field, beyond its doc. */
const NOTES: Record<string, string[]> = {
  student: ['Replace: your student, a Hugging Face model directory (opd sft --out writes one).'],
  'teachers[].path': ['Replace: your teacher. An HTTP teacher instead: {"kind": "http", "url": "http://host:8000", "servedModel": "name"}.'],
  'data.path': ['Replace: one JSON object per line, e.g. {"prompt": "2+3=", "answer": "5"}; other keys reach rewards as record.meta.'],
  rewards: [
    'Your own reward: {"type": "module", "path": "rewards/mine.mjs"}, a module whose default export is',
    '(prompt, completion, record) => number; see docs/config.md, "Reward modules".',
  ],
};

const HEADER = [
  '// opd run config: JSON with // comments, written by `opd config --init`. Run it: opd run <this file>.',
  '// Every field, its type, default and unit: opd config --doc (docs/config.md). Fields left out take',
  '// their defaults. Relative paths resolve against the directory you run opd in, not this file\'s folder.',
];

/** The starting config as JSONC text. */
export function starterConfig(schema: Schema): string {
  const rows = new Map(docRows(schema).map((r) => [r.path, r]));
  const value = withDefaults(schema, STARTER, []);
  return [...HEADER, emit(value, '', '', rows)].join('\n') + '\n';
}

/** The starter config as a plain object (what `opd run` reads from the text). */
export function starterValue(schema: Schema): Record<string, unknown> {
  return withDefaults(schema, STARTER, []) as Record<string, unknown>;
}

function withDefaults(schema: Schema, v: unknown, path: (string | number)[]): unknown {
  if (v === DEFAULT) {
    const d = unwrap(schemaAt(schema, path, STARTER)!).default;
    if (!d || d.prefault) throw new Error(`config --init: ${path.join('.')} has no default`);
    return d.value;
  }
  if (Array.isArray(v)) return v.map((x, i) => withDefaults(schema, x, [...path, i]));
  if (typeof v === 'object' && v !== null) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, withDefaults(schema, x, [...path, k])]));
  return v;
}

/** `value` as indented JSON with each key's doc above it; `path` is the docs' path ("teachers[]"). */
function emit(value: unknown, path: string, indent: string, rows: ReadonlyMap<string, DocRow>): string {
  const inner = indent + '  ';
  if (Array.isArray(value) && value.some((x) => typeof x === 'object' && x !== null)) {
    return `[\n${value.map((x) => inner + emit(x, `${path}[]`, inner, rows)).join(',\n')}\n${indent}]`;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value) || Object.keys(value).length === 0) return JSON.stringify(value);
  const entries = Object.entries(value);
  const lines = entries.map(([k, x], i) => {
    const at = path ? `${path}.${k}` : k;
    const comment = commentLines(at, rows.get(at)).map((l) => `${inner}${l}\n`).join('');
    return `${comment}${inner}${JSON.stringify(k)}: ${emit(x, at, inner, rows)}${i < entries.length - 1 ? ',' : ''}`;
  });
  return `{\n${lines.join('\n')}\n${indent}}`;
}

/** "// <doc> [<type>, default <d>]" in lines of at most ~100 characters (the [...] never split), then any NOTES. */
function commentLines(path: string, row: DocRow | undefined): string[] {
  const notes = (NOTES[path] ?? []).map((n) => `// ${n}`);
  if (!row) return notes;
  const doc = row.doc.replace(/^\((with|kind) [^)]*\) /, '');
  const lines = wrap(doc, 96);
  const dflt = row.default && !row.default.startsWith('**') && row.default !== 'optional' ? `, default ${row.default.replace(/`/g, '')}` : '';
  const facts = row.type === 'section' ? '' : `[${row.type}${dflt}]`;
  if (facts && lines.at(-1)!.length + facts.length < 96) lines[lines.length - 1] += ` ${facts}`;
  else if (facts) lines.push(facts);
  return [...lines.map((l) => `// ${l}`), ...notes];
}

function wrap(text: string, width: number): string[] {
  const out: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    if (line && line.length + word.length + 1 > width) {
      out.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  return line ? [...out, line] : out;
}
