// `opd sft --model DIR --data F.jsonl --out DIR2`: supervised fine-tuning on TRL-style
// {"prompt", "completion"} records (loss on completion tokens only); writes an HF model directory.
// Conversational records (TRL conversational lists, or a "messages" column whose final assistant
// turn is the completion) in JSONL, Parquet or Arrow are rendered with the model's chat template
// (--chat-template auto|none|always, --chat-template-kwargs JSON); malformed records go to
// --rejects FILE (default <out>/rejects.jsonl) with their line/row and reason.

import { createLogger, flushLogger } from '../../log.ts';
import { sftModelDir } from '../../recipes/sft.ts';
import { chatFrom, chatOptions, inputFile, num, runtimeFrom, runtimeOptions, str } from '../args.ts';
import { type Command, UsageError, type Values } from '../command.ts';
import { LORA_TARGETS, type LoraSpec, type LoraTarget } from '../../../student/model/lora.ts';
import { TRAIN_STEP_KINDS, type TrainStepKind } from '../../../student/train/trainer.ts';

export const sft: Command = {
  name: 'sft',
  summary: 'supervised fine-tuning on {"prompt","completion"} or conversational records; writes an HF model directory',
  usage:
    'sft --model DIR --data F.jsonl --out DIR2 [--steps 200] [--lr 1e-3] [--warmup 10] [--batch-size 16] [--seed 0] [--weight-decay 0] [--max-grad-norm 1] [--train-step auto|fused|layered] [--lora-rank R [--lora-alpha 2R] [--lora-targets q_proj,k_proj,...]] [--chat-template auto|none|always] [--chat-template-kwargs JSON] [--rejects FILE]',
  options: {
    model: { type: 'string' }, data: { type: 'string' }, out: { type: 'string' }, steps: { type: 'string' }, lr: { type: 'string' }, warmup: { type: 'string' },
    'batch-size': { type: 'string' }, seed: { type: 'string' }, 'weight-decay': { type: 'string' }, 'max-grad-norm': { type: 'string' }, ...runtimeOptions,
    'train-step': { type: 'string' }, 'lora-rank': { type: 'string' }, 'lora-alpha': { type: 'string' }, 'lora-targets': { type: 'string' },
    rejects: { type: 'string' }, ...chatOptions,
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
      trainStep: trainStepFrom(values['train-step']),
      lora: loraFrom(values),
      chat: chatFrom(values),
      rejectsFile: str(values, 'rejects', null) ?? undefined,
      onStep: (s, loss, skipped) => {
        if (s === 1 || s % 25 === 0 || s === steps || skipped) log.info(`step ${s}/${steps} loss ${loss.toFixed(4)}${skipped ? ' (skipped: non-finite)' : ''}`);
      },
    }, (m) => log.info(m));
    await flushLogger(log);
  },
};

function trainStepFrom(v: unknown): TrainStepKind | undefined {
  if (v === undefined) return undefined;
  if (!TRAIN_STEP_KINDS.includes(v as TrainStepKind)) throw new UsageError(`--train-step must be one of ${TRAIN_STEP_KINDS.join(', ')}, got "${v}"`);
  return v as TrainStepKind;
}

/** --lora-rank R [--lora-alpha A] [--lora-targets a,b]: LoRA instead of full fine-tuning (alpha defaults to 2R). */
function loraFrom(values: Values): { spec: LoraSpec } | undefined {
  if (values['lora-rank'] === undefined) {
    for (const k of ['lora-alpha', 'lora-targets']) if (values[k] !== undefined) throw new UsageError(`--${k} needs --lora-rank`);
    return undefined;
  }
  const rank = num(values, 'lora-rank', 16, { int: true, min: 1 });
  const targets = typeof values['lora-targets'] === 'string' ? (values['lora-targets'] as string).split(',').map((t) => t.trim()) : [...LORA_TARGETS];
  for (const t of targets) if (!LORA_TARGETS.includes(t as LoraTarget)) throw new UsageError(`--lora-targets: unknown projection "${t}"; choose from ${LORA_TARGETS.join(', ')}`);
  return { spec: { rank, alpha: num(values, 'lora-alpha', 2 * rank, { min: 0 }), targets: targets as LoraTarget[] } };
}
