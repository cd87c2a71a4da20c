// The retrying JSON client under the HTTP teacher (teacher/http.ts): one server base URL, GET or POST
// of a JSON body, the parsed JSON answer back. Knows nothing of log-probs or wire formats
// (teacher/wire-formats.ts).
//
// Contracts (docs/reliability.md R15): timeouts (per attempt, headers and body), refused/reset
// connections, cut-off or unparseable bodies, 429 and 5xx are retried with exponential backoff and
// full jitter — attempt a waits U(0, min(cap, base·2^(a−1))) — or the server's Retry-After /
// retry-after-ms, capped; other 4xx fail at once with the server's message (HttpTeacherError with
// its status). The final error names `where` and the number of attempts; a body that stays
// unparseable for a scoring request is an HttpScoreError (a bad score, not a transport failure).
// An aborted signal ends a call at once with the signal's reason, also while it waits to retry.
// Bare NaN/Infinity in an answer (Python's json writes them) are read as strings, so they fail
// later as values instead of as a cut-off body.

import { TeacherScoreError } from './types.ts';

/** A failure that is not a bad score: refused connection after retries, 4xx, closed teacher. */
export class HttpTeacherError extends Error {
  constructor(
    message: string,
    readonly status?: number,
  ) {
    super(message);
    this.name = 'HttpTeacherError';
  }
}

/** A TeacherScoreError whose message starts with "<url><path> request <i>:". */
export class HttpScoreError extends TeacherScoreError {
  constructor(where: string, request: number, detail: string, nonFinite = false) {
    super(request, detail, nonFinite);
    this.message = `${where}: ${detail}`;
  }
}

export type Json = Record<string, unknown>;
export const obj = (x: unknown): Json | null => (typeof x === 'object' && x !== null && !Array.isArray(x) ? (x as Json) : null);

export interface HttpClientOptions {
  /** Sent as "Authorization: Bearer <apiKey>". */
  apiKey?: string;
  /** Per attempt, headers and body, in ms. */
  timeoutMs: number;
  /** Retries after the first attempt. */
  retries: number;
  /** Backoff base in ms. */
  backoffMs: number;
  /** Backoff cap in ms, also the longest Retry-After honoured. */
  backoffCapMs: number;
  /** Called before each retry, e.g. with the logger's warn. */
  log?: (message: string) => void;
}

/** `url` without a trailing slash or /v1: the base every path is appended to. Only http(s). */
export function serverBase(url: string): string {
  const u = new URL(url);
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error(`http teacher: url must be http(s), got ${url}`);
  return `${u.origin}${u.pathname.replace(/\/+$/, '').replace(/\/v1$/, '')}`;
}

export class HttpClient {
  constructor(
    /** Server base URL, as serverBase() gives it. */
    readonly base: string,
    private readonly o: HttpClientOptions,
  ) {}

  /**
   * `path` on the server (GET without a body, else POST of `body` as JSON) with retries; the final
   * error names `where` and the number of attempts. `request`: the index of the scoring request
   * this call is for, so a body that stays unreadable is reported as a bad score.
   */
  async call(path: string, body: Json | undefined, signal: AbortSignal, where: string, request?: number): Promise<unknown> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.once(path, body, signal);
      } catch (e) {
        if (e instanceof Refused) throw new HttpTeacherError(`${where}: ${e.message}`, e.status);
        if (!(e instanceof Fault) || signal.aborted) throw signal.aborted ? signal.reason : e;
        if (attempt > this.o.retries) {
          const detail = `${e.message}; gave up after ${attempt} attempt${attempt > 1 ? 's' : ''}`;
          throw e.badBody && request !== undefined ? new HttpScoreError(where, request, detail) : new HttpTeacherError(`${where}: ${detail}`);
        }
        const cap = this.o.backoffCapMs;
        const wait = e.retryAfterMs !== undefined ? Math.min(e.retryAfterMs, cap) : Math.random() * Math.min(cap, this.o.backoffMs * 2 ** (attempt - 1));
        this.o.log?.(`${where}: ${e.message}; retry ${attempt}/${this.o.retries} in ${Math.round(wait)} ms`);
        await sleep(wait, signal);
      }
    }
  }

  /** One attempt: the parsed JSON answer, a Fault (retryable), Refused (4xx) or the abort reason. */
  private async once(path: string, body: Json | undefined, signal: AbortSignal): Promise<unknown> {
    const timer = new AbortController();
    const t = setTimeout(() => timer.abort(new Fault(`no answer within ${this.o.timeoutMs} ms`)), this.o.timeoutMs);
    const sig = AbortSignal.any([signal, timer.signal]);
    const headers: Record<string, string> = { accept: 'application/json' };
    if (body) headers['content-type'] = 'application/json';
    if (this.o.apiKey) headers.authorization = `Bearer ${this.o.apiKey}`;
    try {
      const res = await fetch(this.base + path, { method: body ? 'POST' : 'GET', headers, body: body && JSON.stringify(body), signal: sig });
      const text = await res.text();
      if (res.status === 429 || res.status >= 500) throw new Fault(`HTTP ${res.status}: ${serverMessage(text)}`, retryAfterMs(res.headers));
      if (!res.ok) throw new Refused(res.status, `HTTP ${res.status}, not retried: ${serverMessage(text)}`);
      return parseJson(text);
    } catch (e) {
      if (e instanceof Fault || e instanceof Refused) throw e;
      if (sig.aborted) throw sig.reason; // our timeout (a Fault), or the batch/teacher abort (final)
      throw new Fault(transportMessage(e));
    } finally {
      clearTimeout(t);
    }
  }
}

