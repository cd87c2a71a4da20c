// `opd sft --model DIR --data F.jsonl --out DIR2`: supervised fine-tuning on TRL-style
// {"prompt", "completion"} lines (loss on completion tokens only); writes an HF model directory.

import { createLogger, flushLogger } from '../../log.ts';
import { sftModelDir } from '../../recipes/sft.ts';
import { inputFile, num, runtimeFrom, runtimeOptions, str } from '../args.ts';
import type { Command } from '../command.ts';

export const sft: Command = {
  name: 'sft',
  summary: 'supervised fine-tuning on {"prompt","completion"} JSONL; writes an HF model directory',
  usage: 'sft --model DIR --data F.jsonl --out DIR2 [--steps 200] [--lr 1e-3] [--warmup 10] [--batch-size 16] [--seed 0] [--weight-decay 0] [--max-grad-norm 1]',
  options: {
    model: { type: 'string' }, data: { type: 'string' }, out: { type: 'string' }, steps: { type: 'string' }, lr: { type: 'string' }, warmup: { type: 'string' },
    'batch-size': { type: 'string' }, seed: { type: 'string' }, 'weight-decay': { type: 'string' }, 'max-grad-norm': { type: 'string' }, ...runtimeOptions,
  },
  async run({ values }) {
    const log = createLogger();
    const steps = num(values, 'steps', 200, { int: true, min: 1 });
    await sftModelDir(str(values, 'model'), inputFile(values, 'data'), str(values, 'out'), {
      steps,
      lr: num(values, 'lr', 1e-3, { min: 0 }),
      warmup: num(values, 'warmup', 10, { int: true, min: 0 }),
      batchSize: num(values, 'batch-size', 16, { int: true, min: 1 }),
      seed: num(values, 'seed', 0, { int: true, min: 0 }),
      weightDecay: num(values, 'weight-decay', 0, { min: 0 }),
      maxGradNorm: num(values, 'max-grad-norm', 1, { min: 0 }),
      runtime: runtimeFrom(values),
      onStep: (s, loss, skipped) => {
        if (s === 1 || s % 25 === 0 || s === steps || skipped) log.info(`step ${s}/${steps} loss ${loss.toFixed(4)}${skipped ? ' (skipped: non-finite)' : ''}`);
      },
    }, (m) => log.info(m));
    await flushLogger(log);
  },
};
