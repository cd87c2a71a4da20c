// The run's held-out evaluations (pipeline/job.ts runs them): a scorer that evaluates a model
// greedily on the held-out records and keeps its completions in <run>/eval/<name>.jsonl, the
// evaluation before training (student and a local teacher, kept in eval-before.json so a resumed run
// reports the same numbers), and the final numbers (the last step's evaluation when it has one).

import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { TaskRecord } from '../data/tasks/types.ts';
import { loadTokenizer } from '../data/tokenizer/hf.ts';
import { atomicWriteFile } from '../engine/io/atomic.ts';
import { loadModelDir } from '../student/model/weights.ts';
import type { RunConfig } from './config.ts';
import { type EvalModel, type EvalOptions, type EvalResult, type Scoring, evaluateRecords, samplesJsonl } from './eval.ts';
import { type RunDir, readMetrics } from './rundir.ts';
import { readEvalBefore, writeEvalBefore } from './startup.ts';

type Tok = Awaited<ReturnType<typeof loadTokenizer>>;
type Student = Awaited<ReturnType<typeof loadModelDir>>;
export type HeldOutScorer = (model: EvalModel, tok: Tok, name: string) => Promise<EvalResult>;

/** One held-out evaluation (greedy) of the run's held-out records, its completions kept in <run>/eval/<name>.jsonl. */
export function heldOutScorer(c: RunConfig, run: RunDir, scoring: Scoring, test: readonly TaskRecord[], chat: EvalOptions['chat']): HeldOutScorer {
  const opts = { seed: c.run.seed, maxNewTokens: c.rollout.maxNewTokens, keepSamples: Infinity, chat, runtime: { device: c.runtime.device, threads: c.runtime.threads } };
  /** Which model an evaluation decodes with, for its errors: a NaN logit must say it came from, e.g., the teacher's evaluation. */
  const whose = (name: string) => {
    const t = name.startsWith('teacher-') ? c.teachers.find((x) => x.id === name.slice(8)) : undefined;
    if (t) return `teacher ${t.id}${'path' in t ? ` (${t.path})` : ''}, held-out evaluation before training`;
    return name === 'before' ? 'the student, held-out evaluation before training' : name === 'after' ? 'the trained student, final held-out evaluation' : `the student, held-out evaluation ${name}`;
  };
  return async (model, tok, name) => {
    let r: EvalResult;
    try {
      r = await evaluateRecords(model, tok, test, scoring, opts);
    } catch (e) {
      if (e instanceof Error) e.message = `${whose(name)}: ${e.message}`;
      throw e;
    }
    await mkdir(run.eval, { recursive: true });
    await atomicWriteFile(join(run.eval, `${name}.jsonl`), Buffer.from(samplesJsonl(r.samples)));
    return r;
  };
}

/**
 * Held-out accuracy and reward (greedy) of the teacher(s') first local model and of the student
 * before training, computed once per run and kept in eval-before.json so a resumed run reports the
 * same numbers.
 */
export async function heldOutEval(c: RunConfig, score: HeldOutScorer, runDir: string, student: Student, tok: Tok, log: (m: string) => void, warn: (m: string) => void) {
  const file = join(runDir, 'eval-before.json');
  let before = readEvalBefore(file, warn); // null: none yet, or damaged by a kill (derived data: evaluated again)
  if (!before) {
    log('evaluating the student (and a local teacher) on the held-out prompts');
    const s = await score(student, tok, 'before');
    before = { student_before_accuracy: s.accuracy, student_before_reward: s.meanReward };
    const t = c.teachers.find((x) => x.kind === 'local' && !x.path.endsWith('.onnx'));
    if (t?.kind === 'local') {
      const [tm, ttok] = await Promise.all([loadModelDir(t.path), loadTokenizer(t.tokenizer ?? t.path)]);
      const r = await score(tm, ttok, `teacher-${t.id}`);
      Object.assign(before, { teacher_accuracy: r.accuracy, teacher_reward: r.meanReward });
    }
    await writeEvalBefore(file, before);
  }
  return {
    before,
    after: async (weights: Record<string, Float32Array | Float64Array>) => {
      const r = await score({ config: student.config, weights: new Map(Object.entries(weights) as Array<[string, Float32Array]>) }, tok, 'after');
      return { student_after_accuracy: r.accuracy, student_after_reward: r.meanReward };
    },
  };
}

/** The final held-out numbers: the last step's evaluation line when there is one, else evaluated now. */
export async function finalHeldOut(runDir: string, c: RunConfig, heldOut: Awaited<ReturnType<typeof heldOutEval>> | null, weights: Record<string, Float32Array | Float64Array>) {
  if (!heldOut) return {};
  const last = readMetrics(runDir).at(-1);
  if (last?.step === c.run.steps && typeof last.eval_accuracy === 'number')
    return { student_after_accuracy: last.eval_accuracy, student_after_reward: last.eval_reward as number };
  return heldOut.after(weights);
}
