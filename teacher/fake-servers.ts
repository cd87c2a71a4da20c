// Test helpers: loopback fakes of a vLLM and an SGLang server, answering prompt log-probs in each
// server's exact JSON shape (see the sources cited in teacher/wire-formats.ts), with deterministic values
// and faults injected per scoring request, so teacher/http.ts can be tested without a GPU.
//
// Values: fakeLogprob(id, t) = −0.1·((7·id + t) mod 13) − 0.01 for the token id at sequence
// position t. The top-k at position t are the k ids of the fake vocabulary with the highest
// fakeLogprob (ties by smaller id), so ranks are consistent with the values. Not a normalized
// distribution: the fake checks the plumbing, not the math.
//
// Bounds: 127.0.0.1 only, an ephemeral port, bodies over 1 MiB refused (413), at most `maxRequests`
// requests answered (then 503), and the server stops itself after `lifetimeMs` (unref'd timers, so a
// forgotten fake never keeps a test process alive). Tests call close().

import { randomUUID } from 'node:crypto';
import http from 'node:http';
import type { Tokenizer } from '../data/tokenizer/types.ts';
import { tokenizeAnswer } from './tokenize-endpoint.ts';

/** What goes wrong on one scoring request (positions are indices into the sent ids). */
export type Fault =
  | { type: 'delay'; ms: number }
  | { type: 'status'; status: number; retryAfter?: string; retryAfterMs?: number; message?: string }
  /** 'json': a complete HTTP response whose JSON is cut short; 'socket': the connection drops mid-body. */
  | { type: 'truncate'; how?: 'json' | 'socket' }
  | { type: 'positions'; delta: number }
  | { type: 'token'; position: number }
  /** 'NaN' is the bare token Python's json.dumps writes for float('nan'); 'null' what orjson writes. */
  | { type: 'nan'; position: number; as: 'NaN' | 'null' }
  | { type: 'reset' };

export interface FakeBehaviour {
  /** Faults by scoring-request number (1-based), or a function of that number. */
  faults?: Record<number, Fault> | ((n: number) => Fault | undefined);
  /** Latency of every answer in ms (to let requests overlap); default 0. */
  latencyMs?: number;
  /** Model ids /v1/models lists; the first is the served one. Default ['fake-teacher']. */
  models?: string[];
  /** Size of the fake vocabulary (top-k candidates); default 1000. */
  vocabSize?: number;
  maxRequests?: number;
  lifetimeMs?: number;
  /** vLLM only: answer POST /tokenize with this tokenizer (teacher/tokenize-endpoint.ts); without it /tokenize is a 404, as on servers that lack it. */
  tokenizer?: Tokenizer;
}

export interface FakeStats {
  /** All HTTP requests seen. */
  requests: number;
  /** Requests to the flavor's scoring endpoint (/v1/completions for vLLM, /generate for SGLang). */
  scoring: number;
  /** Requests per path, e.g. {'/v1/models': 1}. */
  byPath: Record<string, number>;
  inFlight: number;
  maxInFlight: number;
  /** The last 100 scoring request bodies, parsed. */
  bodies: unknown[];
}

export interface FakeServer {
  readonly url: string;
  readonly stats: FakeStats;
  close(): Promise<void>;
}

export const fakeLogprob = (id: number, t: number): number => -0.1 * ((id * 7 + t) % 13) - 0.01;

/** The fake's top-k ids at position t, best first. */
export function fakeTopIds(t: number, k: number, vocabSize = 1000): number[] {
  const ids = Array.from({ length: vocabSize }, (_, id) => id);
  return ids.sort((a, b) => fakeLogprob(b, t) - fakeLogprob(a, t) || a - b).slice(0, k);
}

function fakeRank(id: number, t: number, vocabSize: number): number {
  const lp = fakeLogprob(id, t);
  let r = 1;
  for (let j = 0; j < vocabSize; j++) if (fakeLogprob(j, t) > lp || (fakeLogprob(j, t) === lp && j < id)) r++;
  return r;
}

class Refusal extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** Placeholder for a bare JSON token (NaN) that JSON.stringify cannot write. */
const NAN = '__FAKE_NAN__';

type Ids = number[];

/** vLLM: choices[0].prompt_logprobs, one dict per prompt token keyed by the id as a string. */
function vllmBody(ids: Ids, k: number, model: string, vocab: number) {
  const prompt_logprobs = ids.map((id, t) => {
    if (t === 0) return null;
    const entry: Record<string, { logprob: number | string | null; rank: number; decoded_token: string }> = {};
    fakeTopIds(t, k, vocab).forEach((alt, j) => (entry[alt] = { logprob: fakeLogprob(alt, t), rank: j + 1, decoded_token: `<${alt}>` }));
    entry[id] = { logprob: fakeLogprob(id, t), rank: fakeRank(id, t, vocab), decoded_token: `<${id}>` };
    return entry;
  });
  const n = ids.length;
  return {
    id: `cmpl-${randomUUID().replaceAll('-', '')}`,
    object: 'text_completion',
    created: Math.floor(Date.now() / 1000),
    model,
    choices: [{ index: 0, text: '<7>', logprobs: null, finish_reason: 'length', stop_reason: null, prompt_logprobs }],
    usage: { prompt_tokens: n, total_tokens: n + 1, completion_tokens: 1 },
  };
}

