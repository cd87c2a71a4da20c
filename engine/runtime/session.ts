// The ONNX Runtime adapter: the only module that imports onnxruntime-node. A Session loads one
// model and runs it on HostTensors; ort types never leave this file.
//
// Contracts:
// - Feeds are checked before ORT sees them: every declared input present, no unknown names (with a
//   "did you mean"), dtypes and fixed dims as declared. Feeds are not copied: ORT reads the arrays.
// - A HostTensor passed in `fetches` is written in place and returned as the same object. (The
//   1.30 node binding also hands back a fresh copy of it, which we drop; see runtime tests.)
// - ORT failures become RuntimeError naming the session and the op/node/input ORT mentions.
// - An unavailable device is a DeviceUnavailableError naming what to install; never a CPU fallback.
// Leaves out IO binding / device-resident outputs, non-tensor values, run options and
// cancellation: opd feeds and fetches dense host tensors only.

import { readdirSync } from 'node:fs';
import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';
import os from 'node:os';
import { basename, dirname, join } from 'node:path';
import { threadId } from 'node:worker_threads';
import ort from 'onnxruntime-node';
import { type Device, checkDevice, executionProviders, HINTS, isProviderFailure } from './device.ts';
import { DeviceUnavailableError, didYouMean, listNames, RuntimeError, wrapOrtError } from './errors.ts';
import { absoluteNow, ortClock } from './ort-clock.ts';
import { ARRAY_OF, type DType, describe, firstOverlap, fmtDims, type HostData, type HostTensor, isDType, malformed } from './host.ts';

export type { Device } from './device.ts';

export type Optimization = 'all' | 'extended' | 'basic' | 'disabled';
export type LogLevel = 'verbose' | 'info' | 'warning' | 'error' | 'fatal';

/** How to run sessions; one config value per field, shared by every session of a run. */
export interface RuntimeOptions {
  /** Execution device; default 'cpu'. An unavailable device throws DeviceUnavailableError. */
  device?: Device;
  /** Intra-op threads (count); default os.availableParallelism(). */
  threads?: number;
  /** Inter-op threads (count); default 1. ORT uses them only in parallel mode, which we never enable. */
  interOpThreads?: number;
  /** ORT graph optimisation level; default 'all'. */
  optimization?: Optimization;
  /** Enable ORT profiling from session creation; the JSON trace goes to `<profileFile>.<pid>-<thread>-<n>_<timestamp>.json` (see endProfiling). */
  profileFile?: string;
  /** ORT log severity for this session; default 'warning' (ORT's own default). */
  logLevel?: LogLevel;
  /**
   * Turn off MLAS prepacking of constant weights. Sessions sharing memory-mapped initializers need
   * it: prepacking gives each session a private packed copy of every weight.
   */
  disablePrepacking?: boolean;
  /**
   * Keep ORT's CPU memory arena (default true). Off, a run's buffers go back to the system when it
   * ends: for many sessions that each run rarely (one per vocabulary chunk), whose arenas would
   * otherwise each keep their peak.
   */
  memArena?: boolean;
}

export interface SessionOptions extends RuntimeOptions {
  /** Name used in errors and ORT logs; default the model file's base name, else "session". */
  name?: string;
}

/** A declared graph input or output, from ORT's metadata. */
export interface ValueInfo {
  readonly name: string;
  /** ORT's element type ('float32', 'int8', ...), or null when unknown or not a tensor. */
  readonly type: string | null;
  /** The type as a DType, or null when HostTensor cannot hold it (or it is unknown). */
  readonly dtype: DType | null;
  /** Declared dims: number = fixed, string = symbolic. [] means scalar OR unknown: ORT does not tell them apart. */
  readonly shape: ReadonlyArray<number | string>;
}

/** Output names to fetch, or output name -> pre-allocated HostTensor to write into (null = allocate). */
export type Fetches = readonly string[] | Readonly<Record<string, HostTensor | null>>;

const LOG_SEVERITY: Record<LogLevel, 0 | 1 | 2 | 3 | 4> = { verbose: 0, info: 1, warning: 2, error: 3, fatal: 4 };
const OPTIMIZATIONS: readonly Optimization[] = ['all', 'extended', 'basic', 'disabled'];
/** Numbers each profiled session (with pid and thread) so its trace file can be found again: the JS API drops ORT's path. */
let profileSeq = 0;

export class Session {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  readonly inputs: readonly ValueInfo[];
  readonly outputs: readonly ValueInfo[];
  private readonly inputByName: ReadonlyMap<string, ValueInfo>;
  private readonly outputByName: ReadonlyMap<string, ValueInfo>;
  private released = false;

