// `opd compare CONFIG --modes grpo,replace,additive[,loss,masked] --seeds 3`: the same job once per
// blend mode and seed, sequentially (each run uses every core), into <out>/<mode>-seed<k>/, all
// sharing <out>/score-cache so teacher scores are reused wherever rollouts coincide. A run whose
// summary.json exists is not rerun, so an interrupted compare resumes (each run also resumes
// itself). Writes results.json, table.md and accuracy-vs-steps / accuracy-vs-tokens /
// reward-vs-steps plots (SVG + PNG), and prints the table. Accuracy is what each run counts
// (pipeline/run-data.ts): exact answers on a task, reward ≥ run.accuracyThreshold on a prompt
// file; a prompt file without data.test has no held-out numbers, which is said before any run.
// While an arm runs, its progress shows: a bar on a terminal, else a line `compare: <mode>-seed<k>
// step i/N ...` every ~5 % of its steps (and at each held-out evaluation). A stop signal during an
// arm stops it after its current step with a checkpoint (exit 130 / 143 / 129); one during an arm's
// start-up or between arms exits at once, saying so; the same command continues.
//
// Modes that need a setting the config may leave unset get a stated default: loss →
// algo.blend.distillCoef = 1; masked → algo.blend.rewardThreshold = 1 (teacher term only on
// rollouts with reward < 1, i.e. the wrong ones under a 0/1 reward). The top-k divergences are
// blend mode loss with algo.blend.divergence set: topk_fkl, topk_rkl, topk_jsd; so are the full-vocabulary
// ones, full_fkl, full_rkl, full_jsd (a local teacher with the student's tokenizer, fused train step).
//
// sft-teacher is the off-policy baseline (algo.objective sft_teacher): the teacher samples G
// completions of each step's prompts and the student is SFT'd on them. It runs at matched student
// compute: an OPD step costs the student 2·N_s (sampling) + 6·N_s (training) FLOPs per token, an SFT
// step 6·N_s, so the baseline gets round(steps · 8/6) steps (evaluated on the same cadence). Every
// run's FLOPs (pipeline/compare.ts) give the accuracy-vs-FLOPs plot and the table's FLOPs column.

import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { type ComputeModel, accuracySeries, modeRows, type RunResult, runResult, tableMarkdown } from '../../compare.ts';
import { type RunConfig, loadRunConfig, parseRunConfig } from '../../config.ts';
import { studentPath } from '../../config/sources.ts';
import { matmulParams, parseConfig as parseModelConfig } from '../../../student/model/config.ts';
import { lineChart, svgToPng } from '../../report/chart.ts';
import { readFrozenConfig, readMetrics } from '../../rundir.ts';
import { num } from '../args.ts';
import { type Command, UsageError } from '../command.ts';
import { guardStartup, thisCommand } from '../startup-signals.ts';
import type { RunSummary } from '../../job.ts';

const MODES = ['grpo', 'replace', 'additive', 'loss', 'masked', 'topk_fkl', 'topk_rkl', 'topk_jsd', 'full_fkl', 'full_rkl', 'full_jsd', 'sft-teacher'] as const;

/** The overrides that turn the base config into a mode's run (besides seed, name and output directory). */
function modeOverrides(mode: string, base: RunConfig): string[] {
  if (mode === 'sft-teacher') return ['algo.objective=sft_teacher', `run.steps=${Math.round((base.run.steps * 8) / 6)}`];
  if (mode.startsWith('topk_') || mode.startsWith('full_')) return ['algo.blend.mode=loss', `algo.blend.divergence=${mode}`];
  return [`algo.blend.mode=${mode}`];
}

/** N of a local model directory (its config.json), undefined for anything else (an HTTP server, an ONNX file). */
function localParams(path: string | undefined): number | undefined {
  if (!path || path.endsWith('.onnx') || !existsSync(join(path, 'config.json'))) return undefined;
  return matmulParams(parseModelConfig(JSON.parse(readFileSync(join(path, 'config.json'), 'utf8')) as Record<string, unknown>, join(path, 'config.json')));
}

/** computeModel of the run in `dir`; a frozen config this version cannot read leaves the run without FLOPs, said once. */
function computeOf(dir: string): ComputeModel | undefined {
  try {
    return computeModel(parseRunConfig(readFrozenConfig(dir), join(dir, 'config.json')), dir);
  } catch (e) {
    console.error(`compare: no FLOPs for ${dir}: ${(e as Error).message.split('\n')[0]}`);
    return undefined;
  }
}

/** What a finished run's steps cost (pipeline/compare.ts ComputeModel), from its frozen config. */
function computeModel(c: RunConfig, runDir: string): ComputeModel | undefined {
  const student = localParams(typeof c.student === 'object' && 'builtin' in c.student ? join(runDir, 'student-init') : studentPath(c.student) ?? undefined) ?? localParams(join(runDir, 'student-init'));
  if (student === undefined) return undefined;
  const sft = c.algo.objective === 'sft_teacher';
  const id = sft ? c.algo.sftTeacher ?? c.routing.defaultTeacher ?? c.teachers[0]?.id : c.routing.defaultTeacher ?? c.teachers[0]?.id;
  const t = c.teachers.find((x) => x.id === id);
  const teacherScores = !sft && c.algo.blend.mode !== 'grpo';
  return { studentParams: student, teacherParams: t?.kind === 'local' ? localParams(t.path) : undefined, epochs: c.train.epochs, sampler: sft ? 'teacher' : 'student', teacherScores };
}

