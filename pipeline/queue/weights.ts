// Weights by content hash: the controller publishes the weights each step samples with, workers
// fetch them once per hash and keep the latest.
//
// The hash is the sha256 of the weights' safetensors bytes (names sorted by the writer, no
// metadata), so the same weights always have the same hash and a worker verifies what it got.
// The controller serves GET /weights/<hash> over HTTP with a bearer token, or, when a shared
// directory is configured, writes <dir>/<hash>.safetensors atomically. It keeps the two newest
// (the current step's and, one-step-stale, the step before's). What travels is what the trainer
// trains: the whole model, or only the adapters of a LoRA run.

import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { atomicWriteFile } from '../../engine/io/atomic.ts';
import { parseSafetensors, serializeSafetensors } from '../../engine/io/safetensors.ts';
import { type HostTensor, hostTensor } from '../../engine/runtime/host.ts';
import type { WeightsRef } from './wire.ts';

type Views = Record<string, HostTensor>;

/** The safetensors bytes of `views` (float32 as trained) and their sha256. */
export function weightBytes(views: Views): { bytes: Buffer; hash: string } {
  const tensors = Object.entries(views).map(([name, t]) => {
    if (!(t.data instanceof Float32Array)) throw new Error(`weight ${name} is ${t.dtype}; only float32 weights can be published to queue workers`);
    return { name, shape: [...t.dims], data: t.data };
  });
  const bytes = Buffer.concat([...serializeSafetensors(tensors, undefined, '<published weights>')]);
  return { bytes, hash: createHash('sha256').update(bytes).digest('hex') };
}

export interface PublisherOptions {
  /** A directory every worker can read: weights are written there instead of served. */
  dir?: string;
  /** Interface and port the HTTP endpoint binds to; default 127.0.0.1 and any free port. */
  host?: string;
  port?: number;
  /** The URL workers reach the endpoint at; default http://host:port. */
  advertise?: string;
  /** Bearer token of the endpoint; default OPD_WEIGHTS_TOKEN, else a random one per run. */
  token?: string;
}

export class WeightsPublisher {
  private readonly blobs = new Map<string, Buffer>();
  private constructor(
    private readonly o: PublisherOptions,
    private readonly token: string,
    private readonly server: Server | null,
    readonly url: string | undefined,
  ) {}

  static async open(o: PublisherOptions = {}): Promise<WeightsPublisher> {
    const token = o.token ?? process.env.OPD_WEIGHTS_TOKEN ?? randomBytes(24).toString('hex');
    if (o.dir) {
      await mkdir(o.dir, { recursive: true });
      return new WeightsPublisher(o, token, null, undefined);
    }
    let self: WeightsPublisher | null = null;
    const server = createServer((req, res) => {
      const m = /^\/weights\/([0-9a-f]{64})$/.exec(req.url ?? '');
      const auth = Buffer.from(req.headers.authorization ?? '');
      const want = Buffer.from(`Bearer ${token}`);
      if (auth.length !== want.length || !timingSafeEqual(auth, want)) return void res.writeHead(401).end('bearer token required\n');
      const blob = m ? self!.blobs.get(m[1]!) : undefined;
      if (!blob) return void res.writeHead(404).end(`no weights ${m?.[1] ?? req.url}; the controller keeps only the two newest\n`);
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': blob.length }).end(blob);
    });
    const host = o.host ?? '127.0.0.1';
    await new Promise<void>((ok, fail) => server.once('error', fail).listen(o.port ?? 0, host, ok));
    const port = (server.address() as AddressInfo).port;
    self = new WeightsPublisher(o, token, server, o.advertise ?? `http://${host}:${port}`);
    return self;
  }

  /** Publish `views`; returns where workers find them. Publishing the same weights again is free. */
  async publish(views: Views): Promise<WeightsRef> {
    const { bytes, hash } = weightBytes(views);
    if (!this.blobs.has(hash)) {
      if (this.o.dir) await atomicWriteFile(join(this.o.dir, `${hash}.safetensors`), bytes);
      this.blobs.set(hash, this.o.dir ? Buffer.alloc(0) : bytes);
      while (this.blobs.size > 2) {
        const old = this.blobs.keys().next().value!;
        this.blobs.delete(old);
        if (this.o.dir) rmSync(join(this.o.dir, `${old}.safetensors`), { force: true });
      }
    }
    return this.o.dir ? { hash, dir: this.o.dir } : { hash, url: this.url, token: this.token };
  }

  async close(): Promise<void> {
    if (this.server) await new Promise<void>((ok) => this.server!.close(() => ok()));
  }
}

/** A worker's copy of the newest weights it fetched, by hash. */
export class WeightsCache {
  private latest: { hash: string; views: Views } | null = null;

  async get(ref: WeightsRef): Promise<Views> {
    if (this.latest?.hash === ref.hash) return this.latest.views;
    const bytes = await fetchBytes(ref);
    const got = createHash('sha256').update(bytes).digest('hex');
    if (got !== ref.hash) throw new Error(`weights ${ref.hash.slice(0, 12)} from ${ref.url ?? ref.dir}: the bytes hash to ${got.slice(0, 12)}; damaged in transit or replaced`);
    const st = parseSafetensors(bytes, `weights ${ref.hash.slice(0, 12)}`);
    const views: Views = {};
    for (const [name, t] of st.tensors) views[name] = hostTensor('float32', t.shape, t.data as Float32Array);
    this.latest = { hash: ref.hash, views };
    return views;
  }
}

async function fetchBytes(ref: WeightsRef): Promise<Uint8Array> {
  if (ref.dir) {
    const file = join(ref.dir, `${ref.hash}.safetensors`);
    if (!existsSync(file)) throw new Error(`weights ${file} not found: is ${ref.dir} shared with the controller (same path on this machine)?`);
    return readFileSync(file);
  }
  if (!ref.url) throw new Error(`weights ${ref.hash.slice(0, 12)}: the job names neither a URL nor a directory`);
  const res = await fetch(`${ref.url}/weights/${ref.hash}`, { headers: { authorization: `Bearer ${ref.token ?? ''}` } });
  if (!res.ok) throw new Error(`weights ${ref.hash.slice(0, 12)} from ${ref.url}: HTTP ${res.status} ${(await res.text()).trim()}`);
  return new Uint8Array(await res.arrayBuffer());
}
