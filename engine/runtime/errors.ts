// Errors raised by the runtime adapter, and the small helpers that make their messages useful:
// pulling the failing op/node/input out of ONNX Runtime's text, and "did you mean" suggestions.
//
// ORT's messages are free text; the patterns below are the ones 1.30 produces (node failures,
// bad input/output dims, missing feeds). Anything else is kept verbatim in the message.

/** Where in a session an error happened, as far as we or ORT can tell. */
export interface ErrorSite {
  /** The op type of the failing node, e.g. "Add". */
  op?: string;
  /** The failing node's name in the graph. */
  node?: string;
  input?: string;
  output?: string;
}

/** Any failure in loading or running a session. `session` is the session's name. */
export class RuntimeError extends Error {
  override name = 'RuntimeError';
  readonly op?: string;
  readonly node?: string;
  readonly input?: string;
  readonly output?: string;

  constructor(
    readonly session: string,
    message: string,
    site: ErrorSite = {},
    options?: { cause?: unknown },
  ) {
    super(`session "${session}": ${message}`, options);
    Object.assign(this, site);
  }
}

/** The requested device's execution provider cannot be used here; `hint` says what to install. */
export class DeviceUnavailableError extends RuntimeError {
  override name = 'DeviceUnavailableError';

  constructor(
    session: string,
    readonly device: string,
    readonly reason: string,
    readonly hint: string,
    options?: { cause?: unknown },
  ) {
    super(session, `device "${device}" is unavailable: ${reason}. ${hint} (opd never falls back to cpu silently; set device: 'cpu' to run there.)`, {}, options);
  }
}

/** Wrap an error thrown by ORT, naming the op/node/input/output if its message does. */
export function wrapOrtError(session: string, what: string, e: unknown): RuntimeError {
  const text = e instanceof Error ? e.message : String(e);
  const site = parseOrtSite(text);
  const where = site.op ? ` in ${site.op} node "${site.node ?? '?'}"` : '';
  return new RuntimeError(session, `${what} failed${where}: ${text.trim()}`, site, { cause: e });
}

/** The op, node, input or output an ORT error message mentions. */
export function parseOrtSite(text: string): ErrorSite {
  const site: ErrorSite = {};
  const node = /running (\S+) node\. Name:'([^']*)'/.exec(text);
  if (node) {
    site.op = node[1];
    site.node = node[2];
  }
  const dims = /for (input|output): (\S+)/.exec(text);
  if (dims) site[dims[1] as 'input' | 'output'] = dims[2];
  const missing = /input '([^']+)' is missing/.exec(text);
  if (missing) site.input = missing[1];
  return site;
}

/** " (did you mean "w"?)" for the closest of `candidates` to `name`, or "" if none is close. */
export function didYouMean(name: string, candidates: readonly string[]): string {
  let best = '';
  let bestD = Infinity;
  for (const c of candidates) {
    const d = editDistance(name.toLowerCase(), c.toLowerCase());
    if (d < bestD) [best, bestD] = [c, d];
  }
  // Far-off suggestions are noise; allow about a third of the name to differ.
  return bestD <= Math.max(2, Math.floor(name.length / 3)) ? ` (did you mean "${best}"?)` : '';
}

/** A name list for messages, cut after `max` entries so a 300-parameter graph stays readable. */
export function listNames(names: readonly string[], max = 20): string {
  const shown = names.slice(0, max).map((n) => `"${n}"`).join(', ');
  return names.length > max ? `${shown}, ... (${names.length - max} more)` : shown;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length]!;
}
