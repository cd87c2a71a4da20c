// The HTTP teacher: scores token sequences on a server that returns prompt log-probs — vLLM's
// OpenAI-compatible /v1/completions, SGLang's native /generate, or `opd teacher serve`
// (teacher/server.ts, vLLM's format). One HTTP request per TeacherRequest: the whole sequence as
// token ids, one generated token, log-probs for every prompt position (+ the top-k when asked).
// Three parts: this teacher (checks, batching, the contracts below), the retrying client
// (teacher/http-client.ts) and the wire formats by flavor (teacher/wire-formats.ts, with the
// servers' sources). `auto` probes each format's endpoint in registry order (/v1/completions, then
// /generate) with a 2-token sequence, and keeps the first whose answer has that format's shape.
//
// Contracts (docs/reliability.md R15): a score is returned only if every position is there, every token
// id equals the one sent and every log-prob is a finite number ≤ 0; otherwise the call rejects with
// a TeacherScoreError naming the URL, the request index and what was wrong, and nothing is returned
// for the batch. Timeouts, refused/reset connections, cut-off or unparseable bodies, 429 and 5xx are
// retried by the client; other 4xx fail at once with the server's message. Requests in flight are
// bounded by teacher/queue.ts, shared by all calls on one teacher; a retry keeps its slot while it
// waits. Temperature is sent as asked; whether a server scales *prompt* log-probs by it differs
// (vLLM's V1 engine returns raw log-probs unless started with --logprobs-mode processed_logprobs):
// keep 1 unless the server is known to apply it. identity.modelId defaults to `http:<model>`, so
// replicas serving one model share cached scores.

import { HttpClient, HttpScoreError, HttpTeacherError, obj, serverBase } from './http-client.ts';
import { boundedQueue, type WorkQueue } from './queue.ts';
import { isNonFiniteValue, type Teacher, type TeacherIdentity, type TeacherRequest, type TeacherScore, validateScore } from './types.ts';
import { FLAVORS, type Flavor, type Row, show, WIRE_FORMATS } from './wire-formats.ts';

export { HttpScoreError, HttpTeacherError } from './http-client.ts';
export type { Flavor } from './wire-formats.ts';

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

/** The 2-token sequence of the flavor probe and checkServer(). */
const PROBE = [0, 1];

export class HttpTeacher implements Teacher {
  readonly identity: TeacherIdentity;
  readonly base: string;
  private readonly client: HttpClient;
  private readonly queue: WorkQueue;
  /** What every request carries besides the ids. */
  private readonly sent: { model: string; temperature: number };
  private readonly closing = new AbortController();
  private detected: Promise<Flavor> | null = null;

