// Cross-field rules of the run config: checks no single field can make. One table entry per rule
// (CONTRIBUTING.md, code style 3); each reads the parsed config and reports problems at the dotted path a user must edit,
// saying what is wrong and what would fix it. They run only once every field is individually valid
// (zod skips refinements after a field error), so they can trust types and ranges.

import { resolve } from 'node:path';
import { moduleParamProblems, rewardTypes, REWARDS } from '../../data/rewards/combine.ts';
import { createTask } from '../../data/tasks/registry.ts';
import { GROUP_MODES } from '../algo/advantages.ts';
import type { BlendMode } from '../algo/blend.ts';
import { checkEstimatorUse, type KlEstimator } from '../algo/estimators.ts';
import type { RunConfig } from './schema.ts';

export type Report = (path: readonly (string | number)[], message: string) => void;

interface Rule {
  /** What the rule guards, for the docs. */
  about: string;
  check(c: RunConfig, report: Report): void;
}

/** What each blend mode reads beyond its mode: a new mode adds one entry (typed by BlendMode). */
const BLEND_NEEDS: { readonly [M in BlendMode]: { teacher: boolean; field?: 'distillCoef' | 'rewardThreshold' } } = {
  additive: { teacher: true },
  replace: { teacher: true },
  grpo: { teacher: false },
  loss: { teacher: true, field: 'distillCoef' },
  masked: { teacher: true, field: 'rewardThreshold' },
};

const meanFreeModes = () => Object.entries(GROUP_MODES).filter(([, e]) => !e.centred).map(([m]) => m);
const oneLine = (e: unknown) => (e instanceof Error ? e.message : String(e)).replace(/\s*\n\s*/g, '; ');
const rollouts = (c: RunConfig) => c.rollout.promptsPerStep * c.rollout.groupSize;
const teacherIds = (c: RunConfig) => [...new Set(c.teachers.map((t) => t.id))];

function estimatorProblem(estimator: KlEstimator): string | undefined {
  try {
    checkEstimatorUse(estimator, 'loss');
    return undefined;
  } catch (e) {
    return oneLine(e);
  }
}

