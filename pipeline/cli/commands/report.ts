// `opd report RUN_DIR`: write RUN_DIR/report.html and RUN_DIR/report/*.png (curves and
// teacher-disagreement heat-maps).

import { join } from 'node:path';
import { loadTokenizer } from '../../../data/tokenizer/hf.ts';
import { readFrozenConfig } from '../../rundir.ts';
import { writeReport } from '../../report.ts';
import type { Command } from '../command.ts';

export const report: Command = {
  name: 'report',
  summary: 'write RUN_DIR/report.html and report/*.png: reward/accuracy/teacher-KL curves and per-token teacher-vs-student heat-maps',
  usage: 'report RUN_DIR',
  options: {},
  positionals: 1,
  async run({ positionals }) {
    const dir = positionals[0];
    if (!dir) throw new Error('give the run directory: opd report RUN_DIR');
    const config = readFrozenConfig(dir) as { student?: unknown };
    // a {builtin} student lives in the run directory (student-init/), as opd run created it
    const s = config.student as { path?: unknown } | string | undefined;
    const studentDir = typeof s === 'string' ? s : typeof s?.path === 'string' ? s.path : join(dir, 'student-init');
    console.log(writeReport(dir, await loadTokenizer(studentDir)));
  },
};