  private constructor(
    private readonly inner: ort.InferenceSession,
    readonly name: string,
    readonly device: Device,
    /** ORT's profile-file prefix while profiling is on, else null. */
    private profilePrefix: string | null,
  ) {
    this.inputNames = [...inner.inputNames];
    this.outputNames = [...inner.outputNames];
    this.inputs = valueInfos(inner.inputNames, inner.inputMetadata);
    this.outputs = valueInfos(inner.outputNames, inner.outputMetadata);
    this.inputByName = new Map(this.inputs.map((v) => [v.name, v]));
    this.outputByName = new Map(this.outputs.map((v) => [v.name, v]));
  }

  /** Load a model from ONNX bytes or a file path (use a path for models with external data). */
  static async create(model: Uint8Array | string, opts: SessionOptions = {}): Promise<Session> {
    const name = opts.name ?? (typeof model === 'string' ? basename(model) : 'session');
    const device = opts.device ?? 'cpu';
    checkDevice(name, device, ort.listSupportedBackends());
    const profilePrefix = opts.profileFile === undefined ? null : `${opts.profileFile}.${process.pid}-${threadId}-${++profileSeq}`;
    const options = ortOptions(name, opts, profilePrefix);
    let inner: ort.InferenceSession;
    try {
      inner = typeof model === 'string' ? await ort.InferenceSession.create(model, options) : await ort.InferenceSession.create(model, options);
    } catch (e) {
      throw creationError(name, device, e);
    }
    return new Session(inner, name, device, profilePrefix);
  }

  input(name: string): ValueInfo | undefined {
    return this.inputByName.get(name);
  }

  output(name: string): ValueInfo | undefined {
    return this.outputByName.get(name);
  }

  /**
   * Run once. Without `fetches`, returns every output. Pre-allocated tensors in `fetches` are
   * written in place and returned as the same objects.
   */
  async run(feeds: Readonly<Record<string, HostTensor>>, fetches?: Fetches): Promise<Record<string, HostTensor>> {
    if (this.released) throw new RuntimeError(this.name, 'run() after release()');
    const ortFeeds = this.toOrtFeeds(feeds);
    const { ortFetches, prealloc } = this.toOrtFetches(fetches);
    this.checkNoOverlap(feeds, prealloc);
    let out: ort.InferenceSession.ReturnType;
    const t0 = ortClock.enabled ? absoluteNow() : 0;
    try {
      out = ortFetches === undefined ? await this.inner.run(ortFeeds) : await this.inner.run(ortFeeds, ortFetches);
    } catch (e) {
      throw wrapOrtError(this.name, 'run', e);
    }
    if (ortClock.enabled) ortClock.record(t0, absoluteNow());
    const result: Record<string, HostTensor> = {};
    for (const [name, value] of Object.entries(out)) result[name] = prealloc.get(name) ?? this.toHost(name, value);
    for (const t of prealloc.values()) bindingCopies.note(t.data.byteLength);
    for (const t of Object.values(feeds)) boundaryBytes.in += t.data.byteLength;
    for (const t of Object.values(result)) boundaryBytes.out += t.data.byteLength;
    return result;
  }

  /**
   * Stop profiling and write ORT's JSON trace; returns its path, or null if profiling was off (or
   * already ended). release() does this too.
   */
  endProfiling(): string | null {
    const prefix = this.profilePrefix;
    if (prefix === null || this.released) return null;
    this.profilePrefix = null;
    this.inner.endProfiling();
    const start = `${basename(prefix)}_`;
    const found = readdirSync(dirname(prefix)).filter((f) => f.startsWith(start) && f.endsWith('.json')).sort();
    return found.length > 0 ? join(dirname(prefix), found[found.length - 1]!) : null;
  }

  /** Free ORT's memory for this session (writing the profile first, if on). Idempotent. */
  async release(): Promise<void> {
    if (this.released) return;
    this.endProfiling();
    this.released = true;
    await this.inner.release();
  }

