// The HTTP teacher: scores token sequences on a server that returns prompt log-probs — vLLM's
// OpenAI-compatible /v1/completions, SGLang's native /generate, or `opd teacher serve`
// (teacher/server.ts, vLLM's format). One HTTP request per TeacherRequest: the whole sequence as
// token ids, one generated token, log-probs for every prompt position (+ the top-k when asked).
//
// Wire formats, read from the servers' sources (formats only, no code taken):
// - vLLM request: vllm-project/vllm vllm/entrypoints/openai/completion/protocol.py (CompletionRequest:
//   `prompt` may be list[int], `max_tokens`, `prompt_logprobs`, `temperature`; older releases keep it
//   in vllm/entrypoints/openai/protocol.py). Answer: CompletionResponseChoice.prompt_logprobs =
//   list[dict[int, Logprob] | None], one entry per prompt token, the first None, each keyed by the
//   token id (a string in JSON) and holding the actual token plus the top-k at ranks 1..k; Logprob =
//   {logprob, rank, decoded_token} (vllm/logprobs.py); −inf is sent as −9999.0
//   (clamp_prompt_logprobs in vllm/entrypoints/openai/serving_engine.py). Errors:
//   {"error": {"message", ...}} or, in older releases, {"object": "error", "message", ...}.
// - SGLang request: sgl-project/sglang python/sglang/srt/managers/io_struct.py (GenerateReqInput:
//   `input_ids`, `sampling_params`, `return_logprob`, `logprob_start_len`, `top_logprobs_num`).
//   Answer: meta_info.input_token_logprobs = [logprob, token_id, text|null] per prompt token and
//   meta_info.input_top_logprobs = per position a list of such triples or null
//   (python/sglang/srt/managers/tokenizer_manager.py, detokenize_*_tokens); the first entry's
//   log-prob is always null (python/sglang/srt/managers/scheduler_output_processor_mixin.py). SGLang's
//   /v1/completions does not compute prompt log-probs (its entrypoints/openai/serving_completions.py
//   points to /generate), so the sglang flavor posts to /generate. `auto` probes /v1/completions,
//   then /generate, with a 2-token sequence, and keeps the first whose answer has the right shape.
//
// Contracts (RELIABILITY.md R15): a score is returned only if every position is there, every token
// id equals the one sent and every log-prob is a finite number ≤ 0; otherwise the call rejects with
// a TeacherScoreError naming the URL, the request index and what was wrong, and nothing is returned
// for the batch. Timeouts, refused/reset connections, cut-off or unparseable bodies, 429 and 5xx are
// retried with exponential backoff and full jitter (or the server's Retry-After / retry-after-ms,
// capped); other 4xx fail at once with the server's message. Requests in flight are bounded by
// teacher/queue.ts, shared by all calls on one teacher; a retry keeps its slot while it waits.
// Temperature is sent as asked; whether a server scales *prompt* log-probs by it differs (vLLM's
// V1 engine returns raw log-probs unless started with --logprobs-mode processed_logprobs): keep 1
// unless the server is known to apply it. identity.modelId defaults to `http:<model>`, so replicas
// serving one model share cached scores.

import { boundedQueue, type WorkQueue } from './queue.ts';
import { type Teacher, type TeacherIdentity, type TeacherRequest, type TeacherScore, TeacherScoreError, validateScore } from './types.ts';

export type Flavor = 'vllm' | 'sglang';

