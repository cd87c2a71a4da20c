// Turning zod issues into config errors a user can act on: one line per failing field, naming it by
// its dotted path, saying what was there and what is allowed (every option of an enum, the range of a
// number, the known keys of an object, with the closest one suggested for a typo).
//
//   examples/x.json: algo.blend.mode: "additiv" is not one of additive | replace | grpo | loss | masked
//   examples/x.json: rollout.groupSiz: unknown key (did you mean "groupSize"?); keys of rollout: ...
//
// A plain union (data, student) whose branch can be told from the input reports that branch's
// problems; one that cannot says which keys or types would select a branch.

import type { z } from 'zod';
import { didYouMean } from '../../engine/runtime/errors.ts';
import { allowedText, branchesOf, formatPath, keysOf, kindOf, markersOf, pickBranch, type Schema, schemaAt, unwrap, valueAt } from './introspect.ts';

export interface ConfigProblem {
  /** Dotted path of the field ("" for the whole config), e.g. "teachers[0].url". */
  path: string;
  message: string;
  /** Where the value came from when not the error's own source, e.g. "--set rollout.groupSize=0". */
  source?: string;
}

/** An invalid run config or override; `message` holds one "<source>: <path>: <problem>" line per problem. */
export class ConfigError extends Error {
  override name = 'ConfigError';
  constructor(
    readonly source: string,
    readonly problems: readonly ConfigProblem[],
  ) {
    super(problems.map((p) => `${p.source ?? source}: ${p.path === '' ? '' : `${p.path}: `}${p.message}`).join('\n'));
  }
}

/**
 * `problems` with each one at or under a `--set` override's path attributed to that override (the
 * last one wins, as it does when applied); the others stay with the config file.
 */
export function attributeToOverrides(problems: readonly ConfigProblem[], overrides: readonly string[], pathOf: (override: string) => string | null): ConfigProblem[] {
  const under = (p: string, o: string) => p === o || p.startsWith(`${o}.`) || p.startsWith(`${o}[`);
  return problems.map((p) => {
    const o = overrides.findLast((x) => {
      const at = pathOf(x);
      return at !== null && under(p.path, at);
    });
    return o === undefined ? p : { ...p, source: `--set ${o}` };
  });
}

/** A value as it appears in a message: strings quoted, long values cut. */
export function show(v: unknown): string {
  if (v === undefined) return 'nothing';
  const text = JSON.stringify(v) ?? String(v);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

/** "unknown key (did you mean "x"?); keys of <where>: a, b, c" for `key` among `known`. */
export function unknownKey(key: string, known: readonly string[], where: string): string {
  return `unknown key${didYouMean(key, known)}; keys of ${where || 'the config'}: ${known.join(', ') || '(none)'}`;
}

type Issue = z.core.$ZodIssue;
type Path = readonly PropertyKey[];

/** The problems in `issues` from parsing `input` with `root`, in issue order. */
export function problemsOf(issues: readonly Issue[], root: Schema, input: unknown): ConfigProblem[] {
  return issues.flatMap((issue) => problemsOfIssue(issue, [], root, input));
}

function problemsOfIssue(issue: Issue, prefix: Path, root: Schema, input: unknown): ConfigProblem[] {
  const path = [...prefix, ...issue.path];
  const at = (p: Path, message: string): ConfigProblem => ({ path: formatPath(p), message });
  const value = valueAt(input, path);
  switch (issue.code) {
    case 'custom':
      return [at(path, issue.message)];
    case 'unrecognized_keys': {
      const s = schemaAt(root, path, input) ?? root;
      const known = keysOf(pickBranch(s, value) ?? s);
      return issue.keys.map((k) => at([...path, k], unknownKey(k, known, formatPath(path))));
    }
    case 'invalid_union': {
      if ('discriminator' in issue && issue.discriminator !== undefined) {
        const options = ((issue as { options?: unknown[] }).options ?? []).join(' | ');
        return [at(path, value === undefined ? `missing: expected one of ${options}` : `${show(value)} is not one of ${options}`)];
      }
      return unionProblems(issue, path, root, input);
    }
    default: {
      const s = schemaAt(root, path, input);
      const allowed = s ? allowedText(s) : issue.message;
      return [at(path, value === undefined ? `missing: expected ${allowed}` : `${show(value)} is not ${allowed}`)];
    }
  }
}

/** A plain union that failed: the chosen branch's problems, or what would select a branch. */
function unionProblems(issue: Extract<Issue, { code: 'invalid_union' }>, path: Path, root: Schema, input: unknown): ConfigProblem[] {
  const union = schemaAt(root, path, input);
  const value = valueAt(input, path);
  if (!union) return [{ path: formatPath(path), message: issue.message }];
  const branches = branchesOf(union);
  const chosen = pickBranch(union, value);
  const index = chosen ? branches.indexOf(chosen) : -1;
  if (index >= 0 && issue.errors[index]) return issue.errors[index]!.flatMap((i) => problemsOfIssue(i, path, root, input));
  const where = formatPath(path);
  const objectForms = branches.filter((b) => kindOf(b) === 'object');
  const isObject = typeof value === 'object' && value !== null && !Array.isArray(value);
  if (!isObject || objectForms.length !== branches.length)
    return [{ path: where, message: `${value === undefined ? 'missing: expected' : `${show(value)} is not`} ${allowedText(union)}` }];
  const markers = markersOf(union);
  const present = markers.map((m) => m.filter((k) => Object.hasOwn(value, k))).filter((m) => m.length > 0);
  const known = keysOf(union);
  const formsText = unwrap(union).doc ?? allowedText(union);
  const problems: ConfigProblem[] = [
    present.length > 1
      ? { path: where, message: `mixes the keys of ${present.length} forms (${present.map((m) => m.join(', ')).join(' / ')}); use one: ${formsText}` }
      : { path: where, message: `needs one of the keys ${markers.map((m) => m[0]).join(' | ')}: ${formsText}` },
  ];
  for (const k of Object.keys(value)) if (!known.includes(k)) problems.push({ path: formatPath([...path, k]), message: unknownKey(k, known, where) });
  return problems;
}
