// The teacher server: a local teacher behind vLLM's OpenAI-compatible completions protocol, so
// trainers (teacher/http.ts, or any vLLM client) can share one teacher (`opd teacher serve`).
//
// Endpoints: POST /v1/completions, GET /v1/models, POST /tokenize (vLLM's, teacher/tokenize-endpoint.ts:
// the served tokenizer's ids for a text or a conversation), GET /health (open; the others need the
// bearer token when one is set). A completion request is {model?, prompt: ids | ids[], max_tokens: 0|1,
// prompt_logprobs: k, temperature?}; the answer has vLLM's shape: choices[i].prompt_logprobs =
// [null, {"<id>": {logprob, rank, decoded_token}, ...}, ...], each position holding the actual
// token and the top-k (ranks 1..k). Deliberate simplifications, all valid in vLLM's own types:
// nothing is generated (text "", completion_tokens 0, finish_reason "length"); the actual token's
// rank is null when it is outside the top-k (our graphs compute the top-k, not full ranks);
// temperature 0 or absent means the teacher's configured τ (vLLM's raw prompt log-probs when 1).
// Text prompts, streaming, n > 1 and sampled-token logprobs are refused with 400.
//
// Robustness (docs/reliability.md R16): loopback unless allowNonLoopback; bearer tokens compared in
// constant time (401); bodies over maxBodyBytes refused by Content-Length or as soon as the count
// passes it (413, connection closed, nothing more read); bad ids, empty or over-long prompts, bad
// fields -> 400 with a JSON message; unknown path 404. Every error is answered and the server keeps
// serving. Batching (teacher/batcher.ts): requests that arrive within `batchWindowMs` of the first, or while the teacher
// is busy, go to the teacher in one score() call (the local teacher still scores each sequence
// alone, so a score does not depend on its batch: docs/reliability.md R18).
//
// Stopping (close(), R19): connections the kernel has already accepted and bytes clients have
// already sent are read first; then the server stops listening and closes idle connections.
// Requests that had arrived are answered (with Connection: close); after `drainMs` every connection
// still open (a half-sent request, a client that never reads) is cut and queued scoring refused.
// close() resolves when no connection is left; a teacher call already running in the worker is not
// interrupted (its answer is dropped).

import { createHash, randomUUID, timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import { isIP, type Socket } from 'node:net';
import type { Tokenizer } from '../data/tokenizer/types.ts';
import type { LocalScoreOptions } from './local.ts';
import { Batcher } from './batcher.ts';
import { tokenizeAnswer } from './tokenize-endpoint.ts';
import type { TeacherIdentity, TeacherRequest, TeacherScore } from './types.ts';

/** What the server needs of a teacher (LocalTeacher has all of it). */
export interface ServedTeacher {
  readonly identity: TeacherIdentity;
  readonly tokenizer: Tokenizer;
  readonly maxSeqLen: number | null;
  /** The most top-k alternatives one call may ask for. */
  readonly topK: number;
  /** Non-null once the teacher can no longer score. */
  readonly failure: Error | null;
  score(reqs: readonly TeacherRequest[], opts?: LocalScoreOptions): Promise<TeacherScore[]>;
}

export interface TeacherServerOptions {
  /** Default 127.0.0.1. A non-loopback address is refused unless allowNonLoopback. */
  host?: string;
  /** Default 8000; 0 picks a free port. */
  port?: number;
  allowNonLoopback?: boolean;
  /** Bearer token required on /v1/*; null/undefined = no authentication. */
  token?: string | null;
  /** Largest request body in bytes; default 16 MiB. */
  maxBodyBytes?: number;
  /** Longest prompt in tokens; default the teacher's maxSeqLen, else 4096. */
  maxSeqLen?: number;
  /** The model name clients send and /v1/models lists; default the teacher's modelId. */
  modelName?: string;
  /** How long the first request waits for others to join its batch (ms); default 5. */
  batchWindowMs?: number;
  /** Most sequences per teacher call; default 256. */
  maxBatchSequences?: number;
  /** How long close() waits for open requests before cutting their connections (ms); default 10000. */
  drainMs?: number;
  log?: (level: 'info' | 'warn' | 'error', message: string) => void;
}

export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly type: string,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

/** True for 127.0.0.0/8, ::1, ::ffff:127.x and "localhost". */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (h === 'localhost' || h === '::1') return true;
  const v4 = h.startsWith('::ffff:') ? h.slice(7) : h;
  return isIP(v4) === 4 && v4.startsWith('127.');
}

interface Completion {
  prompts: number[][];
  k: number;
  temperature: number | undefined;
}