export const RULES: readonly Rule[] = [
  {
    about: 'groupSize 1 only with a mean-free advantage mode',
    check(c, report) {
      const mode = c.algo.advantage.mode;
      if (c.rollout.groupSize === 1 && GROUP_MODES[mode].centred)
        report(['rollout', 'groupSize'], `1 rollout per prompt needs a mean-free advantage mode: algo.advantage.mode "${mode}" subtracts the group mean, so every advantage would be 0; use groupSize ≥ 2 or algo.advantage.mode ${meanFreeModes().join(' | ')}`);
    },
  },
  {
    about: 'blend modes get the fields they need (distillCoef > 0 for loss, rewardThreshold for masked)',
    check(c, report) {
      const b = c.algo.blend;
      const field = BLEND_NEEDS[b.mode].field;
      if (field === 'distillCoef' && !(b.distillCoef! > 0))
        report(['algo', 'blend', 'distillCoef'], `blend mode "loss" needs algo.blend.distillCoef > 0 (c, the weight of the distillation loss); got ${b.distillCoef ?? 'nothing'}`);
      if (field === 'rewardThreshold' && b.rewardThreshold === undefined)
        report(['algo', 'blend', 'rewardThreshold'], 'blend mode "masked" needs algo.blend.rewardThreshold: the teacher term applies only to rollouts whose reward is below it');
      const problem = b.mode === 'loss' ? estimatorProblem(b.distillEstimator) : undefined;
      if (problem) report(['algo', 'blend', 'distillEstimator'], problem);
    },
  },
  {
    about: 'a top-k divergence only in blend mode loss',
    check(c, report) {
      const b = c.algo.blend;
      if (b.divergence === 'sampled') return;
      if (b.mode !== 'loss')
        report(['algo', 'blend', 'divergence'], `divergence "${b.divergence}" is a distillation loss: it needs algo.blend.mode loss (with distillCoef > 0), but the mode is "${b.mode}"; set mode loss, or divergence sampled`);
    },
  },
  {
    about: 'a full-vocabulary divergence needs one local teacher with a model directory and a full (not LoRA) student',
    check(c, report) {
      const d = c.algo.blend.divergence;
      if (!d.startsWith('full_') || c.algo.blend.mode !== 'loss') return;
      const id = c.routing.defaultTeacher ?? c.teachers[0]?.id;
      const i = c.teachers.findIndex((t) => t.id === id);
      const t = c.teachers[i];
      const why = `divergence "${d}" recomputes the teacher's full distribution from its weights in the trainer's process`;
      if (t?.kind === 'http') report(['teachers', i, 'kind'], `${why}, but teacher "${t.id}" is an HTTP server; use a local teacher (kind local, path a Hugging Face model directory), or a topk_* divergence`);
      else if (t?.kind === 'local' && t.path.endsWith('.onnx')) report(['teachers', i, 'path'], `${why}, but teacher "${t.id}" is an ONNX file; give the Hugging Face model directory, or use a topk_* divergence`);
      if (Object.keys(c.routing.byTag).length > 0) report(['routing', 'byTag'], `${why}: one teacher (routing.defaultTeacher, else the first) distils every prompt; routing by tag is not supported with it`);
      if (typeof c.student === 'object' && 'lora' in c.student && c.student.lora) report(['student', 'lora'], `${why}: the LoRA trainer does not compute it; train the full student, or use a topk_* divergence`);
    },
  },
  {
    about: 'a teacher exists unless the blend mode is grpo; teacher ids are unique',
    check(c, report) {
      const mode = c.algo.blend.mode;
      if (BLEND_NEEDS[mode].teacher && c.teachers.length === 0)
        report(['teachers'], `blend mode "${mode}" scores rollouts with a teacher, but teachers is empty; define one, or use algo.blend.mode grpo (no teacher)`);
      c.teachers.forEach((t, i) => {
        if (c.teachers.findIndex((u) => u.id === t.id) < i) report(['teachers', i, 'id'], `"${t.id}" is already the id of another teacher; give each teacher its own id`);
      });
    },
  },
  {
    about: 'routing names only defined teachers; several teachers need a route',
    check(c, report) {
      const ids = teacherIds(c);
      const known = ids.length > 0 ? `teacher ids: ${ids.join(' | ')}` : 'no teachers are defined';
      for (const [tag, id] of Object.entries(c.routing.byTag))
        if (!ids.includes(id)) report(['routing', 'byTag', tag], `"${id}" is not a defined teacher; ${known}`);
      const d = c.routing.defaultTeacher;
      if (d !== undefined && !ids.includes(d)) report(['routing', 'defaultTeacher'], `"${d}" is not a defined teacher; ${known}`);
      if (BLEND_NEEDS[c.algo.blend.mode].teacher && ids.length > 1 && d === undefined && Object.keys(c.routing.byTag).length === 0)
        report(['routing', 'defaultTeacher'], `${ids.length} teachers are defined but none is routed to: set routing.defaultTeacher and/or routing.byTag (tag → one of ${ids.join(' | ')})`);
    },
  },
  {
    about: 'the reference-KL estimator may be used as a loss',
    check(c, report) {
      const problem = c.loss.refKl ? estimatorProblem(c.loss.refKl.estimator) : undefined;
      if (problem) report(['loss', 'refKl', 'estimator'], problem);
    },
  },
  {
    about: 'Dr. GRPO normaliser covers the generation limit',
    check(c, report) {
      const L = c.loss.maxCompletionLen;
      if (L !== undefined && L < c.rollout.maxNewTokens)
        report(['loss', 'maxCompletionLen'], `${L} is shorter than rollout.maxNewTokens = ${c.rollout.maxNewTokens}: a full-length rollout would exceed the normaliser; use ≥ ${c.rollout.maxNewTokens} or leave it unset`);
    },
  },
  {
    about: 'λ warm-up fits in the run',
    check(c, report) {
      const w = c.algo.lambdaSchedule.warmupSteps;
      if (w > c.run.steps) report(['algo', 'lambdaSchedule', 'warmupSteps'], `${w} warm-up steps is more than run.steps = ${c.run.steps}; use 0..${c.run.steps}`);
    },
  },
  {
    about: 'minibatches split a step evenly; micro-batches fit in a minibatch',
    check(c, report) {
      const B = rollouts(c);
      const m = c.train.minibatches;
      if (B % m !== 0)
        report(['train', 'minibatches'], `${m} does not divide the ${B} rollouts of a step (promptsPerStep ${c.rollout.promptsPerStep} × groupSize ${c.rollout.groupSize}); use a divisor of ${B}`);
      const per = Math.floor(B / m);
      const mb = c.train.microBatchSize;
      if (B % m === 0 && mb !== undefined && mb > per) report(['train', 'microBatchSize'], `${mb} is more than the ${per} rollouts of a minibatch; use 1..${per}`);
    },
  },
  {
    about: 'greedy sampling gives grpo no signal',
    check(c, report) {
      if (c.algo.blend.mode === 'grpo' && c.rollout.temperature === 0 && c.rollout.groupSize > 1 && GROUP_MODES[c.algo.advantage.mode].centred)
        report(['rollout', 'temperature'], `0 (greedy) makes the ${c.rollout.groupSize} rollouts of a group identical, so every grpo advantage is 0; sample with temperature > 0`);
    },
  },
  {
    about: 'task data: the task accepts its config, the test split holds an evaluation, the train split a step',
    check(c, report) {
      if (!('task' in c.data)) return;
      try {
        createTask(c.data.task, c.data.taskConfig);
      } catch (e) {
        report(['data', 'taskConfig'], oneLine(e));
      }
      if (c.run.evalPrompts > c.data.testSize) report(['run', 'evalPrompts'], `${c.run.evalPrompts} is more than data.testSize = ${c.data.testSize} test prompts; lower it or raise data.testSize`);
      const n = c.data.trainSize;
      if (n !== undefined && n < c.rollout.promptsPerStep) report(['data', 'trainSize'], `${n} train prompts cannot fill a step of rollout.promptsPerStep = ${c.rollout.promptsPerStep}`);
    },
  },
  {
    about: 'file data: the held-out file is not the train file',
    check(c, report) {
      if ('path' in c.data && typeof c.data.test === 'string' && resolve(c.data.test) === resolve(c.data.path))
        report(['data', 'test'], `"${c.data.test}" is the train file data.path: held-out prompts must never be trained on; give a separate file or a fraction, e.g. 0.1`);
    },
  },
  {
    about: 'rewards: a prompt file needs some; built-in terms accept their params',
    check(c, report) {
      if (c.rewards.length === 0 && !('task' in c.data))
        report(['rewards'], `a prompt file has no task to take a reward from: list at least one term, e.g. [{"type": "numeric_match"}]; types: ${rewardTypes().join(' | ')}`);
      c.rewards.forEach((term, i) => {
        const { type, weight: _w, ...params } = term;
        // a module is imported at startup by combine(), not while parsing: only its params are checked here
        if (type === 'module') return moduleParamProblems(params).forEach((p) => report(['rewards', i, p.key], p.message));
        try {
          const built = REWARDS[type]!.create(params, {});
          if (built instanceof Promise) built.catch(() => {});
        } catch (e) {
          report(['rewards', i], oneLine(e));
        }
      });
    },
  },
];

/** Run every rule, reporting through `report`. */
export function checkRules(c: RunConfig, report: Report): void {
  for (const rule of RULES) rule.check(c, report);
}
