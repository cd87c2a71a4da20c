// Experiment helper (not part of the CLI): write a built-in task's train split as TRL-style SFT
// JSONL, {"prompt", "completion"} with completion = task.demonstration(record) (EOS is appended by
// `opd sft`). Deterministic in (task, config, n, seed).
//
//   node --import tsx examples/demo/make-sft-data.ts arithmetic '{"digits":2,"ops":["+"]}' 4000 0 > /tmp/train.jsonl

import { createTask } from '../../data/tasks/registry.ts';

const [name = 'arithmetic', config = '{}', n = '1000', seed = '0'] = process.argv.slice(2);
const task = createTask(name, JSON.parse(config));
const lines = task.generate('train', Number(n), Number(seed)).map((r) => JSON.stringify({ prompt: r.prompt, completion: task.demonstration(r) }));
process.stdout.write(lines.join('\n') + '\n');
