// Prompt-source contracts: options of a load, the reject record written to rejects.jsonl, and the
// result every reader (JSONL, Parquet, Arrow IPC) returns. See load.ts for the loading rules.

import type { TaskRecord } from '../tasks/types.ts';
import type { Tokenizer } from '../tokenizer/types.ts';
import type { PromptRenderOptions } from '../chat.ts';

/** Which column/key holds each TaskRecord field. */
export interface FieldMap {
  /** Default "prompt"; must hold a non-empty string. */
  prompt: string;
  /** Default "answer"; a string, or a number / bigint (stored as its decimal string). */
  answer: string;
  /** Default "tag"; an optional string. */
  tag: string;
  /** Default "id"; an optional string or integer. Missing → "<file name>:<line or row>". */
  id: string;
  /** Default "messages"; a conversation (list of {role, content}) used when the prompt field is absent (conversation.ts). */
  messages: string;
  /** Default "completion"; the reference reply, read only with SourceOptions.requireCompletion (SFT, scoring). */
  completion: string;
}

export type SourceFormat = 'jsonl' | 'parquet' | 'arrow';

export interface SourceOptions {
  /** Field names to read; unset ones keep their defaults. */
  fields?: Partial<FieldMap>;
  /** A record without an answer is a reject (default true); when false it gets answer "". */
  requireAnswer?: boolean;
  /** Loading fails when rejects / records read exceeds this, in [0, 1]. Default 0.01. */
  maxRejectFraction?: number;
  /** Where to write the rejects as JSON Lines (overwritten on every load, written even when empty). */
  rejectsFile?: string;
  /** Each record must carry a reference reply (completion field, or messages' final assistant turn); LoadResult.completions holds them. */
  requireCompletion?: boolean;
  /** How prompts are rendered for the model (data/chat.ts); prompt lengths in tokens are measured on the rendered prompt. */
  chat?: PromptRenderOptions;
  /** Longest allowed prompt: tokens when `tokenizer` is given (encodePrompt: tokenizer.encode(prompt) with BOS, or the rendered template), else UTF-8 bytes (of every turn's content for a conversation). */
  maxPromptLength?: number;
  tokenizer?: Tokenizer;
  /** What to do with a prompt over maxPromptLength: 'reject' (default; counts toward the threshold) or 'filter' (dropped and counted). Never sliced. */
  onTooLong?: 'reject' | 'filter';
  /** Override the format the file extension implies. */
  format?: SourceFormat;
  /** How messages name the file's setting, e.g. the config field "data.path" or the flag "--input"; default "prompt source". */
  name?: string;
  /** How messages name maxPromptLength, e.g. the config field "data.maxPromptTokens"; default "maxPromptLength". */
  limitName?: string;
  /**
   * The most prompt tokens the model can take (max_position_embeddings − maxNewTokens), with what it
   * is made of for the message; needs `tokenizer`. A record kept after maxPromptLength / onTooLong that
   * is longer stops the load with an error naming its line and id: it could never be generated from.
   */
  contextLimit?: { tokens: number; what: string };
}

/** One line of rejects.jsonl. JSONL rejects carry `line` (1-based); Parquet/Arrow rejects carry `row` (0-based). */
export interface Reject {
  source: string;
  line?: number;
  row?: number;
  reason: string;
  /** The offending text or record as JSON, cut to 200 characters. */
  text: string;
}

export interface LoadResult {
  source: string;
  records: TaskRecord[];
  /** With requireCompletion: the reference reply of each record (records[i]'s is completions[i]). */
  completions?: string[];
  rejects: Reject[];
  /** Prompts dropped as too long under onTooLong: 'filter'. */
  filteredTooLong: number;
  /** Records read (non-blank lines or rows), whatever became of them. */
  total: number;
  /** One line for the log: counts of loaded, rejected and filtered records. */
  summary: string;
}
