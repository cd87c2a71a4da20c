// Typed errors for reading and writing a Hugging Face model directory (weights.ts). A wrong or
// truncated model must fail at start with one error that names the directory, the file, the tensor,
// what was expected, what was found and how to fix it (docs/reliability.md R10) -- never a shape error deep
// inside a graph. Config problems stay ConfigError (config.ts); safetensors byte-level problems are
// wrapped here so a caller catches one type per failure stage.

export type ModelLoadFault =
  | 'config' // config.json missing or not JSON
  | 'no-weights' // no safetensors file found
  | 'safetensors' // a file is corrupt or truncated (the SafetensorsError is the cause)
  | 'duplicate-tensor' // the same tensor in two files
  | 'missing-tensor'
  | 'extra-tensor'
  | 'tied-lm-head' // lm_head.weight present, embeddings tied, and the two differ
  | 'vocab' // embedding / lm_head rows disagree with config vocab_size
  | 'shape'
  | 'dtype'
  | 'non-finite';

export interface ModelLoadErrorFields {
  reason: ModelLoadFault;
  dir: string;
  /** The file at fault, or null when no single file is. */
  file: string | null;
  tensor: string | null;
  /** What the config implies (e.g. "[896, 896]", "F32/F16/BF16"), when there is one. */
  expected: string | null;
  /** What the files hold, when there is one. */
  actual: string | null;
  detail: string;
  /** How to fix it; '' when `detail` already says (a wrapped SafetensorsError). */
  hint: string;
  cause?: unknown;
}

export class ModelLoadError extends Error {
  override name = 'ModelLoadError';
  readonly reason: ModelLoadFault;
  readonly dir: string;
  readonly file: string | null;
  readonly tensor: string | null;
  readonly expected: string | null;
  readonly actual: string | null;

  constructor(f: ModelLoadErrorFields) {
    const where = f.file ?? f.dir;
    const what = f.tensor === null ? '' : `tensor '${f.tensor}': `;
    const diff = f.expected === null && f.actual === null ? '' : ` (expected ${f.expected ?? '?'}, got ${f.actual ?? '?'})`;
    super(`${where}: ${what}${f.detail}${diff}${f.hint === '' ? '' : `; ${f.hint}`}`, f.cause === undefined ? undefined : { cause: f.cause });
    this.reason = f.reason;
    this.dir = f.dir;
    this.file = f.file;
    this.tensor = f.tensor;
    this.expected = f.expected;
    this.actual = f.actual;
  }
}

/** Refusal to write a model directory whose weights do not match its config (a caller bug). */
export class ModelSaveError extends Error {
  override name = 'ModelSaveError';
  constructor(
    readonly dir: string,
    readonly tensor: string | null,
    detail: string,
  ) {
    super(`${dir}: ${tensor === null ? '' : `tensor '${tensor}': `}${detail}`);
  }
}
