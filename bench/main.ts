// `npm run bench -- <suite> [--json]`: runs one benchmark suite and prints its figures as one JSON
// object on the last line (with --json, nothing else goes to stdout). Every figure is reported
// beside a yardstick measured in the same run (the MatMul peak of this machine).

import { engineBench } from './engine.ts';
import { lmBench } from './lm.ts';
import { pipelineBench } from './pipeline.ts';
import { queueBench } from './queue.ts';
import { realSizeBench } from './realsize.ts';
import { scaleBench } from './scale.ts';
import { teacherBench } from './teacher.ts';

const suites: Record<string, (log: (s: string) => void) => Promise<Record<string, unknown>>> = {
  engine: engineBench,
  lm: lmBench,
  teacher: teacherBench,
  pipeline: pipelineBench,
  scale: scaleBench,
  realsize: realSizeBench,
  queue: queueBench,
};

const args = process.argv.slice(2);
const json = args.includes('--json');
const names = args.filter((a) => !a.startsWith('--'));
// the real-size suites take minutes and GBs, the queue suite a redis-server: run them by name
const chosen = names.length ? names : Object.keys(suites).filter((n) => n !== 'scale' && n !== 'realsize' && n !== 'queue');
const log = (s: string) => (json ? process.stderr.write(s + '\n') : console.log(s));
const result: Record<string, unknown> = {};
for (const name of chosen) {
  const suite = suites[name];
  if (!suite) {
    console.error(`unknown bench suite "${name}"; choose from: ${Object.keys(suites).join(', ')}`);
    process.exit(2);
  }
  Object.assign(result, chosen.length > 1 ? { [name]: await suite(log) } : await suite(log));
}
console.log(JSON.stringify(result));
