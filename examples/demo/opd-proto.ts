// Experiment helper (not part of the CLI): the GRPO-OPD loop of pipeline/recipes/opd.ts (runOpd)
// on a built-in task with a local teacher, with a held-out evaluation (pipeline/eval.ts) every
// --every steps, to check that the demo's student gains from on-policy learning in the time budget.
//
//   node --import tsx examples/demo/opd-proto.ts --student DIR --teacher DIR --task-config JSON \
//     [--steps 200] [--every 25] [--prompts 16] [--group 8] [--lr 1e-3] [--blend additive|replace|grpo] [--lambda 1] [--epochs 1] [--minibatches 1]

import { parseArgs } from 'node:util';
import { combine } from '../../data/rewards/index.ts';
import { createTask } from '../../data/tasks/registry.ts';
import { loadTokenizer } from '../../data/tokenizer/hf.ts';
import { evaluate, isCorrect } from '../../pipeline/eval.ts';
import { type OpdSettings, runOpd } from '../../pipeline/recipes/opd.ts';
import type { BlendSpec } from '../../pipeline/algo/blend.ts';
import { Generator } from '../../student/generate/generate.ts';
import { loadModelDir } from '../../student/model/weights.ts';
import { openTeacher } from '../../teacher/open.ts';

const { values: v } = parseArgs({
  options: {
    student: { type: 'string' }, teacher: { type: 'string' }, task: { type: 'string', default: 'arithmetic' }, 'task-config': { type: 'string', default: '{}' },
    steps: { type: 'string', default: '200' }, every: { type: 'string', default: '25' }, prompts: { type: 'string', default: '16' }, group: { type: 'string', default: '8' },
    lr: { type: 'string', default: '1e-3' }, blend: { type: 'string', default: 'additive' }, lambda: { type: 'string', default: '1' }, temperature: { type: 'string', default: '1' },
    n: { type: 'string', default: '500' }, seed: { type: 'string', default: '0' }, threads: { type: 'string' }, epochs: { type: 'string', default: '1' }, minibatches: { type: 'string', default: '1' },
  },
});
const task = createTask(v.task!, JSON.parse(v['task-config']!));
const [student, tok] = await Promise.all([loadModelDir(v.student!), loadTokenizer(v.student!)]);
const mode = v.blend!;
const teacher = mode === 'grpo' ? null : (await openTeacher({ kind: 'local', path: v.teacher! }, { threads: 1 })).teacher;
const blend: BlendSpec = mode === 'replace' ? { mode: 'replace' } : mode === 'grpo' ? { mode: 'grpo' } : { mode: 'additive', rewardWeight: 1 };
const threads = v.threads ? Number(v.threads) : undefined;
const settings: OpdSettings = {
  steps: Number(v.steps),
  promptsPerStep: Number(v.prompts),
  sampling: { groupSize: Number(v.group), maxNewTokens: 6, temperature: Number(v.temperature) },
  advantages: { groupMode: 'mean', eps: 1e-6, baseline: 0, blend, gamma: 0 },
  lambda: { kind: 'constant', lambda: Number(v.lambda) },
  loss: { type: 'ppo', clipLow: 0.2, clipHigh: 0.2 },
  aggregation: 'token_mean',
  maskTruncated: false,
  epochs: Number(v.epochs),
  minibatches: Number(v.minibatches),
  microBatches: 1,
  lr: Number(v.lr),
  warmupSteps: 5,
  weightDecay: 0,
  adamw: { beta1: 0.9, beta2: 0.999, eps: 1e-8, maxGradNorm: 1 },
  maxConsecutiveSkips: 3,
  seed: Number(v.seed),
  runtime: { threads },
};
const every = Number(v.every);
const evalOpts = { n: Number(v.n), seed: 0 };
const before = await evaluate(student, tok, task, evalOpts);
console.log(`step 0 test acc ${(100 * before.accuracy).toFixed(1)}%`);
let gen: Generator | null = null;
const t0 = performance.now();
let evalMs = 0;
let acc = { reward: 0, n: 0 };
const r = await runOpd(
  { student: { ...student, tokenizer: tok }, teacher, prompts: task.generate('train', 4000, 1), reward: await combine(task.reward), correct: (rec, c) => isCorrect(c, rec.answer), settings },
  {
    async onStep(rec, trainer) {
      acc.reward += rec.metrics.reward_mean ?? 0;
      acc.n++;
      if (rec.step % every !== 0) return;
      const te = performance.now();
      gen ??= await Generator.create(student.config, () => trainer.paramViews(), { threads });
      const e = await evaluate(gen, tok, task, evalOpts);
      evalMs += performance.now() - te;
      const m = rec.metrics;
      console.log(
        `step ${rec.step} test acc ${(100 * e.accuracy).toFixed(1)}% | train reward(avg) ${(acc.reward / acc.n).toFixed(3)} step_s ${m.step_s?.toFixed(3)} ` +
          `(gen ${m.generate_s?.toFixed(3)} teacher ${m.teacher_s?.toFixed(3)} train ${m.train_s?.toFixed(3)}) wall ${((performance.now() - t0 - evalMs) / 1000).toFixed(1)} s`,
      );
      if (process.env.SHOW) console.log('   ', e.samples.map((x) => `${x.prompt}${JSON.stringify(x.completion)}`).join('  '), JSON.stringify(Object.fromEntries(Object.entries(m).filter(([k]) => /kl|adv|len|empty|loss|grad|clip|ratio/.test(k)).map(([k, x]) => [k, +x.toFixed(3)]))));
      acc = { reward: 0, n: 0 };
    },
  },
);
if (gen) await (gen as Generator).release();
await r.close();
await teacher?.close();
