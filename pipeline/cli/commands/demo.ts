// `opd demo`: the built-in distillation end to end, on CPU, with nothing to download. Trains (once;
// cached under runs/models) a teacher that solves the demo task and a smaller student that does not,
// both with `opd sft`; then runs GRPO-OPD (the demo's config, e.g. examples/arithmetic.json) in a new
// run directory under runs/, and prints teacher / student before / student after held-out accuracy,
// the report and the run directory (last line of stdout). `--task` picks the demo: arithmetic
// (fixed-width 2-digit addition, the default) or long_multiplication (written-out products, a
// sparse whole-answer reward; pipeline/recipes/demo.ts DEMOS).

import { existsSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join, resolve } from 'node:path';
import { loadRunConfig } from '../../config.ts';
import { createLogger, flushLogger } from '../../log.ts';
import { DEMOS, ensureDemoModel, recipeCommands } from '../../recipes/demo.ts';
import { flag, str } from '../args.ts';
import { type Command, UsageError } from '../command.ts';
import { signalExitCode, startRun } from './run.ts';

/** The newest `<outDir>/<prefix>*` run directory without a summary.json (an interrupted demo). */
function unfinishedRun(outDir: string, prefix: string): string {
  const names = existsSync(outDir) ? readdirSync(outDir).filter((n) => n.startsWith(prefix) && existsSync(join(outDir, n, 'config.json')) && !existsSync(join(outDir, n, 'summary.json'))).sort() : [];
  if (!names.length) throw new Error(`--resume: no unfinished demo run (${prefix}*) in ${resolve(outDir)}; run opd demo without --resume to start one`);
  return names.at(-1)!;
}

const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));

export const demo: Command = {
  name: 'demo',
  summary: 'the built-in distillation end to end: train (once) a teacher and a student, run GRPO-OPD, print the table',
  usage: `demo [--task ${Object.keys(DEMOS).join('|')}] [--models runs/models] [--config examples/arithmetic.json] [--set path=value ...] [--resume (continue the newest unfinished demo run)]`,
  options: { task: { type: 'string' }, models: { type: 'string' }, config: { type: 'string' }, set: { type: 'string', multiple: true }, resume: { type: 'boolean' } },
  async run({ values }) {
    const t0 = performance.now();
    const name0 = values.task === undefined ? 'arithmetic' : str(values, 'task');
    const d = Object.hasOwn(DEMOS, name0) ? DEMOS[name0]! : null;
    if (!d) throw new UsageError(`--task: "${name0}" is not a demo; the demos are ${Object.keys(DEMOS).join(', ')}`);
    const models = resolve(values.models === undefined ? 'runs/models' : str(values, 'models'));
    const log = createLogger();
    const teacher = await ensureDemoModel(models, d.teacher, { log: (m) => log.info(m) });
    const student = await ensureDemoModel(models, d.student, { log: (m) => log.info(m) });
    for (const [r, m] of [[d.teacher, teacher], [d.student, student]] as const)
      log.info(m.trained ? `${r.name}: trained in ${m.seconds.toFixed(0)} s; the same directory, bit for bit: ${recipeCommands(models, r).join(' && ')}` : `${r.name}: cached in ${m.dir}`);
    await flushLogger(log);
    const configFile = values.config === undefined ? join(repoRoot, d.config) : str(values, 'config');
    const base = loadRunConfig(configFile, (values.set as string[] | undefined) ?? []);
    const prefix = `${base.run.name ?? 'demo'}-`;
    const stamp = new Date().toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
    const name = flag(values, 'resume') ? unfinishedRun(base.run.outDir, prefix) : `${prefix}${stamp}`;
    const overrides = [
      `student=${JSON.stringify(student.dir)}`,
      `teachers.0.path=${JSON.stringify(teacher.dir)}`,
      ...((values.set as string[] | undefined) ?? []),
      `run.name=${name}`,
    ];
    const c = loadRunConfig(configFile, overrides);
    const s = await startRun(c, { handleSignals: true });
    if (s.stopped_by) return signalExitCode(s.stopped_by);
    const pct = (x: number | undefined) => (x === undefined ? '   n/a' : `${(100 * x).toFixed(1).padStart(5)}%`);
    const gain = s.student_after_accuracy !== undefined && s.student_before_accuracy !== undefined ? (100 * (s.student_after_accuracy - s.student_before_accuracy)).toFixed(1) : 'n/a';
    console.log(
      [
        '',
        `held-out accuracy (${c.run.evalPrompts} test problems, greedy; none seen in training):`,
        `  teacher                      ${pct(s.teacher_accuracy)}`,
        `  student before               ${pct(s.student_before_accuracy)}`,
        `  student after ${String(s.steps).padEnd(5)} GRPO-OPD  ${pct(s.student_after_accuracy)}   (${Number(gain) >= 0 ? '+' : ''}${gain} points)`,
        '',
        `summary: ${join(s.run_dir, 'summary.json')}`,
        `report:  ${join(s.run_dir, 'report.html')}`,
        `total time: ${((performance.now() - t0) / 1e3).toFixed(0)} s`,
        s.run_dir,
      ].join('\n'),
    );
  },
};