  private toOrtFeeds(feeds: Readonly<Record<string, HostTensor>>): Record<string, ort.Tensor> {
    const unknown = Object.keys(feeds).filter((n) => !this.inputByName.has(n));
    const missing = this.inputNames.filter((n) => feeds[n] === undefined);
    if (unknown.length > 0) {
      const u = unknown[0]!;
      // A misspelt feed most likely meant an input nobody fed.
      const hint = didYouMean(u, missing.length > 0 ? missing : this.inputNames);
      throw new RuntimeError(this.name, `unknown feed "${u}"${hint}; declared inputs: ${listNames(this.inputNames)}`, { input: u });
    }
    if (missing.length > 0) {
      throw new RuntimeError(this.name, `missing feed${missing.length > 1 ? 's' : ''} ${listNames(missing)}; every declared input must be fed`, { input: missing[0] });
    }
    const out: Record<string, ort.Tensor> = {};
    for (const info of this.inputs) {
      const t = feeds[info.name]!;
      this.checkValue('input', info, t);
      out[info.name] = toOrt(t);
    }
    return out;
  }

  private toOrtFetches(fetches: Fetches | undefined): { ortFetches?: ort.InferenceSession.FetchesType; prealloc: Map<string, HostTensor> } {
    const prealloc = new Map<string, HostTensor>();
    if (fetches === undefined) return { prealloc };
    const names = isNameList(fetches) ? fetches : Object.keys(fetches);
    const seen = new Set<string>();
    for (const n of names) {
      if (!this.outputByName.has(n)) {
        throw new RuntimeError(this.name, `unknown fetch "${n}"${didYouMean(n, this.outputNames)}; declared outputs: ${listNames(this.outputNames)}`, { output: n });
      }
      if (seen.has(n)) throw new RuntimeError(this.name, `fetch "${n}" requested twice`, { output: n });
      seen.add(n);
    }
    if (isNameList(fetches)) return { ortFetches: [...fetches], prealloc };
    const ortFetches: Record<string, ort.Tensor | null> = {};
    for (const [n, t] of Object.entries(fetches)) {
      if (t === null) {
        ortFetches[n] = null;
        continue;
      }
      this.checkValue('output', this.outputByName.get(n)!, t);
      ortFetches[n] = toOrt(t); // wraps t.data itself, so ORT writes into the caller's array
      prealloc.set(n, t);
    }
    return { ortFetches, prealloc };
  }

  /** ORT reads feeds while writing outputs, so an output buffer over a feed's (or another output's) bytes is refused. */
  private checkNoOverlap(feeds: Readonly<Record<string, HostTensor>>, prealloc: ReadonlyMap<string, HostTensor>): void {
    if (prealloc.size === 0) return;
    const outputs = [...prealloc].map(([n, t]) => [`output "${n}"`, t.data] as const);
    const clash = firstOverlap(outputs, Object.entries(feeds).map(([n, t]) => [`input "${n}"`, t.data] as const));
    if (clash) throw new RuntimeError(this.name, `${clash[0]} and ${clash[1]} share memory; a pre-allocated output needs its own buffer`);
  }

  /** A fed or pre-allocated tensor must be well-formed and agree with what the graph declares. */
  private checkValue(role: 'input' | 'output', info: ValueInfo, t: HostTensor): void {
    const why = malformed(t) ?? mismatch(info, t);
    if (why) throw new RuntimeError(this.name, `${role} "${info.name}": ${why}`, { [role]: info.name });
  }

  private toHost(name: string, value: ort.OnnxValue): HostTensor {
    const t = value as ort.Tensor;
    if (!isDType(t.type)) throw new RuntimeError(this.name, `output "${name}" has type ${t.type}, which HostTensor cannot hold`, { output: name });
    return { dtype: t.type, dims: [...t.dims], data: asHostData(t.type, t.data as HostData) };
  }
}

/**
 * Bytes fed into and returned out of ONNX Runtime by every run in this thread, counted since the
 * process started. On a GPU device each of these bytes would cross PCIe through the binding, so a
 * bench reads the difference over a train step as the transfer a GPU step would pay.
 */
export const boundaryBytes = { in: 0, out: 0 };

/**
 * The 1.30 binding returns a fresh copy of every pre-allocated output, which run() drops. V8 frees
 * those copies only at its next full collection, and it does not count them as pressure soon
 * enough: a layered train step of a 0.6B model drops ~2 GB of them per step. Once the dropped bytes
 * pass `limit`, a full collection runs (V8's gc, exposed at run time), which keeps peak memory at
 * the state's size instead of the state plus a step's worth of copies.
 */
const bindingCopies = {
  dropped: 0,
  limit: 128 * 1024 * 1024,
  gc: null as (() => void) | null,
  note(bytes: number): void {
    this.dropped += bytes;
    if (this.dropped < this.limit) return;
    this.dropped = 0;
    this.gc ??= exposeGc();
    this.gc();
  },
};

