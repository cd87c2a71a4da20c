// `opd report RUN_DIR` → RUN_DIR/report.html plus RUN_DIR/report/*.png: curves of reward, accuracy
// (training batch and held-out), teacher KL, loss, grad norm and completion length per step, and a
// per-token heat-map of (teacher − student) log-prob on sample rollouts of the last step, so a user
// sees where the teacher disagreed. A run without a teacher (blend grpo: the rollouts carry no
// teacher log-probs) gets the student's own surprisal −log π_student per token instead, titled and
// coloured as such and saying that there is no teacher. The HTML is self-contained (inline SVG, no scripts, no
// network); each PNG is the same SVG rendered by resvg (pipeline/report/chart.ts).

import { mkdirSync, writeFileSync } from 'node:fs';
import { writeError } from '../engine/io/disk-errors.ts';
import { join } from 'node:path';
import { tableToRollouts, type RolloutRow } from '../data/schemas.ts';
import { listShards, readShard } from '../data/store/shards.ts';
import type { Tokenizer } from '../data/tokenizer/types.ts';
import { type Series, esc, lineChart, svgToPng } from './report/chart.ts';
import { type MetricsRecord, readMetrics, runDirPaths } from './rundir.ts';


/** Trailing moving average over `w` points (the first points average what exists). */
export function movingAverage(ys: readonly number[], w: number): number[] {
  return ys.map((_, i) => {
    const win = ys.slice(Math.max(0, i - w + 1), i + 1).filter(Number.isFinite);
    return win.length ? win.reduce((a, b) => a + b, 0) / win.length : NaN;
  });
}

function seriesOf(metrics: readonly MetricsRecord[], key: string, name = key): Series {
  return { name, points: metrics.filter((m) => typeof m[key] === 'number').map((m) => [m.step, m[key] as number] as const) };
}

/** Raw per-step values and, for long runs, their moving average. */
function noisy(metrics: readonly MetricsRecord[], key: string): Series[] {
  const raw = seriesOf(metrics, key);
  if (raw.points.length < 20) return [raw];
  const w = Math.max(5, Math.round(raw.points.length / 25));
  const avg = movingAverage(raw.points.map((p) => p[1]), w);
  return [{ ...raw, faint: true }, { name: `${key} (moving avg of ${w})`, points: raw.points.map((p, i) => [p[0], avg[i]!] as const) }];
}

export function charts(metrics: readonly MetricsRecord[]): Array<{ file: string; svg: string }> {
  const chart = (file: string, title: string, yLabel: string, series: Series[]) => ({ file, svg: lineChart({ title, xLabel: 'step', yLabel, series }) });
  return [
    chart('reward', 'mean reward of the sampled rollouts', 'reward', noisy(metrics, 'reward_mean')),
    chart('accuracy', 'accuracy: training batch and held-out (greedy)', 'accuracy', [...noisy(metrics, 'accuracy'), seriesOf(metrics, 'eval_accuracy', 'held-out eval_accuracy')]),
    chart('teacher_kl', 'teacher KL: mean of log π_student − log π_teacher per token', 'nats / token', noisy(metrics, 'teacher_kl')),
    chart('loss', 'policy loss', 'loss', noisy(metrics, 'loss')),
    chart('grad_norm', 'gradient norm (before clipping)', 'L2 norm', noisy(metrics, 'grad_norm')),
    chart('completion_len', 'completion length', 'tokens', noisy(metrics, 'completion_len_mean')),
  ];
}

/** Colour of a teacher − student gap: red where the teacher finds the token less likely, green where more. */
export function gapColour(gap: number): string {
  const a = Math.min(1, Math.abs(gap) / 4);
  return gap < 0 ? `rgba(214,39,40,${a.toFixed(2)})` : `rgba(44,160,44,${a.toFixed(2)})`;
}

/** Colour of a token's surprisal −log π_student (no teacher): blue, darker the less likely. */
export function surpriseColour(nats: number): string {
  return `rgba(0,114,178,${Math.min(1, Math.max(0, nats) / 4).toFixed(2)})`;
}

