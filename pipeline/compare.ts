// `opd compare`'s arithmetic: per-run held-out curves from metrics.jsonl, mean ± sample std over
// seeds at each evaluated step, the results table and the plotted series. Pure functions; the
// command (pipeline/cli/commands/compare.ts) runs the jobs and writes the files.
//
// Conventions: step 0 of a curve is the student before training (summary.student_before_*); x on
// the tokens axis is the cumulative student tokens (prompt + completion of every rollout) up to
// that step, averaged over seeds; std is the sample std (n − 1), undefined (shown "—") for n = 1;
// teacher-KL is the mean of `teacher_kl` over the last 10 % of steps, absent in grpo.
//
// Compute (the FLOPs axis): matrix-product FLOPs per token, N = matmulParams (student/model/config.ts),
// attention scores left out. A step over P + C tokens (all its rollouts' prompt and completion tokens)
// costs the student 2·N_s per token to sample them (prefill + decode) and 6·N_s per token per epoch to
// train on them; the teacher 2·N_T per token to score them. The sft-teacher baseline samples with the
// teacher (2·N_T) and only trains the student (6·N_s). grpo has no teacher term. A teacher whose size
// is unknown (an HTTP server) leaves the run without a FLOPs axis.

import type { MetricsRecord } from './rundir.ts';
import type { Series } from './report/chart.ts';

export interface EvalPoint {
  step: number;
  tokens: number;
  /** Cumulative student + teacher FLOPs up to this step (see the header); NaN when the teacher's size is unknown. */
  flops?: number;
  accuracy: number;
  reward: number;
}

/** What one step of a run costs, per token (see the header). */
export interface ComputeModel {
  /** N_s: the student's matmul parameters. */
  studentParams: number;
  /** N_T: the teacher's; undefined when unknown (an HTTP teacher). */
  teacherParams?: number;
  /** Passes of the trainer over each step's rollouts. */
  epochs: number;
  /** Who samples the rollouts: the student (every OPD mode and grpo) or the teacher (sft-teacher). */
  sampler: 'student' | 'teacher';
  /** Whether the teacher scores the rollouts (every mode but grpo and sft-teacher). */
  teacherScores: boolean;
}

/** FLOPs of a step over `tokens` (prompt + completion of every rollout), split by model. */
export function stepFlops(m: ComputeModel, tokens: number): { student: number; teacher: number } {
  const Ns = m.studentParams;
  const Nt = m.teacherParams ?? NaN;
  const student = (m.sampler === 'student' ? 2 : 0) * Ns * tokens + 6 * Ns * tokens * m.epochs;
  const teacherPerToken = (m.sampler === 'teacher' ? 2 : 0) + (m.teacherScores ? 2 : 0);
  return { student, teacher: teacherPerToken ? teacherPerToken * Nt * tokens : 0 };
}

export interface RunResult {
  mode: string;
  seed: number;
  runDir: string;
  curve: EvalPoint[];
  /** Mean teacher_kl over the last 10 % of steps; undefined without a teacher. */
  teacherKl?: number;
  tokens: number;
  /** Total FLOPs of the run by model (absent without a compute model). */
  flops?: { student: number; teacher: number };
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

export function runResult(mode: string, seed: number, runDir: string, summary: RunSummaryLike, metrics: readonly MetricsRecord[], compute?: ComputeModel): RunResult {
  const curve: EvalPoint[] = [];
  const at = (flops: { student: number; teacher: number }) => (compute ? { flops: flops.student + flops.teacher } : {});
  if (summary.student_before_accuracy !== undefined) curve.push({ step: 0, tokens: 0, ...at({ student: 0, teacher: 0 }), accuracy: summary.student_before_accuracy, reward: summary.student_before_reward ?? NaN });
  let tokens = 0;
  const flops = { student: 0, teacher: 0 };
  for (const m of metrics) {
    const t = Number(m.prompt_tokens ?? 0) + Number(m.completion_tokens ?? 0);
    tokens += t;
    if (compute) {
      const f = stepFlops(compute, t);
      flops.student += f.student;
      flops.teacher += f.teacher;
    }
    if (typeof m.eval_accuracy === 'number') curve.push({ step: m.step, tokens, ...at(flops), accuracy: m.eval_accuracy, reward: Number(m.eval_reward) });
  }
  const tail = metrics.slice(Math.floor(metrics.length * 0.9)).map((m) => m.teacher_kl).filter((v): v is number => typeof v === 'number');
  const last = curve.at(-1);
  return {
    mode, seed, runDir, curve, tokens, wallSeconds: summary.wall_s, ...(compute ? { flops } : {}),
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
  /** Mean total FLOPs per run by model (absent when no run has a compute model). */
  flops?: { student: MeanStd; teacher: MeanStd };
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
      ...(rs.every((r) => r.flops) ? { flops: { student: meanStd(rs.map((r) => r.flops!.student)), teacher: meanStd(rs.map((r) => r.flops!.teacher)) } } : {}),
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
  const head = ['mode', 'seeds', ...at.map((s) => `acc @${s}`), 'acc final', 'reward final', 'teacher-KL (last 10%)', 'student tokens', 'FLOPs student + teacher', 'wall s'];
  const lines = [`| ${head.join(' | ')} |`, `| ${head.map(() => '---').join(' | ')} |`];
  for (const r of rows) {
    const cells = [
      r.mode, String(r.seeds), ...r.accuracyAt.map((v) => fmtMeanStd(v)), fmtMeanStd(r.finalAccuracy), fmtMeanStd(r.finalReward),
      fmtMeanStd(r.teacherKl), r.tokens.mean.toFixed(0), fmtFlops(r.flops), fmtMeanStd(r.wallSeconds, 0),
    ];
    lines.push(`| ${cells.join(' | ')} |`);
  }
  return lines.join('\n') + '\n';
}

/** "2.9e11 + 1.4e12" (mean FLOPs of the student + the teacher), "—" when unknown. */
function fmtFlops(f: ModeRow['flops']): string {
  if (!f || !Number.isFinite(f.student.mean + f.teacher.mean)) return '—';
  return `${f.student.mean.toExponential(2)} + ${f.teacher.mean === 0 ? '0' : f.teacher.mean.toExponential(2)}`;
}

/** Mean held-out accuracy (or mean reward) per mode (± std band) against steps, cumulative student tokens or total FLOPs. */
export function accuracySeries(runs: readonly RunResult[], x: 'step' | 'tokens' | 'flops', metric: 'accuracy' | 'reward' = 'accuracy'): Series[] {
  const modes = [...new Set(runs.map((r) => r.mode))];
  return modes.map((mode) => {
    const rs = runs.filter((r) => r.mode === mode);
    const steps = [...new Set(rs.flatMap((r) => r.curve.map((p) => p.step)))].sort((a, b) => a - b);
    const pts = steps.flatMap((s) => {
      const ps = rs.map((r) => pointAt(r, s)).filter((p): p is EvalPoint => p !== undefined);
      if (!ps.length) return [];
      const acc = meanStd(ps.map((p) => p[metric]));
      const xv = x === 'step' ? s : meanStd(ps.map((p) => (x === 'tokens' ? p.tokens : p.flops ?? NaN))).mean;
      return Number.isFinite(xv) ? [{ x: xv, acc }] : [];
    });
    return {
      name: mode,
      points: pts.map((p) => [p.x, p.acc.mean] as const),
      band: pts.filter((p) => p.acc.std !== undefined).map((p) => [p.x, p.acc.mean - p.acc.std!, p.acc.mean + p.acc.std!] as const),
    };
  });
}