export interface HttpTeacherOptions {
  /** Server base URL, e.g. http://gpu-01:8000 (a trailing /v1 is ignored). */
  url: string;
  /** Model name sent to vLLM and looked up in /v1/models. */
  model: string;
  /** Sent as "Authorization: Bearer <apiKey>". */
  apiKey?: string;
  flavor: Flavor | 'auto';
  /** Most HTTP requests in flight at once; default 8. */
  concurrency?: number;
  /** Per attempt, headers and body, in ms; default 60000. */
  timeoutMs?: number;
  /** Retries after the first attempt; default 4. */
  retries?: number;
  /** Backoff base in ms: attempt a waits U(0, min(cap, base·2^(a−1))); default 500. */
  backoffMs?: number;
  /** Backoff cap in ms, also the longest Retry-After honoured; default 30000. */
  backoffCapMs?: number;
  /** τ sent with every request; default 1. */
  temperature?: number;
  identity: { tokenizerFingerprint: string; vocabSize: number; modelId?: string };
  /** Called before each retry, e.g. with the logger's warn. */
  log?: (message: string) => void;
}

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
  constructor(where: string, request: number, detail: string) {
    super(request, detail);
    this.message = `${where}: ${detail}`;
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

type Json = Record<string, unknown>;
const obj = (x: unknown): Json | null => (typeof x === 'object' && x !== null && !Array.isArray(x) ? (x as Json) : null);

/** One position as the server returned it: id null = none given (vLLM position 0), undefined = the sent id is not there. */
interface Row {
  id: unknown;
  logprob: unknown;
  /** [id, log-prob] best first. */
  top: Array<[unknown, unknown]>;
}

const PATH: Record<Flavor, string> = { vllm: '/v1/completions', sglang: '/generate' };
/** The 2-token sequence of the flavor probe and checkServer(). */
const PROBE = [0, 1];

export class HttpTeacher implements Teacher {
  readonly identity: TeacherIdentity;
  readonly base: string;
  private readonly queue: WorkQueue;
  private readonly o: Required<Omit<HttpTeacherOptions, 'apiKey' | 'identity' | 'log'>> & Pick<HttpTeacherOptions, 'apiKey' | 'log'>;
  private readonly closing = new AbortController();
  private detected: Promise<Flavor> | null = null;

  constructor(opts: HttpTeacherOptions) {
    const { url, model, flavor, apiKey, log } = opts;
    const [concurrency, timeoutMs, retries, backoffMs, backoffCapMs, temperature] = [opts.concurrency ?? 8, opts.timeoutMs ?? 60_000, opts.retries ?? 4, opts.backoffMs ?? 500, opts.backoffCapMs ?? 30_000, opts.temperature ?? 1];
    this.o = { url, model, flavor, apiKey, log, concurrency, timeoutMs, retries, backoffMs, backoffCapMs, temperature };
    const u = new URL(opts.url);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error(`http teacher: url must be http(s), got ${opts.url}`);
    this.base = `${u.origin}${u.pathname.replace(/\/+$/, '').replace(/\/v1$/, '')}`;
    const fail = (what: string) => new Error(`http teacher ${this.base}: ${what}`);
    if (!(timeoutMs > 0)) throw fail(`timeoutMs must be > 0, got ${timeoutMs}`);
    if (!Number.isInteger(retries) || retries < 0) throw fail(`retries must be an integer ≥ 0, got ${retries}`);
    if (!(backoffMs >= 0)) throw fail(`backoffMs must be ≥ 0, got ${backoffMs}`);
    if (!(temperature > 0 && Number.isFinite(temperature))) throw fail(`temperature must be a finite number > 0, got ${temperature}`);
    if (!Number.isInteger(opts.identity.vocabSize) || opts.identity.vocabSize < 2) throw fail(`identity.vocabSize must be an integer ≥ 2`);
    this.identity = { modelId: opts.identity.modelId ?? `http:${opts.model}`, tokenizerFingerprint: opts.identity.tokenizerFingerprint, vocabSize: opts.identity.vocabSize };
    this.queue = boundedQueue(this.o.concurrency);
    if (opts.flavor !== 'auto') this.detected = Promise.resolve(opts.flavor);
  }

  async score(reqs: readonly TeacherRequest[], opts: { topK?: number } = {}): Promise<TeacherScore[]> {
    const k = opts.topK ?? 0;
    if (!Number.isInteger(k) || k < 0) throw new HttpTeacherError(`${this.base}: topK must be an integer ≥ 0, got ${k}`);
    reqs.forEach((r, i) => this.check(r, i));
    if (reqs.length === 0) return [];
    const flavor = await this.flavor();
    const batch = new AbortController();
    const signal = AbortSignal.any([this.closing.signal, batch.signal]);
    const one = (r: TeacherRequest, i: number) =>
      this.queue
        .add(() => (signal.aborted ? Promise.reject(signal.reason) : this.scoreOne(flavor, r, i, k, signal)))
        .catch((e: unknown) => {
          batch.abort(e); // the batch has failed: requests not yet sent are not sent
          throw e;
        });
    return Promise.all(reqs.map(one));
  }

  /** Preflight: /v1/models lists the model and the server scores a 2-token probe. */
  async checkServer(): Promise<{ flavor: Flavor; models: string[] }> {
    const where = `${this.base}/v1/models`;
    const list = obj(await this.queue.add(() => this.call('/v1/models', undefined, this.closing.signal, where)));
    const data = Array.isArray(list?.data) ? list.data : null;
    const models = data?.map((m) => obj(m)?.id).filter((id): id is string => typeof id === 'string');
    if (!models) throw new HttpTeacherError(`${where}: the answer has no data[].id list of models`);
    if (!models.includes(this.o.model)) throw new HttpTeacherError(`${where}: model "${this.o.model}" is not served here; available: ${models.join(', ') || '(none)'}`);
    const flavor = await this.flavor();
    await this.score([{ ids: PROBE, start: 1 }]);
    return { flavor, models };
  }

  /** Stops new calls, aborts requests in flight (their score() calls reject) and waits for the queue. */
  async close(): Promise<void> {
    this.closing.abort(new HttpTeacherError(`${this.base}: the teacher was closed`));
    await this.queue.onIdle();
  }

  private check(r: TeacherRequest, i: number): void {
    const n = r.ids.length;
    const fail = (what: string) => new HttpTeacherError(`${this.base} request ${i}: ${what}`);
    if (this.closing.signal.aborted) throw fail('score() after close()');
    if (!Number.isInteger(r.start) || r.start < 1 || r.start > n) throw fail(`start ${r.start} outside 1..${n}`);
    const bad = r.ids.findIndex((t) => !Number.isInteger(t) || t < 0 || t >= this.identity.vocabSize);
    if (bad >= 0) throw fail(`token id ${r.ids[bad]} at position ${bad} is outside the vocabulary 0..${this.identity.vocabSize - 1}`);
  }

  private async scoreOne(flavor: Flavor, r: TeacherRequest, i: number, k: number, signal: AbortSignal): Promise<TeacherScore> {
    const n = r.ids.length - r.start;
    if (n === 0) return k ? { logprobs: [], topIds: [], topLogprobs: [] } : { logprobs: [] };
    const where = `${this.base}${PATH[flavor]} request ${i}`;
    const body = await this.call(PATH[flavor], this.body(flavor, r.ids, k), signal, where, i);
    const fail = (detail: string) => new HttpScoreError(where, i, detail);
    const rows = flavor === 'vllm' ? vllmRows(body, r.ids, k, fail) : sglangRows(body, fail);
    const s = toScore(r, rows, k, fail);
    validateScore(r, s, i, k);
    return s;
  }

  private body(flavor: Flavor, ids: readonly number[], k: number): Json {
    const temperature = this.o.temperature;
    if (flavor === 'vllm') return { model: this.o.model, prompt: ids, max_tokens: 1, prompt_logprobs: k, temperature };
    return { input_ids: ids, sampling_params: { max_new_tokens: 1, temperature }, return_logprob: true, logprob_start_len: 0, top_logprobs_num: k };
  }

  private flavor(): Promise<Flavor> {
    this.detected ??= this.detect().catch((e: unknown) => {
      this.detected = null; // a later call tries again
      throw e;
    });
    return this.detected;
  }

  /** 'auto': the first endpoint whose answer to a 2-token probe has its flavor's shape. */
  private async detect(): Promise<Flavor> {
    const seen: string[] = [];
    for (const flavor of ['vllm', 'sglang'] as const) {
      const where = `${this.base}${PATH[flavor]}`;
      try {
        const b = await this.queue.add(() => this.call(PATH[flavor], this.body(flavor, PROBE, 0), this.closing.signal, `${where} flavor probe`));
        const ok = flavor === 'vllm' ? Array.isArray(firstChoice(b)?.prompt_logprobs) : Array.isArray(metaInfo(b)?.input_token_logprobs);
        if (ok) return flavor;
        seen.push(`${where} answered without ${flavor === 'vllm' ? 'choices[0].prompt_logprobs' : 'meta_info.input_token_logprobs'}`);
      } catch (e) {
        if (!(e instanceof HttpTeacherError && e.status !== undefined)) throw e;
        seen.push(`${where}: HTTP ${e.status}`);
      }
    }
    throw new HttpTeacherError(`${this.base}: cannot tell whether this is a vLLM or an SGLang server (${seen.join('; ')}); set flavor explicitly`);
  }

  /** One request with retries; the final error names `where` and the number of attempts. */
  private async call(path: string, body: Json | undefined, signal: AbortSignal, where: string, request?: number): Promise<unknown> {
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

/** vLLM: choices[0].prompt_logprobs; the returned token is the key equal to the sent id, else the one outside the top-k. */
function vllmRows(body: unknown, ids: readonly number[], k: number, fail: (d: string) => Error): Row[] {
  const pl = firstChoice(body)?.prompt_logprobs;
  if (!Array.isArray(pl)) throw fail('the answer has no choices[0].prompt_logprobs (not a vLLM-style server? try flavor "sglang" or "auto")');
  return pl.map((entry: unknown, t): Row => {
    if (entry === null && t === 0) return { id: null, logprob: null, top: [] };
    const e = obj(entry);
    if (!e) throw fail(`prompt_logprobs[${t}] is ${JSON.stringify(entry)}, not an object`);
    const vals = Object.entries(e).map(([key, v]) => ({ id: Number(key), logprob: obj(v)?.logprob, rank: obj(v)?.rank }));
    const inTop = (rank: unknown) => Number.isInteger(rank) && (rank as number) >= 1 && (rank as number) <= k;
    const outside = vals.filter((v) => !inTop(v.rank));
    const own = vals.find((v) => v.id === ids[t]) ?? (vals.length === 1 ? vals[0] : outside.length === 1 ? outside[0] : undefined);
    const top = vals.filter((v) => inTop(v.rank)).sort((a, b) => (a.rank as number) - (b.rank as number));
    return { id: own?.id, logprob: own?.logprob, top: top.map((v) => [v.id, v.logprob]) };
  });
}

/** SGLang: meta_info.input_token_logprobs [logprob, id, text] and input_top_logprobs. */
function sglangRows(body: unknown, fail: (d: string) => Error): Row[] {
  const m = metaInfo(body);
  const finish = obj(m?.finish_reason);
  if (finish?.type === 'abort') throw fail(`the server aborted the request: ${show(finish.message ?? finish)}`);
  const rows = m?.input_token_logprobs;
  if (!Array.isArray(rows)) throw fail('the answer has no meta_info.input_token_logprobs (not an SGLang server? try flavor "vllm" or "auto")');
  const tops = Array.isArray(m!.input_top_logprobs) ? m!.input_top_logprobs : [];
  return rows.map((r: unknown, t): Row => {
    if (!Array.isArray(r) || r.length < 2) throw fail(`input_token_logprobs[${t}] is ${JSON.stringify(r)}, not [logprob, token_id, text]`);
    const top = Array.isArray(tops[t]) ? (tops[t] as unknown[]).map((x): [unknown, unknown] => (Array.isArray(x) ? [x[1], x[0]] : [undefined, undefined])) : [];
    return { id: r[1], logprob: r[0], top };
  });
}

function firstChoice(body: unknown): Json | null {
  const choices = obj(body)?.choices;
  return Array.isArray(choices) ? obj(choices[0]) : null;
}

/** SGLang answers one object for one prompt; a one-element list is accepted too. */
function metaInfo(body: unknown): Json | null {
  return obj(obj(Array.isArray(body) && body.length === 1 ? body[0] : body)?.meta_info);
}

const show = (x: unknown) => (typeof x === 'string' ? x : JSON.stringify(x) ?? 'missing');
const isLogprob = (x: unknown): x is number => typeof x === 'number' && Number.isFinite(x) && x <= 1e-4;

/** The score of positions start..n−1, after checking every position's token id and value. */
function toScore(r: TeacherRequest, rows: Row[], k: number, fail: (d: string) => Error): TeacherScore {
  const n = r.ids.length;
  if (rows.length !== n) throw fail(`the answer has ${rows.length} positions but ${n} tokens were sent`);
  rows.forEach((row, t) => {
    if (row.id !== null && row.id !== r.ids[t])
      throw fail(row.id === undefined ? `position ${t}: token ${r.ids[t]} that was sent is not among the returned entries (tokenizer mismatch?)` : `position ${t} returned token ${show(row.id)} but ${r.ids[t]} was sent (tokenizer mismatch?)`);
  });
  const s: TeacherScore = { logprobs: [] };
  if (k) [s.topIds, s.topLogprobs] = [[], []];
  for (let t = r.start; t < n; t++) {
    const row = rows[t]!;
    if (!isLogprob(row.logprob)) throw fail(`position ${t}: log-prob ${show(row.logprob)} is not a finite number ≤ 0`);
    s.logprobs.push(row.logprob);
    if (!k) continue;
    if (row.top.length < k) throw fail(`position ${t}: ${row.top.length} top-k entries, ${k} were asked`);
    const top = row.top.slice(0, k);
    const bad = top.find(([id, lp]) => !Number.isInteger(id) || !isLogprob(lp));
    if (bad) throw fail(`position ${t}: top-k entry (id ${show(bad[0])}, log-prob ${show(bad[1])}) is not a token id with a finite log-prob ≤ 0`);
    s.topIds!.push(top.map(([id]) => id as number));
    s.topLogprobs!.push(top.map(([, lp]) => lp as number));
  }
  return s;
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
