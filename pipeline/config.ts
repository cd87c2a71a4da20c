// The run config (CONTRIBUTING.md, code style 8): one typed, documented zod schema with defaults, validated once at
// startup, deep-frozen, and saved in the run directory (pipeline/rundir.ts writeFrozenConfig). The
// loop receives plain values taken from it; nothing below pipeline/ reads the config.
//
//   const raw = JSON.parse(readFileSync(file, 'utf8'));
//   const config = parseRunConfig(applyOverrides(raw, ['rollout.groupSize=8']), file);
//
// Sections live in pipeline/config/: sources.ts (run, student, teachers, routing, data, rewards),
// training.ts (rollout, algo, loss, train, runtime), rules.ts (cross-field rules), errors.ts (messages),
// overrides.ts (--set), doc.ts (docs/config.md's tables), init.ts (`opd config --init`), jsonc.ts
// (comments in config files), paths.ts (input paths, resolved against the current directory),
// introspect.ts (reading the schema back as data).
// Two fields are completed after validation, so the saved config says what actually ran: `rewards`
// (empty = the task's reward terms) and `routing.defaultTeacher` (the only teacher, when there is one).

import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { REWARDS } from '../data/rewards/combine.ts';
import { createTask } from '../data/tasks/registry.ts';
import type { BlendMode, BlendSpec } from './algo/blend.ts';
import type { TeacherRoutes } from './algo/routing.ts';
import type { PolicyLossOptions } from '../student/train/policy.ts';
import { referenceMarkdown } from './config/doc.ts';
import { attributeToOverrides, ConfigError, problemsOf } from './config/errors.ts';
import { parseJsonc } from './config/jsonc.ts';
import { applyOverrides as applyOverridesTo } from './config/overrides.ts';
import { overridePathText } from './config/paths.ts';
import { checkRules } from './config/rules.ts';
import { type RunConfig, RunConfigShape } from './config/schema.ts';

export type { RunConfig, RunConfigInput } from './config/schema.ts';
export { ConfigError, type ConfigProblem } from './config/errors.ts';
export { BUILTIN_MODELS } from './config/sources.ts';
export { RULES } from './config/rules.ts';
export { docRows, type DocRow, unitOf } from './config/doc.ts';
export { checkInputPaths, inputPaths, type InputPath } from './config/paths.ts';

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

/**
 * Read a config file (JSON, `//` and `/* *\/` comments allowed: config/jsonc.ts), apply `--set`
 * overrides, and parse it. A problem in a value an override set is attributed to that override.
 */
export function loadRunConfig(file: string, overrides: readonly string[] = []): Readonly<RunConfig> {
  const raw = readConfigFile(file);
  try {
    return parseRunConfig(applyOverrides(raw, overrides), file);
  } catch (e) {
    if (!(e instanceof ConfigError) || e.source !== file) throw e;
    throw new ConfigError(file, attributeToOverrides(e.problems, overrides, overridePathText));
  }
}

/** The parsed JSONC of `file`; a missing file or bad JSON is a ConfigError saying where. */
function readConfigFile(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    const missing = (e as NodeJS.ErrnoException).code === 'ENOENT';
    throw new ConfigError(file, [{ path: '', message: missing ? `no such config file (resolved to ${resolve(file)})` : `cannot read the config (${(e as Error).message})` }]);
  }
  try {
    return parseJsonc(text);
  } catch (e) {
    throw new ConfigError(file, [{ path: '', message: `cannot read a JSON config (${withLineColumn((e as Error).message, text)})` }]);
  }
}

/** JSON.parse's "... at position N" with the line and column it means. */
function withLineColumn(message: string, text: string): string {
  const m = /at position (\d+)/.exec(message);
  if (!m) return message;
  const before = text.slice(0, Number(m[1]));
  const line = before.split('\n').length;
  return `${message} (line ${line}, column ${before.length - before.lastIndexOf('\n')})`;
}

/**
 * A copy of the raw config `raw` with CLI overrides applied: each is PATH=VALUE, e.g.
 * "rollout.groupSize=8", "teachers[0].url=http://h:8000"; VALUE is JSON when it parses, else a
 * string; `null` removes the field. A path the schema does not have throws ConfigError.
 */
export function applyOverrides(raw: unknown, overrides: readonly string[]): Record<string, unknown> {
  return applyOverridesTo(raw, overrides, RunConfigShape);
}

/** The config reference of docs/config.md: a table per section (field, type, default, unit, meaning) and the reward types. */
export function configDoc(): string {
  return referenceMarkdown(RunConfigShape, REWARDS);
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

/** The BlendSpec of pipeline/algo/blend.ts for this config (grpo's for objective sft_teacher: no teacher term). */
export function blendSpec(c: RunConfig): BlendSpec {
  if (c.algo.objective === 'sft_teacher') return { mode: 'grpo' };
  return BLEND_SPECS[c.algo.blend.mode](c.algo.blend);
}

/** The TeacherRoutes of pipeline/algo/routing.ts. */
export function teacherRoutes(c: RunConfig): TeacherRoutes {
  return { byTag: c.routing.byTag, defaultTeacher: c.routing.defaultTeacher };
}

/** The PolicyLossOptions of student/train/policy.ts (the distillation term only in blend mode loss). */
/** algo.blend.divergence as loss options: a top-k divergence, a full-vocabulary one, or none (sampled). */
function divergenceOf(b: RunConfig['algo']['blend']): Pick<NonNullable<PolicyLossOptions['distill']>, 'divergence' | 'full'> {
  const d = b.divergence;
  if (d === 'sampled') return {};
  if (d === 'full_fkl' || d === 'full_rkl' || d === 'full_jsd') return { full: { name: d, beta: b.jsdBeta } };
  return { divergence: { name: d, topK: b.topK, beta: b.jsdBeta } };
}

export function policyLossOptions(c: RunConfig): PolicyLossOptions {
  const { type, clipLow, clipHigh, refKl } = c.loss;
  const b = c.algo.blend;
  return {
    type,
    clipLow,
    clipHigh,
    ...(refKl ? { refKl: { beta: refKl.beta, estimator: refKl.estimator } } : {}),
    ...(b.mode === 'loss' && c.algo.objective !== 'sft_teacher' ? { distill: { coef: b.distillCoef!, estimator: b.distillEstimator, ...divergenceOf(b) } } : {}),
  };
}