/** Whether the rollouts were scored by a teacher (a grpo run's rows carry no teacher log-probs). */
export const hasTeacher = (rows: readonly RolloutRow[]): boolean => rows.some((r) => r.teacherLogprobs.length > 0);

/**
 * What a heat-map cell shows: with a teacher, log π_teacher − log π_student; without one,
 * −log π_student (the sampler's log-prob), with its colour and the names used in titles and hovers.
 */
function cellsOf(teacher: boolean) {
  return teacher
    ? { value: (r: RolloutRow, t: number) => (r.teacherLogprobs[t] ?? 0) - (r.samplerLogprobs[t] ?? 0), colour: gapColour, hover: 'teacher − student', legend: [-4, -2, 0, 2, 4] }
    : { value: (r: RolloutRow, t: number) => -(r.samplerLogprobs[t] ?? 0), colour: surpriseColour, hover: 'no teacher; −log π_student', legend: [0, 1, 2, 3, 4] };
}

const tokenText = (tok: Tokenizer, id: number) => tok.decode([id]).replace(/\n/g, '⏎') || `⟨${id}⟩`;

/** Completion tokens coloured by teacher − student log-prob, or by −log π_student when `teacher` is false (HTML table row, hover shows the value). */
export function heatRow(r: RolloutRow, tok: Tokenizer, teacher = r.teacherLogprobs.length > 0 || r.completionIds.length === 0): string {
  const k = cellsOf(teacher);
  const cells = r.completionIds.map((id, t) => {
    const v = k.value(r, t);
    return `<span title="${esc(k.hover)} = ${v.toFixed(3)}" style="background:${k.colour(v)}">${esc(tokenText(tok, id))}</span>`;
  });
  return `<tr><td><code>${esc(tok.decode(r.promptIds as number[], { skipSpecialTokens: true }))}</code></td><td><code>${cells.join('')}</code></td><td>${r.reward.toFixed(2)}</td></tr>`;
}

/** The same heat-map as a standalone SVG: one row per rollout, one cell per token with its value (see cellsOf). */
export function heatmapSvg(rows: readonly RolloutRow[], tok: Tokenizer): string {
  const teacher = hasTeacher(rows);
  const k = cellsOf(teacher);
  const [cw, ch, left, top] = [64, 30, 170, 40];
  const cols = Math.max(1, ...rows.map((r) => r.completionIds.length));
  const W = Math.max(left + cols * cw + 80, left + 5 * 70 + 270); // room for the legend's caption
  const H = top + rows.length * ch + 50;
  const step = rows[0]?.step ?? '-';
  const title = teacher
    ? `log π_teacher − log π_student per completion token (step ${step})`
    : `no teacher in this run: −log π_student per completion token (step ${step})`;
  const parts = [`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="DejaVu Sans, sans-serif">`,
    `<rect width="${W}" height="${H}" fill="#fff"/>`,
    `<text x="${W / 2}" y="20" font-size="14" text-anchor="middle">${esc(title)}</text>`];
  rows.forEach((r, i) => {
    const y = top + i * ch;
    const prompt = tok.decode(r.promptIds as number[], { skipSpecialTokens: true }).slice(-18);
    parts.push(`<text x="${left - 8}" y="${y + 19}" font-size="12" text-anchor="end" font-family="DejaVu Sans Mono, monospace">${esc(prompt)}</text>`);
    r.completionIds.forEach((id, t) => {
      const v = k.value(r, t);
      const x = left + t * cw;
      parts.push(`<rect x="${x}" y="${y}" width="${cw - 2}" height="${ch - 2}" fill="${k.colour(v)}" stroke="#ddd"/>`);
      parts.push(`<text x="${x + cw / 2}" y="${y + 12}" font-size="11" text-anchor="middle" font-family="DejaVu Sans Mono, monospace">${esc(tokenText(tok, id))}</text>`);
      parts.push(`<text x="${x + cw / 2}" y="${y + 25}" font-size="9" text-anchor="middle" fill="#333">${v.toFixed(2)}</text>`);
    });
    parts.push(`<text x="${left + cols * cw + 8}" y="${y + 19}" font-size="11">reward ${r.reward.toFixed(2)}</text>`);
  });
  const ly = top + rows.length * ch + 20;
  k.legend.forEach((g, i) => {
    parts.push(`<rect x="${left + i * 70}" y="${ly}" width="20" height="14" fill="${k.colour(g)}" stroke="#999"/><text x="${left + i * 70 + 26}" y="${ly + 11}" font-size="11">${teacher && g > 0 ? '+' : ''}${g}</text>`);
  });
  parts.push(`<text x="${left + k.legend.length * 70 + 10}" y="${ly + 11}" font-size="11">${teacher ? 'nats: log π_teacher − log π_student' : 'nats: −log π_student (no teacher)'}</text>`);
  parts.push('</svg>\n');
  return parts.join('\n');
}

