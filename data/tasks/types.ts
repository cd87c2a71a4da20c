// The task contract: a named generator of verifiable problems plus how to reward and demonstrate them.
//
// A task is a registry entry (registry.ts), not a branch in the training loop. Every built-in task is
// pure and deterministic: `generate(split, n, seed)` returns the same records for the same arguments
// on every machine, and train/test membership is a hash of the problem (split.ts), so the two splits
// are disjoint for every seed by construction. File-based prompt sources (data/sources) produce the
// same `TaskRecord` shape, so rewards never care where a record came from.

import type { RewardTerm } from '../rewards/types.ts';
import type { ChatMessage } from '../tokenizer/types.ts';

export type Split = 'train' | 'test';

/** One prompt plus what its reward needs. */
export interface TaskRecord {
  /** Unique within a data set; named in every error about this record. */
  id: string;
  /**
   * The text the model is conditioned on (before any chat template). For a conversational record:
   * the last user turn's content, a plain rendering for logs and rewards; the model sees `messages`.
   */
  prompt: string;
  /**
   * The prompt conversation (system/user/... turns, never a final assistant turn) when the record came
   * from conversational data; absent for plain-string records. data/chat.ts renders it with the
   * student's chat template (encodePrompt).
   */
  messages?: ChatMessage[];
  /** The expected answer, exactly as the ideal completion spells it (see answer.ts). */
  answer: string;
  /** A coarse group for per-tag metrics (e.g. the operation). */
  tag?: string;
  /** Anything else a reward may read (operands, template, extra data-set columns). */
  meta?: Record<string, unknown>;
}

export interface Task {
  readonly name: string;
  /** The validated, defaulted, frozen config the task was built from (saved with the run). */
  readonly config: Readonly<Record<string, unknown>>;
  /** `n` records with distinct prompts from `split`, deterministic in `seed`. Throws if the split is too small. */
  generate(split: Split, n: number, seed: number): TaskRecord[];
  /** The reward this task is scored with, as data: pass it to `combine` (data/rewards). */
  readonly reward: readonly RewardTerm[];
  /** The ideal completion text for SFT: exactly `record.answer`; the tokenizer's EOS is appended after it. */
  demonstration(record: TaskRecord): string;
}

export interface TaskFactory {
  /** One line for `--help` listings. */
  readonly description: string;
  /** Validate `config` (unknown keys are errors), fill defaults, and build the task. */
  create(config?: unknown): Task;
}
