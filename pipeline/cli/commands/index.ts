// Every `opd` command, in the order `opd --help` lists them. A command's module is imported only
// when that command runs (or for `opd --help`), so a config or usage error never waits for the
// modules other commands need (onnxruntime, the models, the report's renderer).

import type { Command } from '../command.ts';

export interface CommandEntry {
  /** Words after `opd`: the loaded command's `name`. */
  name: string;
  load(): Promise<Command>;
}

export const commands: readonly CommandEntry[] = [
  { name: 'demo', load: async () => (await import('./demo.ts')).demo },
  { name: 'run', load: async () => (await import('./run-command.ts')).run },
  { name: 'resume', load: async () => (await import('./run-command.ts')).resume },
  { name: 'report', load: async () => (await import('./report.ts')).report },
  { name: 'compare', load: async () => (await import('./compare.ts')).compare },
  { name: 'config', load: async () => (await import('./config.ts')).config },
  { name: 'model init', load: async () => (await import('./model-init.ts')).modelInit },
  { name: 'generate', load: async () => (await import('./generate.ts')).generate },
  { name: 'score', load: async () => (await import('./score.ts')).score },
  { name: 'sft', load: async () => (await import('./sft.ts')).sft },
  { name: 'eval', load: async () => (await import('./eval.ts')).evalCommand },
  { name: 'worker', load: async () => (await import('./worker.ts')).worker },
  { name: 'teacher serve', load: async () => (await import('./teacher-serve.ts')).teacherServe },
];
