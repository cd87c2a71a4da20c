// The run config (STYLE.md 8): one typed, documented zod schema with defaults, validated once at
// startup, deep-frozen, and saved in the run directory (pipeline/rundir.ts writeFrozenConfig). The
// loop receives plain values taken from it; nothing below pipeline/ reads the config.
//
//   const raw = JSON.parse(readFileSync(file, 'utf8'));
//   const config = parseRunConfig(applyOverrides(raw, ['rollout.groupSize=8']), file);
//
// Sections live in pipeline/config/: sources.ts (run, student, teachers, routing, data, rewards),
// training.ts (rollout, algo, loss, train, runtime), rules.ts (cross-field rules), errors.ts (messages),
// overrides.ts (--set), doc.ts (the README table), introspect.ts (reading the schema back as data).
// Two fields are completed after validation, so the saved config says what actually ran: `rewards`
// (empty = the task's reward terms) and `routing.defaultTeacher` (the only teacher, when there is one).

import { readFileSync } from 'node:fs';
import { createTask } from '../data/tasks/registry.ts';
import type { BlendMode, BlendSpec } from './algo/blend.ts';
import type { TeacherRoutes } from './algo/routing.ts';
import type { PolicyLossOptions } from '../student/train/policy.ts';
import { docRows, markdownTable } from './config/doc.ts';
import { ConfigError, problemsOf } from './config/errors.ts';
import { applyOverrides as applyOverridesTo } from './config/overrides.ts';
import { checkRules } from './config/rules.ts';
import { type RunConfig, RunConfigShape } from './config/schema.ts';

export type { RunConfig, RunConfigInput } from './config/schema.ts';
export { ConfigError, type ConfigProblem } from './config/errors.ts';
export { BUILTIN_MODELS } from './config/sources.ts';
export { RULES } from './config/rules.ts';
export { docRows, type DocRow } from './config/doc.ts';

/** The whole run-config schema: every section with its defaults and docs, plus the cross-field rules. */
export const RunConfigSchema = RunConfigShape.superRefine((c, ctx) =>
  checkRules(c, (path, message) => ctx.addIssue({ code: 'custom', path: [...path], message })),
);

/**
 * Validate `input`, fill every default, complete `rewards` and `routing.defaultTeacher`, and deep-freeze.
 * Throws ConfigError with one "<source>: <path>: <problem>" line per failing field.
 */
export function parseRunConfig(input: unknown, source: string): Readonly<RunConfig> {
  const parsed = RunConfigSchema.safeParse(input);
  if (!parsed.success) throw new ConfigError(source, problemsOf(parsed.error.issues, RunConfigSchema, input));
  const c = structuredClone(parsed.data);
  if (c.rewards.length === 0 && 'task' in c.data) c.rewards = createTask(c.data.task, c.data.taskConfig).reward.map((t) => ({ weight: 1, ...t }));
  if (c.routing.defaultTeacher === undefined && c.teachers.length === 1) c.routing.defaultTeacher = c.teachers[0]!.id;
  return deepFreeze(c);
}

/** Read a JSON config file, apply `--set` overrides, and parse it. */
export function loadRunConfig(file: string, overrides: readonly string[] = []): Readonly<RunConfig> {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new ConfigError(file, [{ path: '', message: `cannot read a JSON config (${(e as Error).message})` }]);
  }
  return parseRunConfig(applyOverrides(raw, overrides), file);
}

/**
 * A copy of the raw config `raw` with CLI overrides applied: each is PATH=VALUE, e.g.
 * "rollout.groupSize=8", "teachers[0].url=http://h:8000"; VALUE is JSON when it parses, else a
 * string; `null` removes the field. A path the schema does not have throws ConfigError.
 */
export function applyOverrides(raw: unknown, overrides: readonly string[]): Record<string, unknown> {
  return applyOverridesTo(raw, overrides, RunConfigShape);
}

/** Markdown table of every config field: path, type, default, doc (for the README). */
export function configDoc(): string {
  return markdownTable(docRows(RunConfigShape));
}

/** Freeze `v` and everything reachable from it. */
export function deepFreeze<T>(v: T): Readonly<T> {
  if (typeof v === 'object' && v !== null && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const x of Object.values(v)) deepFreeze(x);
  }
  return v;
}

// ---- plain values for the code the config feeds ---------------------------------------------------

type BlendSection = RunConfig['algo']['blend'];

/** Config blend section → BlendSpec, one entry per mode, each keeping only the values its mode uses. */
const BLEND_SPECS: { readonly [M in BlendMode]: (b: BlendSection) => Extract<BlendSpec, { mode: M }> } = {
  additive: (b) => ({ mode: 'additive', rewardWeight: b.rewardWeight }),
  replace: () => ({ mode: 'replace' }),
  grpo: () => ({ mode: 'grpo' }),
  loss: (b) => ({ mode: 'loss', distillCoef: b.distillCoef! }),
  masked: (b) => ({ mode: 'masked', rewardWeight: b.rewardWeight, rewardThreshold: b.rewardThreshold! }),
};

/** The BlendSpec of pipeline/algo/blend.ts for this config. */
export function blendSpec(c: RunConfig): BlendSpec {
  return BLEND_SPECS[c.algo.blend.mode](c.algo.blend);
}

/** The TeacherRoutes of pipeline/algo/routing.ts. */
export function teacherRoutes(c: RunConfig): TeacherRoutes {
  return { byTag: c.routing.byTag, defaultTeacher: c.routing.defaultTeacher };
}

/** The PolicyLossOptions of student/train/policy.ts (the distillation term only in blend mode loss). */
export function policyLossOptions(c: RunConfig): PolicyLossOptions {
  const { type, clipLow, clipHigh, refKl } = c.loss;
  const b = c.algo.blend;
  return {
    type,
    clipLow,
    clipHigh,
    ...(refKl ? { refKl: { beta: refKl.beta, estimator: refKl.estimator } } : {}),
    ...(b.mode === 'loss' ? { distill: { coef: b.distillCoef!, estimator: b.distillEstimator } } : {}),
  };
}
