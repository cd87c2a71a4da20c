// The Teacher interface: score token sequences, one log-prob per completion token.
//
// Every backend (local model in a worker, HTTP server of the vLLM/SGLang kind) implements this, and
// nothing else in opd knows which one it talks to. A backend never returns a wrong score: a result
// with the wrong length, a token mismatch or a non-finite value is an error, never data.

export interface TeacherRequest {
  /** Prompt and completion token ids, in one sequence. */
  ids: readonly number[];
  /** Index of the first completion token (≥ 1); tokens from here on are scored. */
  start: number;
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

/** A score that must not be stored: the message names the request and what was wrong. */
export class TeacherScoreError extends Error {
  constructor(
    readonly request: number,
    detail: string,
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
  if (bad >= 0) throw new TeacherScoreError(index, `log-prob at completion position ${bad} is ${s.logprobs[bad]} (must be a finite number ≤ 0)`);
  if (topK) {
    if (s.topIds?.length !== n || s.topLogprobs?.length !== n) throw new TeacherScoreError(index, `expected top-${topK} rows for ${n} positions`);
    s.topLogprobs.forEach((row, t) => {
      if (row.some((x) => !Number.isFinite(x))) throw new TeacherScoreError(index, `non-finite top-k log-prob at position ${t}`);
    });
  }
}
