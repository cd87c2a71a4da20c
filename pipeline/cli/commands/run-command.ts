// `opd run CONFIG [--set path=value ...] [--force]` and `opd resume RUN_DIR`: the command-line side
// of the GRPO-OPD job (run.ts; the job itself is assembled in pipeline/job.ts). The config is read,
// validated and its input paths checked before run.ts -- and onnxruntime, the models and the
// teachers with it -- is imported, so a config error is reported at once. A stop signal before the
// job takes the signals over (during those imports) exits at once and says so (../startup-signals.ts).

import { join } from 'node:path';
import { checkInputPaths, loadRunConfig, parseRunConfig } from '../../config.ts';
import { flag } from '../args.ts';
import type { Command } from '../command.ts';
import { guardStartup, thisCommand } from '../startup-signals.ts';
import { QUEUE_OPTIONS, QUEUE_USAGE, queueOptions } from './worker.ts';

export const run: Command = {
  name: 'run',
  summary: 'run a GRPO on-policy distillation job from a config (resumes an unfinished run of the same name)',
  usage: `run CONFIG.json [--set path=value ...] [--force] ${QUEUE_USAGE}`,
  options: { set: { type: 'string', multiple: true }, force: { type: 'boolean' }, ...QUEUE_OPTIONS },
  positionals: 1,
  async run({ values, positionals }) {
    const file = positionals[0];
    if (!file) throw new Error('give the config file: opd run CONFIG.json');
    const again = thisCommand();
    guardStartup((sig) => `opd run: ${sig} during start-up (loading opd and onnxruntime), before the first step: nothing was committed; start it again with: ${again}`);
    const sets = (values.set as string[] | undefined) ?? [];
    const c = loadRunConfig(file, sets);
    checkInputPaths(c, file, sets);
    const { startRun, signalExitCode } = await import('./run.ts');
    const summary = await startRun(c, { force: flag(values, 'force'), handleSignals: true, again, queue: queueOptions(values) });
    console.log(summary.run_dir);
    return summary.stopped_by ? signalExitCode(summary.stopped_by) : 0;
  },
};

export const resume: Command = {
  name: 'resume',
  summary: 'continue an interrupted run from its newest committed checkpoint',
  usage: `resume RUN_DIR ${QUEUE_USAGE}`,
  options: { ...QUEUE_OPTIONS },
  positionals: 1,
  async run({ values, positionals }) {
    const dir = positionals[0];
    if (!dir) throw new Error('give the run directory: opd resume RUN_DIR');
    guardStartup((sig) => `opd resume: ${sig} during start-up (loading opd and onnxruntime), before the first step: nothing was committed; start it again with: opd resume ${dir}`);
    const { readFrozenConfig, runDirPaths } = await import('../../rundir.ts');
    const file = join(dir, 'config.json');
    const c = parseRunConfig(readFrozenConfig(runDirPaths(dir).dir), file);
    checkInputPaths(c, file);
    const { runInDir, signalExitCode } = await import('./run.ts');
    const summary = await runInDir(c, dir, { handleSignals: true, queue: queueOptions(values) });
    console.log(summary.run_dir);
    return summary.stopped_by ? signalExitCode(summary.stopped_by) : 0;
  },
};
