// Teachers from plain specs: the one place a LocalTeacher or an HttpTeacher is built. A spec is what
// a run config's teachers[] entry holds (pipeline/config/sources.ts) — {id, kind: local, path,
// tokenizer?, temperature?} or {id, kind: http, url, servedModel, flavor?, tokenizer?, apiKeyEnv?,
// concurrency?, timeoutMs?, retries?, temperature?} — plus what a command may add (topK,
// batchTokens); runtime options (threads, device, the tokenizer an HTTP teacher defaults to, the
// score cache) come separately. `opd run` / `opd resume` / `opd compare` / `opd demo` (through
// pipeline/job.ts), `opd score` and `opd teacher serve` all open their teachers here.
//
// Contracts:
// - openTeacher returns the backend and the tokenizer it scores with: a local teacher's own (its
//   `tokenizer`, else its directory, else the .onnx file's directory), an HTTP teacher's `tokenizer`,
//   else `defaultTokenizer` (the student's), from which its identity (fingerprint, vocabulary size) is
//   taken. An HTTP teacher's server is checked (checkServer: the model is listed, a probe scores; and,
//   where the server has vLLM's /tokenize, its ids for probe texts equal that tokenizer's, else the
//   open fails naming the difference — teacher/tokenize-endpoint.ts) unless `checkServer: false`; its bearer token is read from the environment variable apiKeyEnv
//   names, never from the spec.
// - openTeachers opens every spec at once and, with `cacheDir`, puts each behind the shared score
//   cache (teacher/cache.ts). If any fails to open, those already open are closed and the first
//   error is thrown. Ids must be unique. `single` is the teacher when there is exactly one; with
//   several, `routed` holds them by id with the routes from prompt tags (pipeline/algo/routing.ts).
//   No specs: nothing is opened, no cache either.

import { loadTokenizer } from '../data/tokenizer/hf.ts';
import type { Tokenizer } from '../data/tokenizer/types.ts';
import type { Device } from '../engine/runtime/session.ts';
import { CachedTeacher, ScoreCache } from './cache.ts';
import { type Flavor, HttpTeacher } from './http.ts';
import { LocalTeacher } from './local.ts';
import { checkServerTokenizer } from './tokenize-endpoint.ts';
import type { Teacher } from './types.ts';

interface SpecCommon {
  /** Name used by routing, the score cache and metrics; default "teacher". */
  id?: string;
  /** Tokenizer directory; default: the model's own (local) or `defaultTokenizer` (http). */
  tokenizer?: string;
  /** τ the teacher scores at; default 1. */
  temperature?: number;
}

export interface LocalTeacherSpec extends SpecCommon {
  kind: 'local';
  /** HF model directory, or an ONNX causal-LM file. */
  path: string;
  /** Top-k alternatives computed per position (the most a call may ask for); default 0. */
  topK?: number;
  /** Max tokens per ONNX Runtime run (with pack). */
  batchTokens?: number;
  /** Several sequences per ONNX Runtime run: faster, but scores then depend on their neighbours (teacher/local.ts). */
  pack?: boolean;
}

export interface HttpTeacherSpec extends SpecCommon {
  kind: 'http';
  url: string;
  /** Model name sent to the server and looked up in /v1/models. */
  servedModel: string;
  /** Wire format; default auto. */
  flavor?: Flavor | 'auto';
  /** Environment variable holding the bearer token. */
  apiKeyEnv?: string;
  concurrency?: number;
  timeoutMs?: number;
  retries?: number;
}

export type TeacherSpec = LocalTeacherSpec | HttpTeacherSpec;

export interface TeacherRuntime {
  /** ONNX Runtime threads and device of a local teacher's worker. */
  threads?: number;
  device?: Device;
  /** Tokenizer directory of an HTTP teacher without its own `tokenizer` (the student's). */
  defaultTokenizer?: string;
  /** Check an HTTP teacher's server before returning it; default true. */
  checkServer?: boolean;
  /** Where apiKeyEnv is looked up; default process.env. */
  env?: Readonly<Record<string, string | undefined>>;
  /** An HTTP teacher's retry messages. */
  log?: (message: string) => void;
}

export interface OpenedTeacher<T extends Teacher = Teacher> {
  id: string;
  spec: TeacherSpec;
  /** The backend, or (openTeachers with a cacheDir) the backend behind the score cache. */
  teacher: T;
  /** The tokenizer the teacher's ids mean. */
  tokenizer: Tokenizer;
}

/** Prompt tag → teacher id, and the teacher of untagged prompts (pipeline/algo/routing.ts TeacherRoutes). */
export interface TeacherRouting {
  byTag: Readonly<Record<string, string>>;
  defaultTeacher?: string;
}

