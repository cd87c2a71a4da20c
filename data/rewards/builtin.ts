// Built-in rewards: numeric_match, exact_match, regex_match, length_penalty. Each is a factory from
// validated params to a pure, synchronous (prompt, completion, record) → number.
//
// `scope` (numeric_match, exact_match, regex_match) chooses the text read: 'answer' is the part
// before the first end marker (extractAnswer: newline or "<|"), 'all' the whole completion.
// Deliberate simplifications: numbers are plain decimals ("-12", "3.5"); no thousands separators,
// exponents or fractions.

import { z } from 'zod';
import { extractAnswer } from '../tasks/answer.ts';
import { parseConfig } from '../tasks/config.ts';
import type { TaskRecord } from '../tasks/types.ts';
import type { RewardContext, RewardFactory } from './types.ts';

const scope = (d: 'answer' | 'all') => z.enum(['answer', 'all']).default(d);
const textOf = (completion: string, s: 'answer' | 'all') => (s === 'answer' ? extractAnswer(completion) : completion);

const NUMBER = /-?\d+(?:\.\d+)?/;

/** The first decimal number in `text`, or null when there is none. */
export function firstNumber(text: string): number | null {
  const m = NUMBER.exec(text);
  return m ? Number(m[0]) : null;
}

function expectedNumber(record: TaskRecord): number {
  const v = record.answer.trim() === '' ? NaN : Number(record.answer.trim());
  if (!Number.isFinite(v)) throw new Error(`numeric_match: record ${record.id}: expected answer ${JSON.stringify(record.answer)} is not a number`);
  return v;
}

/** 1 when the first number of the answer equals record.answer numerically (within `tolerance`), else 0. */
const numericMatch: RewardFactory = {
  description: 'numeric_match {scope="answer", tolerance=0}: 1 if the first number equals the answer numerically, else 0',
  create(params) {
    const p = parseConfig('reward numeric_match', z.strictObject({ scope: scope('answer'), tolerance: z.number().min(0).default(0) }), params);
    return (_prompt, completion, record) => {
      const expected = expectedNumber(record);
      const got = firstNumber(textOf(completion, p.scope));
      return got !== null && Math.abs(got - expected) <= p.tolerance ? 1 : 0;
    };
  },
};

/** 1 when the trimmed text equals the trimmed record.answer, else 0. */
const exactMatch: RewardFactory = {
  description: 'exact_match {scope="answer", caseSensitive=true}: 1 if the trimmed text equals the trimmed answer, else 0',
  create(params) {
    const p = parseConfig('reward exact_match', z.strictObject({ scope: scope('answer'), caseSensitive: z.boolean().default(true) }), params);
    const norm = (s: string) => (p.caseSensitive ? s.trim() : s.trim().toLowerCase());
    return (_prompt, completion, record) => (norm(textOf(completion, p.scope)) === norm(record.answer) ? 1 : 0);
  },
};

/** 1 when `pattern` matches the text, else 0. Flags g and y are refused (they make test() stateful). */
const regexMatch: RewardFactory = {
  description: 'regex_match {pattern, flags="", scope="all"}: 1 if the pattern matches, else 0',
  create(params) {
    const schema = z.strictObject({ pattern: z.string().min(1), flags: z.string().regex(/^[imsu]*$/, 'flags may only use i, m, s, u').default(''), scope: scope('all') });
    const p = parseConfig('reward regex_match', schema, params);
    let re: RegExp;
    try {
      re = new RegExp(p.pattern, p.flags);
    } catch (e) {
      throw new Error(`reward regex_match: invalid pattern ${JSON.stringify(p.pattern)}: ${(e as Error).message}`);
    }
    return (_prompt, completion) => (re.test(textOf(completion, p.scope)) ? 1 : 0);
  },
};

/**
 * −min(cap, perToken · max(0, tokens − target)): 0 up to `target` completion tokens, then `perToken`
 * less per extra token, never below −cap. Tokens are counted with ctx.tokenizer (no specials added),
 * or as UTF-8 bytes without one.
 */
const lengthPenalty: RewardFactory = {
  description: 'length_penalty {target, perToken=0.01, cap=Infinity}: -perToken per completion token beyond target, at most -cap',
  create(params, ctx: RewardContext) {
    const schema = z.strictObject({ target: z.int().min(0), perToken: z.number().min(0).default(0.01), cap: z.number().gt(0).default(Infinity) });
    const p = parseConfig('reward length_penalty', schema, params);
    const encoder = new TextEncoder();
    const tokens = (s: string) => (ctx.tokenizer ? ctx.tokenizer.encode(s, { addSpecialTokens: false }).length : encoder.encode(s).length);
    return (_prompt, completion) => {
      const over = Math.max(0, tokens(completion) - p.target);
      return over === 0 ? 0 : -Math.min(p.cap, p.perToken * over);
    };
  },
};

export const BUILTIN_REWARDS: Readonly<Record<string, RewardFactory>> = Object.freeze({
  numeric_match: numericMatch,
  exact_match: exactMatch,
  regex_match: regexMatch,
  length_penalty: lengthPenalty,
});

