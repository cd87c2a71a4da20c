// Line charts as standalone SVG documents, and their PNG rendering. Used by `opd report` and
// `opd compare`. Axes get "nice" 1-2-5 ticks; a flat series gets a padded range so its labels do
// not collide; non-finite points are dropped; a one-point series is drawn as a marker; an optional
// band (x, lo, hi) is drawn as a translucent area (e.g. mean ± std over seeds). PNGs come from
// the same SVG through resvg (system fonts, DejaVu Sans by default).

import { Resvg } from '@resvg/resvg-js';

export interface Series {
  name: string;
  points: ReadonlyArray<readonly [number, number]>;
  /** Optional area around the line: [x, lo, hi]. */
  band?: ReadonlyArray<readonly [number, number, number]>;
  /** Draw thin and translucent (e.g. raw per-step values under their moving average). */
  faint?: boolean;
}

export interface ChartOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  series: readonly Series[];
  width?: number;
  height?: number;
  yMin?: number;
  yMax?: number;
}

/** Okabe–Ito: distinguishable with the common colour-vision deficiencies. */
export const PALETTE = ['#0072B2', '#D55E00', '#009E73', '#CC79A7', '#E69F00', '#56B4E9', '#000000', '#F0E442'];

/**
 * Text safe inside SVG/HTML markup: entities escaped, and characters XML 1.0 forbids (control
 * bytes a random model happily emits, lone surrogates) shown as U+FFFD rather than breaking the file.
 */
export function esc(s: string): string {
  return s
    .replace(/[^\t\n\r\u0020-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/gu, '\uFFFD') // with /u a lone surrogate is one code point outside the set
    .replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);
}

/** Tick values covering [lo, hi] with a 1-2-5 step, about `count` of them. */
export function niceTicks(lo: number, hi: number, count = 5): number[] {
  if (!(hi > lo)) throw new RangeError(`niceTicks: need lo < hi, got [${lo}, ${hi}]`);
  const raw = (hi - lo) / Math.max(1, count);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw)!;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

/** The range a set of values is drawn over: padded when flat, widened to `min`/`max` when given. */
export function axisRange(values: readonly number[], min?: number, max?: number): [number, number] {
  let lo = min ?? Math.min(...values);
  let hi = max ?? Math.max(...values);
  if (!(hi > lo)) {
    const pad = Math.abs(lo) > 0 ? Math.abs(lo) * 0.1 : 1;
    [lo, hi] = [lo - pad, hi + pad];
  }
  return [lo, hi];
}

const fmt = (v: number) => (Math.abs(v) >= 1e4 || (Math.abs(v) < 1e-3 && v !== 0) ? v.toExponential(1) : String(Number(v.toPrecision(4))));

