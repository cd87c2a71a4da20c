// `opd report RUN_DIR` → RUN_DIR/report.html: curves of reward, accuracy and teacher KL per step,
// and per-token heat-maps of (teacher − student) log-prob on sample rollouts of the last step, so a
// user sees where the teacher disagreed. Self-contained HTML with inline SVG (no scripts, no
// network). Leaves out PNG export.

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tableToRollouts, type RolloutRow } from '../data/schemas.ts';
import { listShards, readShard } from '../data/store/shards.ts';
import type { Tokenizer } from '../data/tokenizer/types.ts';
import { readMetrics, runDirPaths } from './rundir.ts';

const esc = (s: string) => s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);

/** A line chart of one metric against step, as an SVG string. */
export function lineChart(title: string, xs: readonly number[], ys: readonly number[]): string {
  const [w, h, pad] = [360, 180, 32];
  const pts = xs.map((x, i) => [x, ys[i]!] as const).filter(([, y]) => Number.isFinite(y));
  if (pts.length === 0) return `<figure><figcaption>${esc(title)}: no data</figcaption></figure>`;
  const [x0, x1] = [Math.min(...pts.map((p) => p[0])), Math.max(...pts.map((p) => p[0]))];
  const [y0, y1] = [Math.min(...pts.map((p) => p[1])), Math.max(...pts.map((p) => p[1]))];
  const sx = (x: number) => pad + ((x - x0) / (x1 - x0 || 1)) * (w - 2 * pad);
  const sy = (y: number) => h - pad - ((y - y0) / (y1 - y0 || 1)) * (h - 2 * pad);
  const path = pts.map(([x, y], i) => `${i ? 'L' : 'M'}${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(' ');
  return `<figure><svg width="${w}" height="${h}" role="img" aria-label="${esc(title)}">
<rect x="${pad}" y="${pad / 2}" width="${w - 2 * pad}" height="${h - 1.5 * pad}" fill="none" stroke="#ccc"/>
<path d="${path}" fill="none" stroke="#1f77b4" stroke-width="2"/>
<text x="${pad}" y="${h - 8}" font-size="11">step ${x0}</text><text x="${w - pad}" y="${h - 8}" font-size="11" text-anchor="end">${x1}</text>
<text x="4" y="${sy(y1) + 4}" font-size="11">${y1.toPrecision(3)}</text><text x="4" y="${sy(y0) + 4}" font-size="11">${y0.toPrecision(3)}</text>
</svg><figcaption>${esc(title)}</figcaption></figure>`;
}

/** Completion tokens coloured by teacher − student log-prob: red where the teacher disagrees. */
export function heatRow(r: RolloutRow, tok: Tokenizer): string {
  const cells = r.completionIds.map((id, t) => {
    const gap = (r.teacherLogprobs[t] ?? 0) - (r.samplerLogprobs[t] ?? 0);
    const a = Math.min(1, Math.abs(gap) / 4);
    const bg = gap < 0 ? `rgba(214,39,40,${a.toFixed(2)})` : `rgba(44,160,44,${a.toFixed(2)})`;
    return `<span title="teacher − student = ${gap.toFixed(3)}" style="background:${bg}">${esc(tok.decode([id]) || `⟨${id}⟩`)}</span>`;
  });
  return `<tr><td><code>${esc(tok.decode(r.promptIds as number[], { skipSpecialTokens: true }))}</code></td><td><code>${cells.join('')}</code></td><td>${r.reward.toFixed(2)}</td></tr>`;
}

export function writeReport(runDir: string, tok: Tokenizer, opts: { samples?: number } = {}): string {
  const run = runDirPaths(runDir);
  const metrics = readMetrics(run.dir);
  const steps = metrics.map((m) => m.step);
  const series = (k: string) => metrics.map((m) => Number(m[k]));
  const charts = ['reward_mean', 'accuracy', 'teacher_kl', 'loss', 'grad_norm', 'completion_len_mean'].map((k) => lineChart(k, steps, series(k)));
  const shards = listShards(run.shards);
  const last = shards.at(-1);
  const rows = last ? tableToRollouts(readShard(run.shards, last.file)).slice(0, opts.samples ?? 12) : [];
  const html = `<!doctype html><html><head><meta charset="utf-8"><title>opd report: ${esc(run.name)}</title>
<style>body{font-family:system-ui,sans-serif;margin:24px;max-width:1200px}figure{display:inline-block;margin:8px}td{padding:2px 8px;vertical-align:top}span{padding:0 1px}</style></head><body>
<h1>opd run ${esc(run.name)}</h1><p>${metrics.length} steps recorded in <code>${esc(run.dir)}</code>.</p>
<h2>Curves</h2>${charts.join('\n')}
<h2>Where the teacher disagreed (step ${rows[0]?.step ?? '-'})</h2>
<p>Each completion token is shaded by log π<sub>T</sub> − log π<sub>student</sub>: red where the teacher finds the token less likely than the student did, green where more likely; hover for the value.</p>
<table><tr><th>prompt</th><th>completion</th><th>reward</th></tr>${rows.map((r) => heatRow(r, tok)).join('\n')}</table>
</body></html>\n`;
  const file = join(run.dir, 'report.html');
  writeFileSync(file, html);
  return file;
}
