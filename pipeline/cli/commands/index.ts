// Every `opd` command, in the order `opd --help` lists them.

import type { Command } from '../command.ts';
import { modelInit } from './model-init.ts';
import { score } from './score.ts';

export const commands: Command[] = [modelInit, score];