export function lineChart(o: ChartOptions): string {
  const [W, H] = [o.width ?? 560, o.height ?? 320];
  const legend = legendLayout(o.series.map((s) => s.name), W - 64 - 16);
  const m = { left: 64, right: 16, top: 32, bottom: 48 + 18 * legend.rows };
  const series = o.series.map((s) => ({
    ...s,
    points: s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y)),
    band: (s.band ?? []).filter(([x, lo, hi]) => Number.isFinite(x) && Number.isFinite(lo) && Number.isFinite(hi)),
  }));
  const xs = series.flatMap((s) => s.points.map((p) => p[0]));
  const ys = series.flatMap((s) => [...s.points.map((p) => p[1]), ...s.band.flatMap((b) => [b[1], b[2]])]);
  const head = `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="DejaVu Sans, sans-serif" role="img" aria-label="${esc(o.title)}">
<rect width="${W}" height="${H}" fill="#fff"/>
<text x="${W / 2}" y="20" font-size="14" text-anchor="middle">${esc(o.title)}</text>`;
  if (xs.length === 0) return `${head}\n<text x="${W / 2}" y="${H / 2}" font-size="12" text-anchor="middle" fill="#666">no data</text>\n</svg>\n`;
  const [x0, x1] = axisRange(xs);
  const [y0, y1] = axisRange(ys, o.yMin, o.yMax);
  const pw = W - m.left - m.right;
  const ph = H - m.top - m.bottom;
  const sx = (x: number) => m.left + ((x - x0) / (x1 - x0)) * pw;
  const sy = (y: number) => m.top + ph - ((y - y0) / (y1 - y0)) * ph;
  const parts: string[] = [head];
  for (const t of niceTicks(y0, y1, 5)) {
    parts.push(`<line x1="${m.left}" x2="${m.left + pw}" y1="${sy(t).toFixed(1)}" y2="${sy(t).toFixed(1)}" stroke="#e5e5e5"/>`);
    parts.push(`<text x="${m.left - 6}" y="${(sy(t) + 4).toFixed(1)}" font-size="11" text-anchor="end">${fmt(t)}</text>`);
  }
  for (const t of niceTicks(x0, x1, 6)) {
    parts.push(`<line x1="${sx(t).toFixed(1)}" x2="${sx(t).toFixed(1)}" y1="${m.top + ph}" y2="${m.top + ph + 4}" stroke="#333"/>`);
    parts.push(`<text x="${sx(t).toFixed(1)}" y="${m.top + ph + 16}" font-size="11" text-anchor="middle">${fmt(t)}</text>`);
  }
  parts.push(`<rect x="${m.left}" y="${m.top}" width="${pw}" height="${ph}" fill="none" stroke="#333"/>`);
  parts.push(`<text x="${m.left + pw / 2}" y="${m.top + ph + 34}" font-size="12" text-anchor="middle">${esc(o.xLabel)}</text>`);
  parts.push(`<text x="14" y="${m.top + ph / 2}" font-size="12" text-anchor="middle" transform="rotate(-90 14 ${m.top + ph / 2})">${esc(o.yLabel)}</text>`);
  series.forEach((s, i) => {
    const c = PALETTE[i % PALETTE.length]!;
    if (s.band.length > 1) {
      const up = s.band.map(([x, , hi]) => `${sx(x).toFixed(1)},${sy(hi).toFixed(1)}`);
      const down = [...s.band].reverse().map(([x, lo]) => `${sx(x).toFixed(1)},${sy(lo).toFixed(1)}`);
      parts.push(`<polygon points="${[...up, ...down].join(' ')}" fill="${c}" fill-opacity="0.15" stroke="none"/>`);
    }
    if (s.points.length === 1) {
      const [x, y] = s.points[0]!;
      parts.push(`<circle cx="${sx(x).toFixed(1)}" cy="${sy(y).toFixed(1)}" r="3.5" fill="${c}"/>`);
    } else if (s.points.length > 1) {
      const style = s.faint ? 'stroke-width="1" stroke-opacity="0.4"' : 'stroke-width="2"';
      parts.push(`<polyline points="${s.points.map(([x, y]) => `${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(' ')}" fill="none" stroke="${c}" ${style}/>`);
    }
    const [lx, ly] = [m.left + legend.at[i]![0], H - 14 - 18 * (legend.rows - 1 - legend.at[i]![1])];
    parts.push(`<line x1="${lx}" x2="${lx + 18}" y1="${ly - 4}" y2="${ly - 4}" stroke="${c}" stroke-width="3"/><text x="${lx + 24}" y="${ly}" font-size="11">${esc(s.name)}</text>`);
  });
  parts.push('</svg>\n');
  return parts.join('\n');
}

/** Legend items flowed left to right, wrapping at `width` (text width estimated at 6.6 px per character of 11 px type). */
function legendLayout(names: readonly string[], width: number): { at: Array<[number, number]>; rows: number } {
  const at: Array<[number, number]> = [];
  let [x, row] = [0, 0];
  for (const n of names) {
    const w = 24 + n.length * 6.6 + 18;
    if (x > 0 && x + w > width) [x, row] = [0, row + 1];
    at.push([x, row]);
    x += w;
  }
  return { at, rows: names.length ? row + 1 : 0 };
}

/** PNG bytes of an SVG document (same size as the SVG). */
export function svgToPng(svg: string): Buffer {
  return new Resvg(svg, { font: { loadSystemFonts: true, defaultFontFamily: 'DejaVu Sans' }, background: '#ffffff' }).render().asPng();
}
