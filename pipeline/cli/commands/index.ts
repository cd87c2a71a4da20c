// Every `opd` command, in the order `opd --help` lists them.

import type { Command } from '../command.ts';
import { generate } from './generate.ts';
import { modelInit } from './model-init.ts';
import { score } from './score.ts';
import { sft } from './sft.ts';
import { teacherServe } from './teacher-serve.ts';

export const commands: Command[] = [modelInit, generate, score, sft, teacherServe];
