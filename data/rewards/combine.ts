// The reward registry and `combine`: a weighted sum of reward terms, built once before training.
//
//   combine([{ type: 'numeric_match', weight: 1 }, { type: 'length_penalty', weight: 1, target: 8 }])
//   combine([{ type: 'module', path: './my_reward.mjs', export: 'score', weight: 0.5 }])
//
// reward = Σ_i weight_i · r_i(prompt, completion, record). `combine` is async because `module` terms
// are imported up front: a missing export or a bad param fails at startup, not mid-run. Every term's
// value is checked to be a finite number; anything else throws naming the term and the record id, and so
// does an error a term throws.

import { BUILTIN_REWARDS } from './builtin.ts';
import { NonFiniteRewardError, type RewardContext, type RewardFactory, type RewardFn, type RewardTerm, type UserRewardFn } from './types.ts';
import { describeValue, loadUserReward } from './user.ts';

/**
 * What is wrong with the params of a `module` term, checked without importing it (the run config
 * does this while parsing): one message per key, [] when they are fine.
 */
export function moduleParamProblems(params: Record<string, unknown>): { key: string; message: string }[] {
  const out: { key: string; message: string }[] = [];
  const { path, export: name, ...rest } = params;
  if (path === undefined) out.push({ key: 'path', message: 'missing: a module term needs the file exporting the reward (prompt, completion, record) => number, e.g. "path": "rewards/mine.mjs"' });
  else if (typeof path !== 'string' || path === '') out.push({ key: 'path', message: `${describeValue(path)} is not a file path (a non-empty string, e.g. "rewards/mine.mjs")` });
  if (name !== undefined && (typeof name !== 'string' || name === '')) out.push({ key: 'export', message: `${describeValue(name)} is not an export name (a non-empty string; default "default")` });
  for (const k of Object.keys(rest)) out.push({ key: k, message: 'unknown key; a module term has type, weight, path and export' });
  return out;
}

/** `module`: a user function from a JS/TS file, {path, export="default"}. */
const moduleReward: RewardFactory = {
  description: 'module {path, export="default"}: a user function (prompt, completion, record) => number from a JS/TS file',
  create(params, ctx) {
    const problems = moduleParamProblems(params);
    if (problems.length) throw new Error(problems.map((p) => `reward module: ${p.key}: ${p.message}`).join('\n'));
    return loadUserReward(params.path as string, { exportName: params.export as string | undefined, baseDir: ctx.baseDir, timeoutMs: ctx.timeoutMs });
  },
};

export const REWARDS: Readonly<Record<string, RewardFactory>> = Object.freeze({ ...BUILTIN_REWARDS, module: moduleReward });

export function rewardTypes(): string[] {
  return Object.keys(REWARDS).sort();
}

interface BuiltTerm {
  label: string;
  weight: number;
  fn: UserRewardFn;
}

async function buildTerm(term: RewardTerm, index: number, ctx: RewardContext): Promise<BuiltTerm> {
  if (typeof term !== 'object' || term === null || typeof term.type !== 'string')
    throw new Error(`reward term ${index}: expected an object with a string "type", got ${describeValue(term)}`);
  const { type, weight = 1, ...params } = term;
  const factory = Object.hasOwn(REWARDS, type) ? REWARDS[type] : undefined;
  if (!factory) throw new Error(`reward term ${index}: unknown type "${type}"; known types: ${rewardTypes().join(', ')}`);
  if (typeof weight !== 'number' || !Number.isFinite(weight))
    throw new Error(`reward term ${index} (${type}): weight must be a finite number, got ${describeValue(weight)}`);
  return { label: `reward term ${index} (${type})`, weight, fn: await factory.create(params, ctx) };
}

/** Build the weighted sum of `terms`. */
export async function combine(terms: readonly RewardTerm[], ctx: RewardContext = {}): Promise<RewardFn> {
  if (!Array.isArray(terms) || terms.length === 0) throw new Error('reward: expected a non-empty list of reward terms');
  const built: BuiltTerm[] = [];
  for (const [i, t] of terms.entries()) built.push(await buildTerm(t, i, ctx));
  return async (prompt, completion, record) => {
    let total = 0;
    for (const t of built) {
      let v: unknown;
      try {
        v = await t.fn(prompt, completion, record);
      } catch (e) {
        // name the term (and the record) the error came from; the error keeps its class (a time limit, a skippable NaN)
        if (e instanceof Error && !e.message.startsWith(t.label)) e.message = `${t.label} failed for record ${record.id}: ${e.message}`;
        throw e;
      }
      if (typeof v !== 'number' || !Number.isFinite(v)) {
        const msg = `${t.label} returned ${describeValue(v)} for record ${record.id}; a reward must be a finite number`;
        throw typeof v === 'number' ? new NonFiniteRewardError(msg) : new Error(msg);
      }
      total += t.weight * v;
    }
    return total;
  };
}