/** A full garbage collection now (e.g. after dropping gigabytes of host arrays that V8 would keep a while). */
export function collectGarbage(): void {
  bindingCopies.gc ??= exposeGc();
  bindingCopies.gc();
}

function exposeGc(): () => void {
  if (typeof globalThis.gc === 'function') return globalThis.gc as () => void;
  v8.setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}

function ortOptions(name: string, opts: RuntimeOptions, profilePrefix: string | null): ort.InferenceSession.SessionOptions {
  const threads = opts.threads ?? os.availableParallelism();
  const interOp = opts.interOpThreads ?? 1;
  for (const [k, v] of [['threads', threads], ['interOpThreads', interOp]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new RuntimeError(name, `${k} must be an integer >= 1, got ${v}`);
  }
  const optimization = opts.optimization ?? 'all';
  if (!OPTIMIZATIONS.includes(optimization)) throw new RuntimeError(name, `optimization must be one of ${OPTIMIZATIONS.join(', ')}, got "${optimization}"`);
  const logLevel = opts.logLevel ?? 'warning';
  if (!(logLevel in LOG_SEVERITY)) throw new RuntimeError(name, `logLevel must be one of ${Object.keys(LOG_SEVERITY).join(', ')}, got "${logLevel}"`);
  return {
    executionProviders: executionProviders(opts.device ?? 'cpu'),
    executionMode: 'sequential',
    intraOpNumThreads: threads,
    interOpNumThreads: interOp,
    graphOptimizationLevel: optimization,
    // Train steps rerun the same shapes: the arena keeps buffers across runs and the memory
    // pattern plans them once per input shape. Both are ORT's defaults; stated so they stay on.
    enableCpuMemArena: opts.memArena ?? true,
    enableMemPattern: true,
    enableProfiling: profilePrefix !== null,
    ...(profilePrefix !== null ? { profileFilePrefix: profilePrefix } : {}),
    logId: name,
    logSeverityLevel: LOG_SEVERITY[logLevel],
    ...(opts.disablePrepacking ? { extra: { session: { disable_prepacking: '1' } } } : {}),
  };
}

function creationError(name: string, device: Device, e: unknown): RuntimeError {
  const text = e instanceof Error ? e.message : String(e);
  if (isProviderFailure(device, text)) {
    return new DeviceUnavailableError(name, device, `ONNX Runtime could not start it: ${text.trim()}`, HINTS[device], { cause: e });
  }
  return wrapOrtError(name, 'loading the model', e);
}

function valueInfos(names: readonly string[], meta: readonly ort.InferenceSession.ValueMetadata[] | undefined): ValueInfo[] {
  const byName = new Map((meta ?? []).map((m) => [m.name, m]));
  return names.map((name) => {
    const m = byName.get(name);
    if (!m?.isTensor) return { name, type: null, dtype: null, shape: [] };
    return { name, type: m.type, dtype: isDType(m.type) ? m.type : null, shape: [...m.shape] };
  });
}

/**
 * How `t` disagrees with a declared input/output's type and fixed dims, or null if it fits (or
 * nothing is declared). Symbolic dims match anything.
 */
export function mismatch(info: ValueInfo, t: Pick<HostTensor, 'dtype' | 'dims'>): string | null {
  if (info.type === null) return null;
  const declared = `${info.type}${fmtDims(info.shape)}`;
  if (info.dtype === null) return `declared ${declared}, which HostTensor cannot hold`;
  if (info.dtype !== t.dtype || !dimsFit(info.shape, t.dims)) return `declared ${declared} but got ${describe(t)}`;
  return null;
}

/** Declared [] may mean "unknown", so only a declared rank is checked, and only fixed dims in it. */
function dimsFit(declared: ReadonlyArray<number | string>, dims: readonly number[]): boolean {
  if (declared.length === 0) return true;
  return declared.length === dims.length && declared.every((d, i) => typeof d !== 'number' || d === dims[i]);
}

function toOrt(t: HostTensor): ort.Tensor {
  return new ort.Tensor(t.dtype, t.data, t.dims);
}

/** ORT may hand float16 back as a Float16Array where the runtime has one; keep our Uint16Array bits. */
function asHostData(dtype: DType, data: HostData): HostData {
  const ctor = ARRAY_OF[dtype];
  if (data instanceof ctor) return data;
  const view = data as unknown as ArrayBufferView & { length: number };
  return new (ctor as unknown as new (b: ArrayBufferLike, o: number, n: number) => HostData)(view.buffer, view.byteOffset, view.length);
}

function isNameList(f: Fetches): f is readonly string[] {
  return Array.isArray(f);
}