const bad = (message: string) => new HttpError(400, 'BadRequestError', message);

/** Checks a /v1/completions body; every refusal is a 400 naming the field. */
export function parseCompletion(body: unknown, lim: { vocab: number; maxSeqLen: number; maxLogprobs: number; modelName: string }): Completion {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw bad('the body must be a JSON object');
  const b = body as Record<string, unknown>;
  if (b.model !== undefined && b.model !== null && b.model !== lim.modelName)
    throw new HttpError(404, 'NotFoundError', `The model \`${String(b.model)}\` does not exist. This server serves \`${lim.modelName}\`.`);
  const p = b.prompt;
  if (typeof p === 'string' || (Array.isArray(p) && typeof p[0] === 'string')) throw bad('prompt must be token ids (number[] or number[][]); this server does not tokenize text');
  if (!Array.isArray(p) || p.length === 0) throw bad('prompt must be a non-empty array of token ids, or an array of such arrays');
  const prompts = (Array.isArray(p[0]) ? p : [p]) as unknown[];
  prompts.forEach((ids, i) => {
    const where = prompts.length > 1 ? `prompt[${i}]` : 'prompt';
    if (!Array.isArray(ids) || ids.length === 0) throw bad(`${where} must be a non-empty array of token ids`);
    if (ids.length > lim.maxSeqLen) throw bad(`${where} has ${ids.length} tokens; the limit is ${lim.maxSeqLen}`);
    const j = ids.findIndex((t) => typeof t !== 'number' || !Number.isInteger(t) || t < 0 || t >= lim.vocab);
    if (j >= 0) throw bad(`${where}[${j}] = ${JSON.stringify(ids[j])} is not a token id (an integer in 0..${lim.vocab - 1})`);
  });
  const k = b.prompt_logprobs;
  if (typeof k !== 'number' || !Number.isInteger(k) || k < 0 || k > lim.maxLogprobs)
    throw bad(`prompt_logprobs must be an integer in 0..${lim.maxLogprobs} (this server only scores prompts), got ${JSON.stringify(k)}`);
  if (b.max_tokens !== undefined && b.max_tokens !== null && b.max_tokens !== 0 && b.max_tokens !== 1) throw bad(`max_tokens must be 0 or 1: nothing is generated, got ${JSON.stringify(b.max_tokens)}`);
  if (b.n !== undefined && b.n !== null && b.n !== 1) throw bad('n must be 1');
  if (b.stream === true) throw bad('streaming is not supported');
  if (b.logprobs !== undefined && b.logprobs !== null && b.logprobs !== 0) throw bad('logprobs of generated tokens are not served; use prompt_logprobs');
  const t = b.temperature;
  if (t !== undefined && t !== null && (typeof t !== 'number' || !Number.isFinite(t) || t < 0)) throw bad(`temperature must be a number >= 0, got ${JSON.stringify(t)}`);
  return { prompts: prompts as number[][], k, temperature: typeof t === 'number' && t > 0 ? t : undefined };
}

/** Constant-time comparison of the Authorization header with "Bearer <token>". */
function authorized(header: string | undefined, token: string): boolean {
  const digest = (s: string) => createHash('sha256').update(s).digest();
  const m = /^Bearer\s+(.+)$/i.exec(header ?? '');
  return timingSafeEqual(digest(m ? m[1]!.trim() : ''), digest(token)) && m !== null;
}

export class TeacherServer {
  readonly url: string;
  private readonly batcher: Batcher;
  private readonly decoded = new Map<number, string>();
  private completions = 0;
  private draining = false;
  private closing: Promise<void> | null = null;
  private cutNow: (() => void) | null = null;
  private readonly sockets = new Set<Socket>();
  private accepted = 0;

  private constructor(
    private readonly teacher: ServedTeacher,
    private readonly server: http.Server,
    private readonly o: Required<Omit<TeacherServerOptions, 'token' | 'host' | 'port' | 'allowNonLoopback'>> & { token: string | null },
    host: string,
  ) {
    const port = (server.address() as { port: number }).port;
    this.url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
    this.batcher = new Batcher(teacher, o.batchWindowMs, o.maxBatchSequences);
  }

