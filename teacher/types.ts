// The Teacher interface: score token sequences, one log-prob per completion token.
//
// Every backend (local model in a worker, HTTP server of the vLLM/SGLang kind) implements this, and
// nothing else in opd knows which one it talks to. A backend never returns a wrong score: a result
// with the wrong length, a token mismatch or a non-finite value is an error, never data.

import type { ChatMessage } from '../data/tokenizer/types.ts';

export interface TeacherRequest {
  /** Prompt and completion token ids, in one sequence. */
  ids: readonly number[];
  /** Index of the first completion token (≥ 1); tokens from here on are scored. */
  start: number;
  /** What a teacher with another tokenizer or template needs (teacher/aligned.ts); backends ignore it. */
  context?: TeacherContext;
}

export interface TeacherContext {
  /** The plain prompt text (the record's prompt). */
  prompt: string;
  /** The prompt as a conversation, when the record has one: the teacher renders it with its own template. */
  messages?: readonly ChatMessage[];
  /** The sampler's log-prob of each completion token, as the rollout stores them. */
  samplerLogprobs: readonly number[];
}

export interface TeacherScore {
  /** log π_T(ids[t] | ids[<t]) for t = start .. len−1 (temperature as configured). */
  logprobs: number[];
  /** Per scored position, the teacher's k most likely ids and their log-probs (when asked). */
  topIds?: number[][];
  topLogprobs?: number[][];
}

export interface TeacherIdentity {
  /** A stable name of the model (directory path hash, served model id, ...). */
  modelId: string;
  /** Fingerprint of the tokenizer's token→id map (data/tokenizer fingerprint()). */
  tokenizerFingerprint: string;
  /** Size of the teacher's output distribution (its vocabulary, possibly padded). */
  vocabSize: number;
}

export interface Teacher {
  readonly identity: TeacherIdentity;
  score(reqs: readonly TeacherRequest[], opts?: { topK?: number }): Promise<TeacherScore[]>;
  close(): Promise<void>;
}

/**
 * A score that must not be stored: the message names the request and what was wrong. `nonFinite`
 * marks a NaN/±Inf value (numerical trouble in the teacher: the loop skips the step, R7); any other
 * fault (wrong length, token mismatch, positive log-prob) is a broken teacher and stops the job.
 */
export class TeacherScoreError extends Error {
  constructor(
    readonly request: number,
    detail: string,
    readonly nonFinite = false,
  ) {
    super(`teacher score for request ${request}: ${detail}`);
    this.name = 'TeacherScoreError';
  }
}

/** Check a score against its request before anyone stores it. */
export function validateScore(req: TeacherRequest, s: TeacherScore, index: number, topK = 0): void {
  const n = req.ids.length - req.start;
  if (s.logprobs.length !== n) throw new TeacherScoreError(index, `expected ${n} log-probs, got ${s.logprobs.length}`);
  const bad = s.logprobs.findIndex((x) => typeof x !== 'number' || !Number.isFinite(x) || x > 1e-4);
  if (bad >= 0) throw new TeacherScoreError(index, `log-prob at completion position ${bad} is ${s.logprobs[bad]} (must be a finite number ≤ 0)`, isNonFiniteValue(s.logprobs[bad]));
  if (topK) {
    if (s.topIds?.length !== n || s.topLogprobs?.length !== n) throw new TeacherScoreError(index, `expected top-${topK} rows for ${n} positions`);
    s.topLogprobs.forEach((row, t) => {
      if (row.some((x) => !Number.isFinite(x))) throw new TeacherScoreError(index, `non-finite top-k log-prob at position ${t}`, true);
    });
  }
}

/**
 * Whether a log-prob as received is NaN or ±Inf: the number itself, the bare NaN/Infinity Python's
 * json writes (read as strings, teacher/http-client.ts), or null in a position that must hold a
 * value (what orjson writes for NaN).
 */
export function isNonFiniteValue(x: unknown): boolean {
  return (typeof x === 'number' && !Number.isFinite(x)) || x === null || x === 'NaN' || x === 'Infinity' || x === '-Infinity';
}