/** The heat-map section's heading and explanation (HTML): where the teacher disagreed, or that there is no teacher. */
export function heatIntro(rows: readonly RolloutRow[]): string {
  const step = rows[0]?.step ?? '-';
  if (!rows.length) return `<h2>Per-token heat-map</h2>\n<p>No rollout shard in this run yet.</p>`;
  if (hasTeacher(rows))
    return `<h2>Where the teacher disagreed (step ${step})</h2>
<p>Each completion token is shaded by log π<sub>T</sub> − log π<sub>student</sub> (the sampler's log-prob): red where the teacher finds the token less likely than the student did, green where more likely; hover for the value.</p>`;
  return `<h2>No teacher in this run: the student's own surprisal (step ${step})</h2>
<p>This run has no teacher (blend mode grpo: rewards only), so there are no teacher log-probs to compare with. Each completion token is shaded instead by −log π<sub>student</sub> (the sampler's log-prob): darker blue where the student found its own token less likely; hover for the value.</p>`;
}

/** Writes report.html and report/*.png into the run directory; returns the HTML path. */
export function writeReport(runDir: string, tok: Tokenizer, opts: { samples?: number; png?: boolean } = {}): string {
  const run = runDirPaths(runDir);
  const metrics = readMetrics(run.dir);
  const figs = charts(metrics);
  const shards = listShards(run.shards);
  const last = shards.at(-1);
  const rows = last ? tableToRollouts(readShard(run.shards, last.file)).slice(0, opts.samples ?? 12) : [];
  const heat = rows.length ? heatmapSvg(rows, tok) : null;
  if (opts.png ?? true) {
    const dir = join(run.dir, 'report');
    mkdirSync(dir, { recursive: true });
    for (const f of figs) writeNamed(join(dir, `${f.file}.png`), svgToPng(f.svg));
    if (heat) writeNamed(join(dir, 'heatmap.png'), svgToPng(heat));
  }
  const html = `<!doctype html><html><head><meta charset="utf-8"><title>opd report: ${esc(run.name)}</title>
<style>body{font-family:system-ui,sans-serif;margin:24px;max-width:1240px}figure{display:inline-block;margin:8px}td{padding:2px 8px;vertical-align:top}span{padding:0 1px}</style></head><body>
<h1>opd run ${esc(run.name)}</h1><p>${metrics.length} steps recorded in <code>${esc(run.dir)}</code>. PNG copies of every figure are in <code>report/</code>.</p>
<h2>Curves</h2>${figs.map((f) => `<figure>${f.svg}</figure>`).join('\n')}
${heatIntro(rows)}
<table><tr><th>prompt</th><th>completion</th><th>reward</th></tr>${rows.map((r) => heatRow(r, tok, hasTeacher(rows))).join('\n')}</table>
${heat ? `<figure>${heat}</figure>` : ''}
</body></html>\n`;
  const file = join(run.dir, 'report.html');
  writeNamed(file, html);
  return file;
}

/** A report file: derived and rewritten whole on every report, so not atomic; a full disk names it. */
function writeNamed(file: string, data: string | Uint8Array): void {
  try {
    writeFileSync(file, data);
  } catch (e) {
    throw writeError(e, file);
  }
}
