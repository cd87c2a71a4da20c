// `opd compare`'s arithmetic: per-run held-out curves from metrics.jsonl, mean ± sample std over
// seeds at each evaluated step, the results table and the plotted series. Pure functions; the
// command (pipeline/cli/commands/compare.ts) runs the jobs and writes the files.
//
// Conventions: step 0 of a curve is the student before training (summary.student_before_*); x on
// the tokens axis is the cumulative student tokens (prompt + completion of every rollout) up to
// that step, averaged over seeds; std is the sample std (n − 1), undefined (shown "—") for n = 1;
// teacher-KL is the mean of `teacher_kl` over the last 10 % of steps, absent in grpo.

import type { MetricsRecord } from './rundir.ts';
import type { Series } from './report/chart.ts';

export interface EvalPoint {
  step: number;
  tokens: number;
  accuracy: number;
  reward: number;
}

export interface RunResult {
  mode: string;
  seed: number;
  runDir: string;
  curve: EvalPoint[];
  /** Mean teacher_kl over the last 10 % of steps; undefined without a teacher. */
  teacherKl?: number;
  tokens: number;
  wallSeconds: number;
  finalAccuracy: number;
  finalReward: number;
}

export interface RunSummaryLike {
  steps: number;
  wall_s: number;
  student_before_accuracy?: number;
  student_before_reward?: number;
  student_after_accuracy?: number;
  student_after_reward?: number;
}

export function runResult(mode: string, seed: number, runDir: string, summary: RunSummaryLike, metrics: readonly MetricsRecord[]): RunResult {
  const curve: EvalPoint[] = [];
  if (summary.student_before_accuracy !== undefined) curve.push({ step: 0, tokens: 0, accuracy: summary.student_before_accuracy, reward: summary.student_before_reward ?? NaN });
  let tokens = 0;
  for (const m of metrics) {
    tokens += Number(m.prompt_tokens ?? 0) + Number(m.completion_tokens ?? 0);
    if (typeof m.eval_accuracy === 'number') curve.push({ step: m.step, tokens, accuracy: m.eval_accuracy, reward: Number(m.eval_reward) });
  }
  const tail = metrics.slice(Math.floor(metrics.length * 0.9)).map((m) => m.teacher_kl).filter((v): v is number => typeof v === 'number');
  const last = curve.at(-1);
  return {
    mode, seed, runDir, curve, tokens, wallSeconds: summary.wall_s,
    teacherKl: tail.length ? tail.reduce((a, b) => a + b, 0) / tail.length : undefined,
    finalAccuracy: summary.student_after_accuracy ?? last?.accuracy ?? NaN,
    finalReward: summary.student_after_reward ?? last?.reward ?? NaN,
  };
}

export interface MeanStd {
  mean: number;
  /** Sample std (n − 1); undefined when n < 2. */
  std?: number;
  n: number;
}

export function meanStd(xs: readonly number[]): MeanStd {
  const n = xs.length;
  if (n === 0) return { mean: NaN, n };
  const mean = xs.reduce((a, b) => a + b, 0) / n;
  if (n < 2) return { mean, n };
  return { mean, std: Math.sqrt(xs.reduce((a, x) => a + (x - mean) ** 2, 0) / (n - 1)), n };
}

export interface ModeRow {
  mode: string;
  seeds: number;
  /** Held-out accuracy at each requested step (NaN mean where no run evaluated that step). */
  accuracyAt: MeanStd[];
  finalAccuracy: MeanStd;
  finalReward: MeanStd;
  teacherKl?: MeanStd;
  tokens: MeanStd;
  wallSeconds: MeanStd;
}

const pointAt = (r: RunResult, step: number) => r.curve.find((p) => p.step === step);

export function modeRows(runs: readonly RunResult[], at: readonly number[]): ModeRow[] {
  const modes = [...new Set(runs.map((r) => r.mode))];
  return modes.map((mode) => {
    const rs = runs.filter((r) => r.mode === mode);
    const kls = rs.map((r) => r.teacherKl).filter((v): v is number => v !== undefined);
    return {
      mode,
      seeds: rs.length,
      accuracyAt: at.map((s) => meanStd(rs.map((r) => pointAt(r, s)?.accuracy).filter((v): v is number => v !== undefined))),
      finalAccuracy: meanStd(rs.map((r) => r.finalAccuracy)),
      finalReward: meanStd(rs.map((r) => r.finalReward)),
      teacherKl: kls.length ? meanStd(kls) : undefined,
      tokens: meanStd(rs.map((r) => r.tokens)),
      wallSeconds: meanStd(rs.map((r) => r.wallSeconds)),
    };
  });
}

/** "0.452 ± 0.013", "0.452 ± —" for one seed, "—" for no value. */
export function fmtMeanStd(v: MeanStd | undefined, digits = 3): string {
  if (!v || !Number.isFinite(v.mean)) return '—';
  return `${v.mean.toFixed(digits)} ± ${v.std === undefined ? '—' : v.std.toFixed(digits)}`;
}

export function tableMarkdown(rows: readonly ModeRow[], at: readonly number[]): string {
  const head = ['mode', 'seeds', ...at.map((s) => `acc @${s}`), 'acc final', 'reward final', 'teacher-KL (last 10%)', 'student tokens', 'wall s'];
  const lines = [`| ${head.join(' | ')} |`, `| ${head.map(() => '---').join(' | ')} |`];
  for (const r of rows) {
    const cells = [
      r.mode, String(r.seeds), ...r.accuracyAt.map((v) => fmtMeanStd(v)), fmtMeanStd(r.finalAccuracy), fmtMeanStd(r.finalReward),
      fmtMeanStd(r.teacherKl), r.tokens.mean.toFixed(0), fmtMeanStd(r.wallSeconds, 0),
    ];
    lines.push(`| ${cells.join(' | ')} |`);
  }
  return lines.join('\n') + '\n';
}

/** Mean held-out accuracy (or mean reward) per mode (± std band) against steps or cumulative student tokens. */
export function accuracySeries(runs: readonly RunResult[], x: 'step' | 'tokens', metric: 'accuracy' | 'reward' = 'accuracy'): Series[] {
  const modes = [...new Set(runs.map((r) => r.mode))];
  return modes.map((mode) => {
    const rs = runs.filter((r) => r.mode === mode);
    const steps = [...new Set(rs.flatMap((r) => r.curve.map((p) => p.step)))].sort((a, b) => a - b);
    const pts = steps.flatMap((s) => {
      const ps = rs.map((r) => pointAt(r, s)).filter((p): p is EvalPoint => p !== undefined);
      if (!ps.length) return [];
      const acc = meanStd(ps.map((p) => p[metric]));
      const xv = x === 'step' ? s : meanStd(ps.map((p) => p.tokens)).mean;
      return [{ x: xv, acc }];
    });
    return {
      name: mode,
      points: pts.map((p) => [p.x, p.acc.mean] as const),
      band: pts.filter((p) => p.acc.std !== undefined).map((p) => [p.x, p.acc.mean - p.acc.std!, p.acc.mean + p.acc.std!] as const),
    };
  });
}
