// `opd sft --model DIR --data F.jsonl --out DIR2`: supervised fine-tuning on TRL-style
// {"prompt", "completion"} lines (loss on completion tokens only); writes an HF model directory.

import { readAllJsonl } from '../../../data/jsonl.ts';
import { loadTokenizer } from '../../../data/tokenizer/hf.ts';
import { loadModelDir, saveModelDir } from '../../../student/model/weights.ts';
import { createLogger, flushLogger } from '../../log.ts';
import { runSft, tokenizeSft } from '../../recipes/sft.ts';
import { num, runtimeFrom, runtimeOptions, str } from '../args.ts';
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
    const dir = str(values, 'model');
    const data = str(values, 'data');
    const out = str(values, 'out');
    const [model, tok] = await Promise.all([loadModelDir(dir), loadTokenizer(dir)]);
    const records = (await readAllJsonl(data)).map((r) => {
      const { prompt, completion } = r.value;
      if (typeof prompt !== 'string' || typeof completion !== 'string')
        throw new Error(`${data}:${r.line}: expected {"prompt": string, "completion": string}, got keys ${JSON.stringify(Object.keys(r.value))}`);
      return { prompt, completion, where: `${data}:${r.line}` };
    });
    const examples = tokenizeSft(tok, records, model.config.maxPositionEmbeddings);
    const steps = num(values, 'steps', 200, { int: true, min: 1 });
    log.info(`sft: ${examples.length} examples, ${steps} steps, model ${dir}`);
    const t0 = performance.now();
    const { weights, losses } = await runSft(model, examples, tok.padTokenId ?? 0, {
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
    });
    await saveModelDir(out, { config: model.config, weights }, { tokenizerFrom: dir });
    log.info(`saved ${out} (final loss ${losses.at(-1)!.toFixed(4)}, ${((performance.now() - t0) / 1000).toFixed(1)} s)`);
    await flushLogger(log);
  },
};