export const compare: Command = {
  name: 'compare',
  summary: 'run a config once per blend mode and seed; table and plots of held-out accuracy (mean ± std over seeds)',
  usage: 'compare CONFIG.json [--modes grpo,replace,additive[,loss,masked,topk_fkl,topk_rkl,topk_jsd,full_fkl,full_rkl,full_jsd,sft-teacher]] [--seeds 3] [--set path=value ...] [--out DIR] [--at 250,500,1000]',
  options: { modes: { type: 'string' }, seeds: { type: 'string' }, set: { type: 'string', multiple: true }, out: { type: 'string' }, at: { type: 'string' } },
  positionals: 1,
  async run({ values, positionals }) {
    const file = positionals[0];
    if (!file) throw new UsageError('give the config file: opd compare CONFIG.json');
    const again = thisCommand();
    // a signal while no arm runs (start-up, between arms): nothing is lost, the finished arms are kept
    guardStartup((sig) => `opd compare: ${sig} while no run was under way; the finished runs are kept (their summary.json) and are not rerun; continue with: ${again}`);
    const modes = String(values.modes ?? 'grpo,replace,additive').split(',').map((m) => m.trim()).filter(Boolean);
    for (const m of modes) if (!(MODES as readonly string[]).includes(m)) throw new UsageError(`--modes: "${m}" is not one of ${MODES.join(' | ')}`);
    const seeds = num(values, 'seeds', 3, { int: true, min: 1 });
    const sets = (values.set as string[] | undefined) ?? [];
    const base = loadRunConfig(file, sets);
    const { signalExitCode, startRun } = await import('./run.ts'); // after validation: a config error never waits for onnxruntime
    const out = resolve(typeof values.out === 'string' ? values.out : join(base.run.outDir, `compare-${base.run.name ?? basename(file, '.json')}`));
    const at = typeof values.at === 'string'
      ? values.at.split(',').map((s) => Number(s))
      : base.run.evalEvery > 0 ? Array.from({ length: Math.floor(base.run.steps / base.run.evalEvery) }, (_, i) => (i + 1) * base.run.evalEvery) : [base.run.steps];
    if (at.some((s) => !Number.isInteger(s) || s < 0)) throw new UsageError(`--at: expected step counts like 250,500,1000, got "${String(values.at)}"`);
    await mkdir(out, { recursive: true });
    // the setting a mode needs when the config leaves it unset (see the header)
    const coef = base.algo.blend.distillCoef === undefined ? 'algo.blend.distillCoef=1' : undefined;
    const modeDefault: Record<string, string | undefined> = {
      loss: coef, topk_fkl: coef, topk_rkl: coef, topk_jsd: coef,
      masked: base.algo.blend.rewardThreshold === undefined ? 'algo.blend.rewardThreshold=1' : undefined,
    };
    if ('path' in base.data && base.data.test === undefined)
      console.error('compare: data.test is not set, so the runs have no held-out evaluation and the table no accuracy; set it to a file or a fraction, e.g. 0.1');
    const used = [...new Set(modes.map((m) => modeDefault[m]).filter((d): d is string => d !== undefined))];
    if (used.length) console.error(`compare: using ${used.join(', ')} (not set in the config)`);
    const runs: RunResult[] = [];
    const t0 = performance.now();
    for (const mode of modes) {
      for (let k = 0; k < seeds; k++) {
        const seed = base.run.seed + k;
        const name = `${mode}-seed${seed}`;
        const dir = join(out, name);
        let summary: RunSummary;
        if (existsSync(join(dir, 'summary.json'))) {
          summary = JSON.parse(readFileSync(join(dir, 'summary.json'), 'utf8')) as RunSummary;
          console.error(`compare: ${name} already finished, reusing it`);
        } else {
          const c = loadRunConfig(file, [...sets, ...(modeDefault[mode] ? [modeDefault[mode]] : []), ...modeOverrides(mode, base), `run.seed=${seed}`, `run.outDir=${JSON.stringify(out)}`, `run.name=${name}`]);
          console.error(`compare: ${name} (${c.run.steps} steps) ...`);
          summary = await startRun(c, { quiet: true, handleSignals: true, again, label: `compare: ${name}`, progressEvery: Math.max(1, Math.ceil(c.run.steps / 20)) });
          if (summary.stopped_by) return signalExitCode(summary.stopped_by);
        }
        const r = runResult(mode, seed, dir, summary, readMetrics(dir), computeOf(dir));
        console.error(`compare: ${name}: held-out accuracy ${r.curve.map((p) => `${p.step}:${p.accuracy.toFixed(3)}`).join(' ')} (${summary.wall_s.toFixed(0)} s)`);
        runs.push(r);
      }
    }
    const rows = modeRows(runs, at);
    const table = tableMarkdown(rows, at);
    writeFileSync(join(out, 'results.json'), JSON.stringify({ config: resolve(file), overrides: sets, modes, seeds, at, runs, rows }, null, 1) + '\n');
    writeFileSync(join(out, 'table.md'), table);
    const plots = [['accuracy', 'step', 'training steps'], ['accuracy', 'tokens', 'student tokens processed'], ['accuracy', 'flops', 'FLOPs, student + teacher'], ['reward', 'step', 'training steps']] as const;
    for (const [metric, x, label] of plots) {
      const what = metric === 'accuracy' ? 'held-out accuracy' : 'held-out mean reward';
      const svg = lineChart({ title: `${what} vs ${label} (mean ± std over ${seeds} seed${seeds > 1 ? 's' : ''})`, xLabel: label, yLabel: what, series: accuracySeries(runs, x, metric), yMin: metric === 'accuracy' ? 0 : undefined });
      const stem = join(out, `${metric}-vs-${x === 'step' ? 'steps' : x}`);
      writeFileSync(`${stem}.svg`, svg);
      writeFileSync(`${stem}.png`, svgToPng(svg));
    }
    console.log(table);
    console.log(`${out} (${((performance.now() - t0) / 1e3).toFixed(0)} s)`);
  },
};
