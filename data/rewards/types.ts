// Reward contracts. A reward reads one completion of one record and returns a finite number; the
// trainer only ever sees the combined `RewardFn` that `combine` (combine.ts) builds from a list of
// `RewardTerm`s — plain data, so a task or a config file can name its reward without code.
//
// `completion` is the generated text decoded with special tokens skipped (the EOS that ended it is
// not part of it); rewards that read an answer use `extractAnswer` (data/tasks/answer.ts).

import type { Tokenizer } from '../tokenizer/types.ts';
import type { TaskRecord } from '../tasks/types.ts';

/**
 * A reward that came out NaN or ±Inf: numerical trouble, not a broken reward, so the loop skips the
 * step and counts it (docs/reliability.md R7). A result that is not a number at all, or a throw, is
 * a plain Error and stops the job.
 */
export class NonFiniteRewardError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NonFiniteRewardError';
  }
}

/** What the trainer calls: always async, always a finite number (anything else throws). */
export type RewardFn = (prompt: string, completion: string, record: TaskRecord) => Promise<number>;

/** What a built-in or a user module provides: may be sync or async. */
export type UserRewardFn = (prompt: string, completion: string, record: TaskRecord) => number | Promise<number>;

/** One weighted term of a combined reward: `type` names a registry entry, other keys are its params. */
export interface RewardTerm {
  type: string;
  /** Multiplies this term's value; default 1. May be negative. */
  weight?: number;
  [param: string]: unknown;
}

/** What building a reward may need besides its params. */
export interface RewardContext {
  /** Counts tokens for length_penalty; without it a UTF-8 byte is a token (exact for the byte tokenizer). */
  tokenizer?: Tokenizer;
  /** Directory relative `module` paths resolve against (default: the current directory). */
  baseDir?: string;
  /** Per-call time limit of `module` terms in ms (default 30000; data/rewards/user.ts). */
  timeoutMs?: number;
}

export interface RewardFactory {
  /** One line: what it returns and its params. */
  readonly description: string;
  /** Validate `params` (unknown keys are errors) and build the reward. */
  create(params: Record<string, unknown>, ctx: RewardContext): UserRewardFn | Promise<UserRewardFn>;
}
