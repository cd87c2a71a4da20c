// Experiment helper (not part of the CLI): the SFT loop of pipeline/recipes/sft.ts (same seeded
// shuffle, same warm-up-then-constant lr, same train-step graph) with a held-out evaluation every
// --every steps, so one run gives the whole learning curve. Because runSft's schedule does not
// depend on the total step count, the weights at step k here are those of `opd sft --steps k`.
//
//   node --import tsx examples/demo/curve.ts --model INIT_DIR --data F.jsonl --task-config JSON \
//     --steps 3000 --every 500 --lr 3e-3 --batch-size 32 [--seed 0] [--n 500] [--out DIR]

import { parseArgs } from 'node:util';
import { Rng } from '../../engine/rng.ts';
import { Trainer } from '../../engine/train/trainer.ts';
import { readAllJsonl } from '../../data/jsonl.ts';
import { createTask } from '../../data/tasks/registry.ts';
import { loadTokenizer } from '../../data/tokenizer/hf.ts';
import { evaluate } from '../../pipeline/eval.ts';
import { tokenizeSft } from '../../pipeline/recipes/sft.ts';
import { Generator } from '../../student/generate/generate.ts';
import { loadModelDir, saveModelDir } from '../../student/model/weights.ts';
import { buildSftTrainStep, packSftBatch, type SftExample } from '../../student/train/step.ts';

const { values: v } = parseArgs({
  options: {
    model: { type: 'string' }, data: { type: 'string' }, task: { type: 'string', default: 'arithmetic' }, 'task-config': { type: 'string', default: '{}' },
    steps: { type: 'string', default: '1000' }, every: { type: 'string', default: '250' }, lr: { type: 'string', default: '1e-3' }, warmup: { type: 'string', default: '10' },
    'batch-size': { type: 'string', default: '16' }, 'weight-decay': { type: 'string', default: '0' }, seed: { type: 'string', default: '0' }, n: { type: 'string', default: '500' }, out: { type: 'string' },
  },
});
const model = await loadModelDir(v.model!);
const tok = await loadTokenizer(v.model!);
const task = createTask(v.task!, JSON.parse(v['task-config']!));
const records = (await readAllJsonl(v.data!)).map((r) => ({ prompt: r.value.prompt as string, completion: r.value.completion as string, where: `${v.data}:${r.line}` }));
const examples = tokenizeSft(tok, records, model.config.maxPositionEmbeddings);
const [steps, every, lr, warmup, bs] = [v.steps, v.every, v.lr, v.warmup, v['batch-size']].map(Number) as [number, number, number, number, number];
const trainer = await Trainer.create(buildSftTrainStep(model.config, { weightDecay: Number(v['weight-decay']), adamw: { maxGradNorm: 1 } }), Object.fromEntries(model.weights));
const gen = await Generator.create(model.config, () => trainer.paramViews());
const rng = new Rng(Number(v.seed));
let order: number[] = [];
let lossSum = 0;
const t0 = performance.now();
let trainMs = 0;
for (let s = 1; s <= steps; s++) {
  const batch: SftExample[] = [];
  while (batch.length < bs) {
    if (order.length === 0) order = shuffled(examples.length, rng);
    batch.push(examples[order.pop()!]!);
  }
  const ts = performance.now();
  const r = await trainer.step(packSftBatch(batch, { padId: tok.padTokenId ?? 0 }), lr * Math.min(1, s / Math.max(1, warmup)));
  trainMs += performance.now() - ts;
  lossSum += r.loss;
  if (s % every === 0 || s === steps) {
    const e = await evaluate(gen, tok, task, { n: Number(v.n), seed: 0 });
    console.log(`step ${s} loss(avg last ${every}) ${(lossSum / every).toFixed(4)} test acc ${(100 * e.accuracy).toFixed(1)}% train-time ${(trainMs / 1000).toFixed(1)} s wall ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    lossSum = 0;
  }
}
if (v.out) {
  const p = trainer.params();
  await saveModelDir(v.out, { config: model.config, weights: new Map(Object.entries(p).map(([k, x]) => [k, x as Float32Array])) }, { tokenizerFrom: v.model! });
}
await gen.release();
await trainer.release();

function shuffled(n: number, r: Rng): number[] {
  const a = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = r.int(i + 1);
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}
