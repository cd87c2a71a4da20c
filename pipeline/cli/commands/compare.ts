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
// rollouts with reward < 1, i.e. the wrong ones under a 0/1 reward).

import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { accuracySeries, modeRows, type RunResult, runResult, tableMarkdown } from '../../compare.ts';
import { loadRunConfig } from '../../config.ts';
import { lineChart, svgToPng } from '../../report/chart.ts';
import { readMetrics } from '../../rundir.ts';
import { num } from '../args.ts';
import { type Command, UsageError } from '../command.ts';
import { guardStartup, thisCommand } from '../startup-signals.ts';
import type { RunSummary } from '../../job.ts';

const MODES = ['grpo', 'replace', 'additive', 'loss', 'masked'] as const;

export const compare: Command = {
  name: 'compare',
  summary: 'run a config once per blend mode and seed; table and plots of held-out accuracy (mean ± std over seeds)',
  usage: 'compare CONFIG.json [--modes grpo,replace,additive[,loss,masked]] [--seeds 3] [--set path=value ...] [--out DIR] [--at 250,500,1000]',
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
    const modeDefault: Record<string, string | undefined> = {
      loss: base.algo.blend.distillCoef === undefined ? 'algo.blend.distillCoef=1' : undefined,
      masked: base.algo.blend.rewardThreshold === undefined ? 'algo.blend.rewardThreshold=1' : undefined,
    };
    if ('path' in base.data && base.data.test === undefined)
      console.error('compare: data.test is not set, so the runs have no held-out evaluation and the table no accuracy; set it to a file or a fraction, e.g. 0.1');
    const used = modes.map((m) => modeDefault[m]).filter((d): d is string => d !== undefined);
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
          const c = loadRunConfig(file, [...sets, ...(modeDefault[mode] ? [modeDefault[mode]] : []), `algo.blend.mode=${mode}`, `run.seed=${seed}`, `run.outDir=${JSON.stringify(out)}`, `run.name=${name}`]);
          console.error(`compare: ${name} (${c.run.steps} steps) ...`);
          summary = await startRun(c, { quiet: true, handleSignals: true, again, label: `compare: ${name}`, progressEvery: Math.max(1, Math.ceil(c.run.steps / 20)) });
          if (summary.stopped_by) return signalExitCode(summary.stopped_by);
        }
        const r = runResult(mode, seed, dir, summary, readMetrics(dir));
        console.error(`compare: ${name}: held-out accuracy ${r.curve.map((p) => `${p.step}:${p.accuracy.toFixed(3)}`).join(' ')} (${summary.wall_s.toFixed(0)} s)`);
        runs.push(r);
      }
    }
    const rows = modeRows(runs, at);
    const table = tableMarkdown(rows, at);
    writeFileSync(join(out, 'results.json'), JSON.stringify({ config: resolve(file), overrides: sets, modes, seeds, at, runs, rows }, null, 1) + '\n');
    writeFileSync(join(out, 'table.md'), table);
    const plots = [['accuracy', 'step', 'training steps'], ['accuracy', 'tokens', 'student tokens processed'], ['reward', 'step', 'training steps']] as const;
    for (const [metric, x, label] of plots) {
      const what = metric === 'accuracy' ? 'held-out accuracy' : 'held-out mean reward';
      const svg = lineChart({ title: `${what} vs ${label} (mean ± std over ${seeds} seed${seeds > 1 ? 's' : ''})`, xLabel: label, yLabel: what, series: accuracySeries(runs, x, metric), yMin: metric === 'accuracy' ? 0 : undefined });
      const stem = join(out, `${metric}-vs-${x === 'step' ? 'steps' : 'tokens'}`);
      writeFileSync(`${stem}.svg`, svg);
      writeFileSync(`${stem}.png`, svgToPng(svg));
    }
    console.log(table);
    console.log(`${out} (${((performance.now() - t0) / 1e3).toFixed(0)} s)`);
  },
};
