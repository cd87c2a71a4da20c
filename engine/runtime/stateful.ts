// Runs a train-step session step after step with its state (parameters, optimizer moments) kept
// in two pre-allocated buffers per state tensor: each step feeds buffer A, has ORT write the new
// value into buffer B (a pre-allocated fetch), then swaps. No weights are copied by us per step.
//
// Contracts: the runner owns the session (release() releases it) and the initial tensors' arrays,
// which become buffer A and are overwritten from step 2 on. A step that throws leaves the state as
// it was before the step (ORT only wrote the B buffers). Steps must not overlap.
// Leaves out: device-resident state (IO binding), and state whose shape changes between steps.
// Note: onnxruntime-node 1.30 also returns a fresh copy of every pre-allocated output, which we
// drop, so a step still costs one memcpy of the state inside the binding and times the same as
// with fresh outputs (measured). What double-buffering buys is state in two stable buffers.

import { didYouMean, listNames, RuntimeError } from './errors.ts';
import { cloneTensor, describe, firstOverlap, type HostData, type HostTensor, hostTensor, malformed, sameLayout } from './host.ts';
import { mismatch, type Session } from './session.ts';

export class StatefulRunner {
  /** State input names, in stateMap order. */
  readonly stateNames: readonly string[];
  private readonly outputNames: readonly string[];
  private readonly index: ReadonlyMap<string, number>;
  private cur: HostTensor[];
  private next: HostTensor[];
  private running = false;

  /**
   * @param stateMap pairs [input name, output name]: the output is the input's value after a step.
   * @param initial the starting value of every state input, by input name; the runner takes
   *   ownership of these arrays (pass copies if you need to keep the originals).
   */
  constructor(
    readonly session: Session,
    stateMap: ReadonlyArray<readonly [string, string]>,
    initial: Readonly<Record<string, HostTensor>>,
  ) {
    this.stateNames = stateMap.map(([i]) => i);
    this.outputNames = stateMap.map(([, o]) => o);
    this.index = new Map(this.stateNames.map((n, i) => [n, i]));
    checkStateMap(session, stateMap);
    checkInitial(session, stateMap, initial);
    this.cur = this.stateNames.map((n) => initial[n]!);
    this.next = this.cur.map((t) => hostTensor(t.dtype, t.dims));
  }

  /**
   * One step: `feeds` are the non-state inputs; returns the outputs named in `extraFetches`
   * (loss, metrics). State outputs are not returned: read them with state().
   */
  async step(feeds: Readonly<Record<string, HostTensor>>, extraFetches: readonly string[] = []): Promise<Record<string, HostTensor>> {
    if (this.running) throw this.error('step() called while a step is running; await each step first');
    for (const n of Object.keys(feeds)) {
      if (this.index.has(n)) throw this.error(`feed "${n}" is a state input; the runner feeds it (use setState() to change it)`);
    }
    for (const n of extraFetches) {
      if (this.outputNames.includes(n)) throw this.error(`"${n}" is a state output; read it with state() after the step`);
    }
    const allFeeds: Record<string, HostTensor> = { ...feeds };
    const fetches: Record<string, HostTensor | null> = {};
    this.stateNames.forEach((n, i) => (allFeeds[n] = this.cur[i]!));
    this.outputNames.forEach((n, i) => (fetches[n] = this.next[i]!));
    for (const n of extraFetches) fetches[n] = null;
    this.running = true;
    let out: Record<string, HostTensor>;
    try {
      out = await this.session.run(allFeeds, fetches);
    } finally {
      this.running = false;
    }
    [this.cur, this.next] = [this.next, this.cur];
    return Object.fromEntries(extraFetches.map((n) => [n, out[n]!]));
  }

  /** The current value of a state input. A view: valid only until the next step() (which reuses its buffer). */
  state(name: string): HostTensor {
    return this.cur[this.indexOf(name)]!;
  }

  /** Overwrite a state input's current value (copied in). A HostTensor must match dtype and dims. */
  setState(name: string, value: HostData | HostTensor): void {
    const dst = this.cur[this.indexOf(name)]!;
    const src = 'dtype' in value && 'dims' in value ? value : null;
    if (src && (malformed(src) || !sameLayout(src, dst))) {
      throw this.error(`setState("${name}"): state is ${describe(dst)}, got ${malformed(src) ?? describe(src)}`);
    }
    const data = src ? src.data : (value as HostData);
    if (!(data instanceof (dst.data.constructor as new () => HostData)) || data.length !== dst.data.length) {
      throw this.error(`setState("${name}"): state is ${describe(dst)} (${dst.data.constructor.name} of ${dst.data.length}), got a ${data.constructor.name} of ${data.length}`);
    }
    (dst.data as Float32Array).set(data as Float32Array);
  }

  /** Copies of every state tensor, by input name; safe to keep across steps. */
  snapshot(): Record<string, HostTensor> {
    return Object.fromEntries(this.stateNames.map((n, i) => [n, cloneTensor(this.cur[i]!)]));
  }

  /** Release the session. */
  async release(): Promise<void> {
    await this.session.release();
  }

  private indexOf(name: string): number {
    const i = this.index.get(name);
    if (i === undefined) throw this.error(`"${name}" is not a state input${didYouMean(name, this.stateNames)}; state inputs: ${listNames(this.stateNames)}`);
    return i;
  }

  private error(message: string): RuntimeError {
    return new RuntimeError(this.session.name, `StatefulRunner: ${message}`);
  }
}

/** Every pair names a real input and output, each used once. */
function checkStateMap(session: Session, stateMap: ReadonlyArray<readonly [string, string]>): void {
  const fail = (m: string) => new RuntimeError(session.name, `StatefulRunner: ${m}`);
  const seenIn = new Set<string>();
  const seenOut = new Set<string>();
  for (const [i, o] of stateMap) {
    if (!session.input(i)) throw fail(`state input "${i}" is not a model input${didYouMean(i, session.inputNames)}; inputs: ${listNames(session.inputNames)}`);
    if (!session.output(o)) throw fail(`state output "${o}" is not a model output${didYouMean(o, session.outputNames)}; outputs: ${listNames(session.outputNames)}`);
    if (seenIn.has(i)) throw fail(`state input "${i}" appears twice in the state map`);
    if (seenOut.has(o)) throw fail(`state output "${o}" appears twice in the state map`);
    seenIn.add(i);
    seenOut.add(o);
  }
}

/** One well-formed initial tensor per state input, fitting both declared ends, no shared memory. */
function checkInitial(session: Session, stateMap: ReadonlyArray<readonly [string, string]>, initial: Readonly<Record<string, HostTensor>>): void {
  const fail = (m: string) => new RuntimeError(session.name, `StatefulRunner: ${m}`);
  const names = stateMap.map(([i]) => i);
  for (const n of Object.keys(initial)) {
    if (!names.includes(n)) throw fail(`initial value for "${n}", which is not a state input${didYouMean(n, names)}`);
  }
  for (const [i, o] of stateMap) {
    const t = initial[i];
    if (!t) throw fail(`no initial value for state input "${i}"`);
    const why = malformed(t) ?? mismatch(session.input(i)!, t) ?? mismatch(session.output(o)!, t);
    if (why) throw fail(`initial value of "${i}" (new value "${o}"): ${why}`);
  }
  // Two state tensors over one buffer would be overwritten through each other once buffers swap.
  const clash = firstOverlap(names.map((n) => [n, initial[n]!.data] as const));
  if (clash) throw fail(`initial values of "${clash[0]}" and "${clash[1]}" share memory; pass separate arrays`);
}