export interface OpenTeachers {
  /** In spec order. */
  list: OpenedTeacher[];
  byId: ReadonlyMap<string, Teacher>;
  /** The teacher, when there is exactly one. */
  single: Teacher | null;
  /** Two or more teachers: by id, with the routes that pick one per prompt. */
  routed?: { byId: ReadonlyMap<string, Teacher>; routes: TeacherRouting };
  /** Close every teacher. */
  close(): Promise<void>;
}

export function openTeacher(spec: LocalTeacherSpec, rt?: TeacherRuntime): Promise<OpenedTeacher<LocalTeacher>>;
export function openTeacher(spec: HttpTeacherSpec, rt?: TeacherRuntime): Promise<OpenedTeacher<HttpTeacher>>;
export function openTeacher(spec: TeacherSpec, rt?: TeacherRuntime): Promise<OpenedTeacher<LocalTeacher | HttpTeacher>>;
export async function openTeacher(spec: TeacherSpec, rt: TeacherRuntime = {}): Promise<OpenedTeacher<LocalTeacher | HttpTeacher>> {
  const id = spec.id ?? 'teacher';
  if (spec.kind === 'local') {
    const teacher = await LocalTeacher.open(spec.path, { temperature: spec.temperature, threads: rt.threads, device: rt.device, tokenizer: spec.tokenizer, topK: spec.topK, batchTokens: spec.batchTokens, pack: spec.pack });
    return { id, spec, teacher, tokenizer: teacher.tokenizer };
  }
  const tokDir = spec.tokenizer ?? rt.defaultTokenizer;
  if (tokDir === undefined) throw new Error(`http teacher ${id} (${spec.url}): no tokenizer; give its tokenizer directory`);
  const tokenizer = await loadTokenizer(tokDir);
  const env = rt.env ?? process.env;
  const teacher = new HttpTeacher({
    url: spec.url, model: spec.servedModel, flavor: spec.flavor ?? 'auto', concurrency: spec.concurrency, timeoutMs: spec.timeoutMs, retries: spec.retries, temperature: spec.temperature,
    apiKey: spec.apiKeyEnv ? env[spec.apiKeyEnv] : undefined, identity: { tokenizerFingerprint: tokenizer.fingerprint(), vocabSize: tokenizer.vocabSize }, log: rt.log,
  });
  if (rt.checkServer ?? true) {
    try {
      await teacher.checkServer();
      // R9 gap 1: the server's own tokenizer must be the one opd renders and aligns with (where it has /tokenize)
      const tc = await checkServerTokenizer(spec.url, spec.servedModel, tokenizer, { label: `the tokenizer in ${tokDir}`, apiKey: spec.apiKeyEnv ? env[spec.apiKeyEnv] : undefined, timeoutMs: spec.timeoutMs });
      if (!tc.checked) rt.log?.(`http teacher ${id}: its tokenizer is not checked against ${tokDir}: ${tc.reason}`);
    } catch (e) {
      await teacher.close();
      throw e;
    }
  }
  return { id, spec, teacher, tokenizer };
}

/** Every teacher of `specs`, behind the score cache in `cacheDir` when given; see the header. */
export async function openTeachers(specs: readonly TeacherSpec[], o: TeacherRuntime & { routing?: TeacherRouting; cacheDir?: string; warn?: (message: string) => void } = {}): Promise<OpenTeachers> {
  const ids = specs.map((s) => s.id ?? 'teacher');
  const dup = ids.find((id, i) => ids.indexOf(id) !== i);
  if (dup !== undefined) throw new Error(`teacher id "${dup}" is used twice; every teacher needs its own id`);
  if (specs.length === 0) return { list: [], byId: new Map(), single: null, close: async () => {} };
  const cache = o.cacheDir === undefined ? null : ScoreCache.open(o.cacheDir, o.warn ?? ((m) => process.stderr.write(`warning: ${m}\n`))); // a damaged cache is rebuilt, with this warning
  const settled = await Promise.allSettled(specs.map((s) => openTeacher(s, o)));
  const opened = settled.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) {
    await Promise.allSettled(opened.map((t) => t.teacher.close()));
    throw failed.reason;
  }
  const list: OpenedTeacher[] = opened.map((t) => (cache ? { ...t, teacher: new CachedTeacher(t.teacher, cache) } : t));
  const byId = new Map(list.map((t) => [t.id, t.teacher]));
  const close = async () => {
    await Promise.all(list.map((t) => t.teacher.close()));
  };
  if (list.length === 1) return { list, byId, single: list[0]!.teacher, close };
  return { list, byId, single: null, routed: { byId, routes: { byTag: o.routing?.byTag ?? {}, defaultTeacher: o.routing?.defaultTeacher } }, close };
}
