// Every `opd` command, in the order `opd --help` lists them.

import type { Command } from '../command.ts';
import { compare } from './compare.ts';
import { demo } from './demo.ts';
import { evalCommand } from './eval.ts';
import { generate } from './generate.ts';
import { modelInit } from './model-init.ts';
import { report } from './report.ts';
import { resume, run } from './run.ts';
import { score } from './score.ts';
import { sft } from './sft.ts';
import { teacherServe } from './teacher-serve.ts';

export const commands: Command[] = [demo, run, resume, report, compare, modelInit, generate, score, sft, evalCommand, teacherServe];