  constructor(opts: HttpTeacherOptions) {
    const [concurrency, timeoutMs, retries, backoffMs, backoffCapMs, temperature] = [opts.concurrency ?? 8, opts.timeoutMs ?? 60_000, opts.retries ?? 4, opts.backoffMs ?? 500, opts.backoffCapMs ?? 30_000, opts.temperature ?? 1];
    this.base = serverBase(opts.url);
    const fail = (what: string) => new Error(`http teacher ${this.base}: ${what}`);
    if (!(timeoutMs > 0)) throw fail(`timeoutMs must be > 0, got ${timeoutMs}`);
    if (!Number.isInteger(retries) || retries < 0) throw fail(`retries must be an integer ≥ 0, got ${retries}`);
    if (!(backoffMs >= 0)) throw fail(`backoffMs must be ≥ 0, got ${backoffMs}`);
    if (!(temperature > 0 && Number.isFinite(temperature))) throw fail(`temperature must be a finite number > 0, got ${temperature}`);
    if (!Number.isInteger(opts.identity.vocabSize) || opts.identity.vocabSize < 2) throw fail(`identity.vocabSize must be an integer ≥ 2`);
    if (opts.flavor !== 'auto' && !Object.hasOwn(WIRE_FORMATS, opts.flavor)) throw fail(`flavor must be auto or one of ${FLAVORS.join(', ')}, got ${String(opts.flavor)}`);
    this.identity = { modelId: opts.identity.modelId ?? `http:${opts.model}`, tokenizerFingerprint: opts.identity.tokenizerFingerprint, vocabSize: opts.identity.vocabSize };
    this.sent = { model: opts.model, temperature };
    this.client = new HttpClient(this.base, { apiKey: opts.apiKey, timeoutMs, retries, backoffMs, backoffCapMs, log: opts.log });
    this.queue = boundedQueue(concurrency);
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
    const list = obj(await this.queue.add(() => this.client.call('/v1/models', undefined, this.closing.signal, where)));
    const data = Array.isArray(list?.data) ? list.data : null;
    const models = data?.map((m) => obj(m)?.id).filter((id): id is string => typeof id === 'string');
    if (!models) throw new HttpTeacherError(`${where}: the answer has no data[].id list of models`);
    if (!models.includes(this.sent.model)) throw new HttpTeacherError(`${where}: model "${this.sent.model}" is not served here; available: ${models.join(', ') || '(none)'}`);
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
    const format = WIRE_FORMATS[flavor];
    const where = `${this.base}${format.path} request ${i}`;
    const body = await this.client.call(format.path, format.request(r.ids, k, this.sent), signal, where, i);
    const fail = (detail: string, nonFinite = false) => new HttpScoreError(where, i, detail, nonFinite);
    const s = toScore(r, format.rows(body, r.ids, k, fail), k, fail);
    validateScore(r, s, i, k);
    return s;
  }

  private flavor(): Promise<Flavor> {
    this.detected ??= this.detect().catch((e: unknown) => {
      this.detected = null; // a later call tries again
      throw e;
    });
    return this.detected;
  }

  /** 'auto': the first format whose endpoint answers a 2-token probe in that format's shape. */
  private async detect(): Promise<Flavor> {
    const seen: string[] = [];
    for (const flavor of FLAVORS) {
      const format = WIRE_FORMATS[flavor];
      const where = `${this.base}${format.path}`;
      try {
        const b = await this.queue.add(() => this.client.call(format.path, format.request(PROBE, 0, this.sent), this.closing.signal, `${where} flavor probe`));
        if (format.recognises(b)) return flavor;
        seen.push(`${where} answered without ${format.shape}`);
      } catch (e) {
        if (!(e instanceof HttpTeacherError && e.status !== undefined)) throw e;
        seen.push(`${where}: HTTP ${e.status}`);
      }
    }
    const servers = FLAVORS.map((f) => WIRE_FORMATS[f].label).join(' or ');
    throw new HttpTeacherError(`${this.base}: cannot tell whether this is a ${servers} server (${seen.join('; ')}); set flavor explicitly`);
  }
}

const isLogprob = (x: unknown): x is number => typeof x === 'number' && Number.isFinite(x) && x <= 1e-4;

/** The score of positions start..n−1, after checking every position's token id and value. */
function toScore(r: TeacherRequest, rows: Row[], k: number, fail: (d: string, nonFinite?: boolean) => Error): TeacherScore {
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
    if (!isLogprob(row.logprob)) throw fail(`position ${t}: log-prob ${show(row.logprob)} is not a finite number ≤ 0`, isNonFiniteValue(row.logprob));
    s.logprobs.push(row.logprob);
    if (!k) continue;
    if (row.top.length < k) throw fail(`position ${t}: ${row.top.length} top-k entries, ${k} were asked`);
    const top = row.top.slice(0, k);
    const bad = top.find(([id, lp]) => !Number.isInteger(id) || !isLogprob(lp));
    if (bad) throw fail(`position ${t}: top-k entry (id ${show(bad[0])}, log-prob ${show(bad[1])}) is not a token id with a finite log-prob ≤ 0`, Number.isInteger(bad[0]) && isNonFiniteValue(bad[1]));
    s.topIds!.push(top.map(([id]) => id as number));
    s.topLogprobs!.push(top.map(([, lp]) => lp as number));
  }
  return s;
}