/** SGLang /generate: meta_info.input_token_logprobs as [logprob, id, text] with the first logprob null. */
function sglangBody(ids: Ids, k: number, vocab: number) {
  const triple = (id: number, t: number): [number | string | null, number, null] => [fakeLogprob(id, t), id, null];
  const meta: Record<string, unknown> = {
    id: randomUUID().replaceAll('-', ''),
    finish_reason: { type: 'length', length: 1 },
    prompt_tokens: ids.length,
    completion_tokens: 1,
    cached_tokens: 0,
    input_token_logprobs: ids.map((id, t) => (t === 0 ? [null, id, null] : triple(id, t))),
    output_token_logprobs: [triple(7, ids.length)],
  };
  if (k > 0) {
    meta.input_top_logprobs = ids.map((_, t) => (t === 0 ? null : fakeTopIds(t, k, vocab).map((alt) => triple(alt, t))));
    meta.output_top_logprobs = [fakeTopIds(ids.length, k, vocab).map((alt) => triple(alt, ids.length))];
  }
  return { text: '<7>', output_ids: [7], meta_info: meta };
}

/** Apply a content fault to a body built by vllmBody/sglangBody (mutates it). */
function corrupt(flavor: 'vllm' | 'sglang', body: any, ids: Ids, f: Fault): void {
  const rows: unknown[] = flavor === 'vllm' ? body.choices[0].prompt_logprobs : body.meta_info.input_token_logprobs;
  if (f.type === 'positions') {
    if (f.delta < 0) rows.splice(rows.length + f.delta);
    else for (let i = 0; i < f.delta; i++) rows.push(rows[rows.length - 1]);
  } else if (f.type === 'token' || f.type === 'nan') {
    const id = ids[f.position]!;
    if (flavor === 'sglang') {
      const row = rows[f.position] as [unknown, number, null];
      if (f.type === 'token') row[1] = id + 1;
      else row[0] = f.as === 'NaN' ? NAN : null;
    } else {
      const entry = rows[f.position] as Record<string, { logprob: unknown }>;
      if (f.type === 'nan') entry[id]!.logprob = f.as === 'NaN' ? NAN : null;
      else {
        entry[id + 1] = entry[id]!;
        delete entry[id];
      }
    }
  }
}

const errorJson = (message: string, status: number) => ({ error: { message, type: status === 404 ? 'NotFoundError' : 'BadRequestError', param: null, code: status } });