/** A 4xx other than 429 from one attempt: not retried. */
class Refused extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** Retryable: transport faults, 429, 5xx, bodies that are not JSON. */
class Fault extends Error {
  constructor(
    message: string,
    readonly retryAfterMs?: number,
    readonly badBody = false,
  ) {
    super(message);
  }
}

/** JSON.parse that also reads the bare NaN/Infinity Python's json writes (as strings, so they fail later as values). */
function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    try {
      return JSON.parse(text.replace(/"(?:[^"\\]|\\.)*"|-?(?:NaN|Infinity)/g, (m) => (m[0] === '"' ? m : `"${m}"`)));
    } catch {
      throw new Fault(`the answer is not valid JSON (cut off?): ${(e as Error).message}`, undefined, true);
    }
  }
}

/** The server's own error message: {"error": {"message"}}, {"message"}, {"detail"} or the text. */
function serverMessage(text: string): string {
  let msg: unknown = text;
  try {
    const b = obj(JSON.parse(text));
    msg = obj(b?.error)?.message ?? b?.error ?? b?.message ?? b?.detail ?? text;
  } catch {
    // not JSON: the text itself
  }
  const s = typeof msg === 'string' ? msg : JSON.stringify(msg);
  return s.length > 500 ? `${s.slice(0, 500)}…` : s || '(empty body)';
}

/** Retry-After (seconds or an HTTP date) or retry-after-ms, in ms; undefined when absent or unreadable. */
function retryAfterMs(h: Headers): number | undefined {
  const ms = Number(h.get('retry-after-ms') ?? NaN);
  if (ms >= 0) return ms;
  const v = h.get('retry-after');
  if (v === null) return undefined;
  if (/^\s*\d+(\.\d+)?\s*$/.test(v)) return Number(v) * 1000;
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}

/** "connection refused (ECONNREFUSED)" and the like, from fetch's error and its causes. */
function transportMessage(e: unknown): string {
  let code: string | undefined;
  type Cause = { code?: unknown; cause?: unknown; errors?: unknown[] } | undefined;
  for (let c = e as Cause, depth = 0; c && depth < 4 && !code; c = (c.cause ?? c.errors?.[0]) as Cause, depth++) code = typeof c.code === 'string' ? c.code : undefined;
  const known: Record<string, string> = {
    ECONNREFUSED: 'connection refused (ECONNREFUSED): is the server running at this address?',
    ECONNRESET: 'connection reset by the server (ECONNRESET)',
    UND_ERR_SOCKET: 'the server closed the connection before the answer was complete (UND_ERR_SOCKET)',
    ENOTFOUND: 'host not found (ENOTFOUND)',
  };
  return (code && known[code]) ?? `${(e as Error).message ?? String(e)}${code ? ` (${code})` : ''}`;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const t = setTimeout(() => (signal.removeEventListener('abort', stop), resolve()), ms);
    const stop = () => (clearTimeout(t), reject(signal.reason));
    signal.addEventListener('abort', stop, { once: true });
  });
}