  /** Bind and start serving; refuses a non-loopback host unless opts.allowNonLoopback. */
  static async start(teacher: ServedTeacher, opts: TeacherServerOptions = {}): Promise<TeacherServer> {
    const host = opts.host ?? '127.0.0.1';
    if (!isLoopback(host) && !opts.allowNonLoopback) throw new Error(`teacher server: refusing to listen on non-loopback address ${host} (anyone who can reach it could use the teacher); allow it explicitly`);
    if (opts.token !== undefined && opts.token !== null && opts.token.length === 0) throw new Error('teacher server: the bearer token is empty');
    if (opts.maxSeqLen !== undefined && teacher.maxSeqLen !== null && opts.maxSeqLen > teacher.maxSeqLen)
      throw new Error(`teacher server: maxSeqLen ${opts.maxSeqLen} is more than the model takes (${teacher.maxSeqLen})`);
    const resolved = {
      token: opts.token ?? null,
      maxBodyBytes: opts.maxBodyBytes ?? 16 << 20,
      maxSeqLen: opts.maxSeqLen ?? teacher.maxSeqLen ?? 4096,
      modelName: opts.modelName ?? teacher.identity.modelId,
      batchWindowMs: opts.batchWindowMs ?? 5,
      maxBatchSequences: opts.maxBatchSequences ?? 256,
      drainMs: opts.drainMs ?? 10_000,
      log: opts.log ?? (() => {}),
    };
    const server = http.createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(opts.port ?? 8000, host, () => resolve());
    });
    const s = new TeacherServer(teacher, server, resolved, host);
    server.on('request', (req, res) => void s.handle(req, res));
    server.on('connection', (socket: Socket) => {
      s.sockets.add(socket);
      s.accepted++;
      socket.once('close', () => s.sockets.delete(socket));
    });
    // Expect: 100-continue: refuse before the client sends the body.
    server.on('checkContinue', (req, res) => {
      if (Number(req.headers['content-length']) > resolved.maxBodyBytes) return void s.handle(req, res);
      res.writeContinue();
      void s.handle(req, res);
    });
    server.on('clientError', (_e, socket) => (socket.writable ? socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n') : socket.destroy()));
    return s;
  }

  get stats(): { completions: number; runs: number } {
    return { completions: this.completions, runs: this.batcher.runs };
  }

  /**
   * Stop (see the file header): answer the requests that have arrived, then resolve once no
   * connection is left; connections still open after `drainMs` (default the server's) are cut.
   */
  close(drainMs = this.o.drainMs): Promise<void> {
    this.closing ??= (async () => {
      this.draining = true;
      let cut = false;
      const cutAll = (this.cutNow = () => {
        if (cut) return;
        cut = true;
        const n = this.sockets.size;
        if (n) this.o.log('warn', `teacher server: ${n} connection(s) still open after the drain period closed`);
        this.batcher.abort(new HttpError(503, 'ServiceUnavailable', 'the server is shutting down'));
        this.server.closeAllConnections();
      });
      const timer = setTimeout(cutAll, drainMs);
      // Turns of the event loop until two pass without a new connection: Node accepts one waiting
      // connection per turn (closing the listener would reset those still in the kernel's backlog),
      // and reads a new connection's bytes one turn later; a request already sent has then begun
      // and is not closed as idle.
      for (let quiet = 0, seen = this.accepted; quiet < 2 && !cut; seen = this.accepted) {
        await new Promise((r) => setImmediate(r));
        quiet = this.accepted === seen ? quiet + 1 : 0;
      }
      const closed = new Promise<void>((resolve) => this.server.close(() => resolve())); // also closes idle connections
      if (cut) this.server.closeAllConnections();
      await closed;
      clearTimeout(timer);
      this.cutNow = null;
    })();
    return this.closing;
  }

  /** During close(): cut the connections still open now instead of at the end of the drain period. */
  cut(): void {
    this.cutNow?.();
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    try {
      const path = new URL(req.url ?? '/', 'http://x').pathname;
      const method = { '/health': 'GET', '/v1/models': 'GET', '/v1/completions': 'POST', '/tokenize': 'POST' }[path];
      if (!method) throw new HttpError(404, 'NotFoundError', `no such endpoint: ${req.method} ${path}`);
      if (req.method !== method) throw new HttpError(405, 'MethodNotAllowed', `${path} takes ${method}`, { allow: method });
      if (path !== '/health' && this.o.token !== null && !authorized(req.headers.authorization, this.o.token))
        throw new HttpError(401, 'Unauthorized', 'missing or wrong bearer token', { 'www-authenticate': 'Bearer' });
      if (path === '/health') {
        if (this.teacher.failure) throw new HttpError(503, 'ServiceUnavailable', this.teacher.failure.message);
        return send(res, 200, {});
      }
      if (path === '/v1/models') return send(res, 200, this.models());
      if (path === '/tokenize')
        return send(res, 200, tokenizeAnswer(this.teacher.tokenizer, await readJson(req, this.o.maxBodyBytes), { modelName: this.o.modelName, maxModelLen: this.o.maxSeqLen, fail: (s, m) => (s === 404 ? new HttpError(404, 'NotFoundError', m) : bad(m)) }));
      const body = await readJson(req, this.o.maxBodyBytes);
      this.completions++;
      const answer = await this.complete(body);
      return send(res, 200, answer, this.draining ? { connection: 'close' } : {});
    } catch (e) {
      const err = e instanceof HttpError ? e : this.internal(e);
      if (err.status >= 500 && !this.draining) this.o.log('error', `teacher server: ${err.message}`);
      send(res, err.status, { object: 'error', message: err.message, type: err.type, param: null, code: err.status }, { ...err.headers, ...(this.draining ? { connection: 'close' } : {}) });
      if (err.status === 413) res.once('finish', () => req.socket.destroy()); // read no more of it
    }
  }

  private internal(e: unknown): HttpError {
    const msg = e instanceof Error ? e.message : String(e);
    return this.teacher.failure ? new HttpError(503, 'ServiceUnavailable', msg) : new HttpError(500, 'InternalServerError', msg);
  }

  private models() {
    const id = this.o.modelName;
    return { object: 'list', data: [{ id, object: 'model', created: Math.floor(Date.now() / 1000), owned_by: 'opd', root: id, parent: null, max_model_len: this.o.maxSeqLen, permission: [] }] };
  }

  private async complete(body: unknown) {
    const lim = { vocab: this.teacher.identity.vocabSize, maxSeqLen: this.o.maxSeqLen, maxLogprobs: this.teacher.topK, modelName: this.o.modelName };
    const c = parseCompletion(body, lim);
    const scores = await this.batcher.submit(c.prompts.map((ids) => ({ ids, start: 1 })), c.k, c.temperature);
    const tokens = c.prompts.reduce((s, p) => s + p.length, 0);
    return {
      id: `cmpl-${randomUUID().replaceAll('-', '')}`,
      object: 'text_completion',
      created: Math.floor(Date.now() / 1000),
      model: this.o.modelName,
      choices: c.prompts.map((ids, i) => ({
        index: i,
        text: '',
        logprobs: null,
        finish_reason: 'length',
        stop_reason: null,
        prompt_logprobs: [null, ...scores[i]!.logprobs.map((lp, t) => this.position(ids[t + 1]!, lp, scores[i]!, t))],
      })),
      usage: { prompt_tokens: tokens, total_tokens: tokens, completion_tokens: 0 },
    };
  }

  /** One prompt_logprobs entry: the top-k with ranks 1..k, and the actual token (rank null outside the top-k). */
  private position(id: number, lp: number, s: TeacherScore, t: number) {
    const out: Record<string, { logprob: number; rank: number | null; decoded_token: string }> = {};
    const ids = s.topIds?.[t] ?? [];
    ids.forEach((alt, j) => (out[alt] = { logprob: s.topLogprobs![t]![j]!, rank: j + 1, decoded_token: this.decode(alt) }));
    const j = ids.indexOf(id);
    out[id] = { logprob: lp, rank: j >= 0 ? j + 1 : null, decoded_token: this.decode(id) };
    return out;
  }

  private decode(id: number): string {
    let s = this.decoded.get(id);
    if (s === undefined) this.decoded.set(id, (s = this.teacher.tokenizer.decode([id])));
    return s;
  }
}

function send(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.destroyed || res.socket?.destroyed) return; // the client went away, or the drain period cut it
  if (res.headersSent) return void res.end();
  const text = JSON.stringify(body);
  const close = status === 413 ? { connection: 'close' } : {};
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...close, ...headers });
  res.end(text);
}

/** The body as JSON; 413 as soon as it is known to exceed `limit` bytes (nothing more is buffered). */
function readJson(req: http.IncomingMessage, limit: number): Promise<unknown> {
  const tooBig = () => new HttpError(413, 'RequestEntityTooLarge', `request body over the limit of ${limit} bytes`);
  if (Number(req.headers['content-length']) > limit) return Promise.reject(tooBig());
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (c: Buffer) => {
      size += c.length;
      if (size <= limit) return void chunks.push(c);
      req.off('data', onData);
      req.pause();
      reject(tooBig());
    };
    req.on('data', onData);
    req.once('error', reject);
    req.once('end', () => {
      if (size > limit) return;
      try {
        resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')));
      } catch (e) {
        reject(bad(`the body is not valid JSON (${(e as Error).message})`));
      }
    });
  });
}