export function startFakeServer(opts: { flavor: 'vllm' | 'sglang'; behaviour?: FakeBehaviour }): Promise<FakeServer> {
  const { flavor } = opts;
  const b = opts.behaviour ?? {};
  const models = b.models ?? ['fake-teacher'];
  const vocab = b.vocabSize ?? 1000;
  const maxRequests = b.maxRequests ?? 10_000;
  const stats: FakeStats = { requests: 0, scoring: 0, byPath: {}, inFlight: 0, maxInFlight: 0, bodies: [] };
  const timers = new Set<NodeJS.Timeout>();
  const scoringPath = flavor === 'vllm' ? '/v1/completions' : '/generate';

  const wait = (ms: number, req: http.IncomingMessage) =>
    new Promise<boolean>((resolve) => {
      if (ms <= 0) return resolve(true);
      const gone = () => (clearTimeout(t), timers.delete(t), resolve(false));
      const t = setTimeout(() => (timers.delete(t), req.socket.off('close', gone), resolve(true)), ms);
      timers.add(t);
      req.socket.once('close', gone);
    });

  const send = (res: http.ServerResponse, status: number, text: string, headers: Record<string, string> = {}) => {
    if (res.destroyed) return;
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
    res.end(text);
  };

  function score(body: any): { ids: Ids; k: number } {
    if (typeof body !== 'object' || body === null) throw new Refusal(400, 'the body must be a JSON object');
    if (flavor === 'vllm') {
      if (body.model !== models[0]) throw new Refusal(404, `The model \`${body.model}\` does not exist.`);
      if (body.max_tokens !== 1) throw new Refusal(400, `expected max_tokens 1, got ${JSON.stringify(body.max_tokens)}`);
      if (!Number.isInteger(body.prompt_logprobs) || body.prompt_logprobs < 0) throw new Refusal(400, '`prompt_logprobs` must be a positive value or -1.');
    } else if (body.return_logprob !== true || body.logprob_start_len !== 0) throw new Refusal(400, 'expected return_logprob true and logprob_start_len 0');
    const ids = flavor === 'vllm' ? body.prompt : body.input_ids;
    if (!Array.isArray(ids) || ids.length === 0 || !ids.every((x: unknown) => Number.isInteger(x) && (x as number) >= 0 && (x as number) < vocab))
      throw new Refusal(400, `the prompt must be token ids in 0..${vocab - 1}`);
    return { ids, k: flavor === 'vllm' ? body.prompt_logprobs : (body.top_logprobs_num ?? 0) };
  }

  async function handle(req: http.IncomingMessage, res: http.ServerResponse, raw: string): Promise<void> {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    stats.byPath[path] = (stats.byPath[path] ?? 0) + 1;
    if (stats.requests > maxRequests) return send(res, 503, JSON.stringify(errorJson('fake server: request limit reached', 503)));
    if (req.method === 'GET' && path === '/health') return send(res, 200, '{}');
    if (req.method === 'GET' && path === '/v1/models') {
      const data = models.map((id) => ({ id, object: 'model', created: 0, owned_by: flavor, root: id, parent: null, max_model_len: 4096 }));
      return send(res, 200, JSON.stringify({ object: 'list', data }));
    }
    if (req.method === 'POST' && flavor === 'sglang' && path === '/v1/completions') {
      // SGLang's OpenAI endpoint answers without prompt log-probs (serving_completions.py).
      return send(res, 200, JSON.stringify({ id: 'x', object: 'text_completion', created: 0, model: models[0], choices: [{ index: 0, text: '<7>', logprobs: null, finish_reason: 'length' }] }));
    }
    if (req.method === 'POST' && path === '/tokenize' && flavor === 'vllm' && b.tokenizer) {
      try {
        return send(res, 200, JSON.stringify(tokenizeAnswer(b.tokenizer, JSON.parse(raw), { modelName: models[0]!, maxModelLen: 4096, fail: (s, m) => new Refusal(s, m) })));
      } catch (e) {
        const r = e instanceof Refusal ? e : new Refusal(400, String(e));
        return send(res, r.status, JSON.stringify(errorJson(r.message, r.status)));
      }
    }
    if (req.method !== 'POST' || path !== scoringPath) return send(res, 404, JSON.stringify(errorJson(`no such endpoint: ${req.method} ${path}`, 404)));

    const n = ++stats.scoring;
    let body: unknown;
    try {
      body = JSON.parse(raw);
    } catch {
      return send(res, 400, JSON.stringify(errorJson('the body is not valid JSON', 400)));
    }
    stats.bodies.push(body);
    if (stats.bodies.length > 100) stats.bodies.shift();
    const f = typeof b.faults === 'function' ? b.faults(n) : b.faults?.[n];
    if (!(await wait((b.latencyMs ?? 0) + (f?.type === 'delay' ? f.ms : 0), req))) return;
    if (f?.type === 'reset') return void req.socket.resetAndDestroy();
    if (f?.type === 'status') {
      const headers: Record<string, string> = {};
      if (f.retryAfter !== undefined) headers['retry-after'] = f.retryAfter;
      if (f.retryAfterMs !== undefined) headers['retry-after-ms'] = String(f.retryAfterMs);
      return send(res, f.status, JSON.stringify(errorJson(f.message ?? `fake ${f.status}`, f.status)), headers);
    }
    let out: any;
    let ids: Ids;
    try {
      const s = score(body);
      ids = s.ids;
      out = flavor === 'vllm' ? vllmBody(ids, s.k, models[0]!, vocab) : sglangBody(ids, s.k, vocab);
    } catch (e) {
      const r = e instanceof Refusal ? e : new Refusal(500, String(e));
      return send(res, r.status, JSON.stringify(errorJson(r.message, r.status)));
    }
    if (f) corrupt(flavor, out, ids, f);
    const text = JSON.stringify(out).replaceAll(`"${NAN}"`, 'NaN');
    if (f?.type !== 'truncate') return send(res, 200, text);
    const cut = text.slice(0, Math.floor(text.length / 2));
    if (f.how !== 'socket') return send(res, 200, cut);
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.write(cut, () => req.socket.destroy());
  }

  const server = http.createServer((req, res) => {
    stats.requests++;
    stats.inFlight++;
    stats.maxInFlight = Math.max(stats.maxInFlight, stats.inFlight);
    let done = false;
    const finish = () => void (done || ((done = true), stats.inFlight--));
    res.once('close', finish);
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size <= 1 << 20) chunks.push(c);
    });
    req.once('end', () => {
      if (size > 1 << 20) return send(res, 413, JSON.stringify(errorJson('body too large', 413)), { connection: 'close' });
      handle(req, res, Buffer.concat(chunks).toString('utf8')).catch((e) => send(res, 500, JSON.stringify(errorJson(String(e), 500))));
    });
  });

  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as { port: number }).port;
      let closed: Promise<void> | null = null;
      const close = () =>
        (closed ??= new Promise<void>((done) => {
          clearTimeout(selfStop);
          for (const t of timers) clearTimeout(t);
          server.close(() => done());
          server.closeAllConnections();
        }));
      const selfStop = setTimeout(() => void close(), b.lifetimeMs ?? 60_000);
      selfStop.unref();
      server.unref();
      resolve({ url: `http://127.0.0.1:${port}`, stats, close });
    });
  });
}
