// Dimension algebra for symbolic shapes.
//
// A dimension is a number or a symbolic expression string over graph-input symbols ("B", "T",
// "B*T", "(P+1)"). Expressions are kept in a canonical text form so that two tensors agree on a
// dimension exactly when their strings are equal. This is deliberately weaker than a CAS: it only
// folds constants, sorts product factors and sum terms; it never proves "B*T == T*B+0". Code that
// needs a symbolic dimension's value at run time (Reshape, Expand) asks the emitter, which parses
// these expressions back (see `parseDim`).

export type Dim = number | string;
export type Shape = readonly Dim[];

export function isStatic(shape: Shape): shape is readonly number[] {
  return shape.every((d) => typeof d === 'number');
}

export function fmtShape(shape: Shape): string {
  return `[${shape.join(', ')}]`;
}

export function dimEq(a: Dim, b: Dim): boolean {
  return a === b;
}

export function shapeEq(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** Product of dims; symbolic factors are sorted so "T*B" and "B*T" coincide. */
export function dimMul(...dims: Dim[]): Dim {
  let k = 1;
  const syms: string[] = [];
  for (const d of dims) {
    if (typeof d === 'number') k *= d;
    else
      for (const f of splitTop(d, '*')) {
        if (/^-?\d+$/.test(f)) k *= Number(f);
        else syms.push(f);
      }
  }
  if (k === 0) return 0;
  if (syms.length === 0) return k;
  syms.sort();
  const body = syms.join('*');
  return k === 1 ? body : `${k}*${body}`;
}

/** Sum of dims; constants are folded, symbolic terms sorted, the result parenthesised. */
export function dimAdd(...dims: Dim[]): Dim {
  let k = 0;
  const terms: string[] = [];
  for (const d of dims) {
    if (typeof d === 'number') k += d;
    else
      for (const t of splitTop(unparen(d), '+')) {
        if (/^-?\d+$/.test(t)) k += Number(t);
        else terms.push(t);
      }
  }
  if (terms.length === 0) return k;
  terms.sort();
  if (k !== 0) terms.push(String(k));
  return terms.length === 1 ? terms[0]! : `(${terms.join('+')})`;
}

/** a − b where that is expressible: both are sums of symbolic terms plus a constant, and b's
 *  symbolic terms all appear in a (e.g. T − (T+-1) = 1, (P+1) − P = 1). */
export function dimSub(a: Dim, b: Dim): Dim {
  if (a === b) return 0;
  const [ta, ka] = linear(a);
  const [tb, kb] = linear(b);
  for (const t of tb) {
    const i = ta.indexOf(t);
    if (i < 0) throw new ShapeError('dim', `cannot subtract ${b} from ${a}`);
    ta.splice(i, 1);
  }
  return dimAdd(...ta, ka - kb);
}

/** A dim as (symbolic sum terms, constant). */
function linear(d: Dim): [string[], number] {
  if (typeof d === 'number') return [[], d];
  let k = 0;
  const terms: string[] = [];
  for (const t of splitTop(unparen(d), '+')) {
    if (/^-?\d+$/.test(t)) k += Number(t);
    else terms.push(t);
  }
  return [terms, k];
}

export function numelOf(shape: Shape): Dim {
  return dimMul(...shape);
}

/** Split `s` on `sep` at parenthesis depth 0. */
function splitTop(s: string, sep: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === '(') depth++;
    else if (c === ')') depth--;
    else if (c === sep && depth === 0) {
      out.push(s.slice(start, i));
      start = i + 1;
    }
  }
  out.push(s.slice(start));
  return out;
}

function unparen(s: string): string {
  return s.startsWith('(') && s.endsWith(')') && splitTop(s.slice(1, -1), '+').length > 1 ? s.slice(1, -1) : s;
}

/** Expression tree of a symbolic dimension, for the emitter to evaluate at run time. */
export type DimExpr =
  | { kind: 'num'; value: number }
  | { kind: 'sym'; name: string }
  | { kind: 'add' | 'mul'; terms: DimExpr[] };

export function parseDim(d: Dim): DimExpr {
  if (typeof d === 'number') return { kind: 'num', value: d };
  const s = unparen(d.trim());
  const sum = splitTop(s, '+');
  if (sum.length > 1) return { kind: 'add', terms: sum.map(parseDim) };
  const prod = splitTop(s, '*');
  if (prod.length > 1) return { kind: 'mul', terms: prod.map(parseDim) };
  if (/^-?\d+$/.test(s)) return { kind: 'num', value: Number(s) };
  if (s.startsWith('(') && s.endsWith(')')) return parseDim(s.slice(1, -1));
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(s)) throw new Error(`cannot parse symbolic dimension "${d}"`);
  return { kind: 'sym', name: s };
}

/** Evaluate a dimension given values for its symbols (used by tests and host-side checks). */
export function evalDim(d: Dim, env: Record<string, number>): number {
  const go = (e: DimExpr): number => {
    switch (e.kind) {
      case 'num':
        return e.value;
      case 'sym': {
        const v = env[e.name];
        if (v === undefined) throw new Error(`no value for symbolic dimension "${e.name}"`);
        return v;
      }
      case 'add':
        return e.terms.reduce((s, t) => s + go(t), 0);
      case 'mul':
        return e.terms.reduce((s, t) => s * go(t), 1);
    }
  };
  return go(parseDim(d));
}

/** Numpy-style broadcast of two shapes; symbols broadcast only against 1 or themselves. */
export function broadcastShapes(a: Shape, b: Shape, op: string): Dim[] {
  const n = Math.max(a.length, b.length);
  const out: Dim[] = [];
  for (let i = 0; i < n; i++) {
    const da = i < n - a.length ? 1 : a[i - (n - a.length)]!;
    const db = i < n - b.length ? 1 : b[i - (n - b.length)]!;
    if (da === db || db === 1) out.push(da);
    else if (da === 1) out.push(db);
    else throw new ShapeError(op, `cannot broadcast ${fmtShape(a)} with ${fmtShape(b)} (axis ${i}: ${da} vs ${db})`);
  }
  return out;
}

export class ShapeError extends Error {
  constructor(
    readonly op: string,
    detail: string,
  ) {
    super(`${op}: ${detail}`);
    this.name = 'ShapeError';
  }
}

/** Normalise a possibly negative axis against a rank, with a named error. */
export function normAxis(axis: number, rank: number, op: string): number {
  const a = axis < 0 ? axis + rank : axis;
  if (!Number.isInteger(a) || a < 0 || a >= rank) throw new ShapeError(op, `axis ${axis} out of range for rank ${rank}`);
  return a;
}
