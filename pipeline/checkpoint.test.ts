// Checkpoint commit protocol: save -> latest -> load is bit-identical (habit 2, R5); a fault thrown in
// each phase leaves the previous checkpoint as the latest and the partial one unloadable (R2); damaged
// files make latestCheckpoint fall back with an error naming the file (R3); keep-last-K deletes only
// after the commit; and a child process killed with SIGKILL -- at each phase, then at seeded random
// moments -- never leaves anything but complete checkpoints, with its temp directories removed by
// cleanTemps (R1/R2). This file is also the child: with OPD_CKPT_CHILD set it runs childMain instead.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, test } from 'node:test';
import { CorruptArtifactError } from '../data/store/shards.ts';
import { saveByteTokenizer } from '../data/tokenizer/byte.ts';
import { Rng } from '../engine/rng.ts';
import { parseConfig, tensorShapes } from '../student/model/config.ts';
import { initWeights, tinyConfig } from '../student/model/init.ts';
import { loadModelDir, weightsEqual } from '../student/model/weights.ts';
import {
  COMMITTED, type CheckpointPhase, type CheckpointState, PHASES, cleanTemps, latestCheckpoint, listCheckpoints,
  loadCheckpoint, saveCheckpoint, stepDirName,
} from './checkpoint.ts';

const THIS_FILE = fileURLToPath(import.meta.url);

/** A complete state whose every part carries `step`, so a mix of two steps cannot pass `assertStateOf`. */
function stateAt(step: number, tokenizerFrom: string, size: 'small' | 'big' = 'small'): CheckpointState {
  const config = parseConfig(tinyConfig(size === 'small' ? { hidden_size: 16, intermediate_size: 32 } : { hidden_size: 128, intermediate_size: 512, num_hidden_layers: 4 }));
  // ~1M parameters when big (12 MB with moments); their values do not matter there, so skip the init draws
  const weights = size === 'small' ? initWeights(config, 1) : new Map(tensorShapes(config).map(([n, sh]) => [n, new Float32Array(sh.reduce((a, b) => a * b, 1)).fill(0.5)]));
  const tensors: Record<string, Float32Array> = {};
  for (const [name, w] of weights) {
    w[0] = step;
    w[w.length - 1] = -step;
    tensors[`m.${name}`] = new Float32Array(w.length).fill(step);
    tensors[`v.${name}`] = new Float32Array(w.length).fill(step / 3);
  }
  tensors[`m.${[...weights.keys()][0]}`]![1] = -0; // bit-exactness: -0 and a subnormal survive
  tensors[`v.${[...weights.keys()][0]}`]![1] = 1e-45;
  return {
    config, weights, optimizer: { t: step, tensors }, rng: { sample: [step, 1, 2, 0xffffffff], shuffle: new Rng(step).state() },
    cursor: { epoch: 2, index: step }, shards: [`${stepDirName(step)}.rollouts`], counters: { skipped: step % 3 }, tokenizerFrom, meta: { note: 'x' },
  };
}

function assertStateOf(step: number, s: CheckpointState): void {
  for (const [name, w] of s.weights) assert.deepEqual([w[0], w[w.length - 1]], [step, -step], `weights ${name} of step ${step}`);
  for (const [name, m] of Object.entries(s.optimizer.tensors)) assert.equal(m[m.length - 1], name.startsWith('m.') ? step : Math.fround(step / 3), name);
  assert.deepEqual([s.optimizer.t, s.rng.sample, s.cursor], [step, [step, 1, 2, 0xffffffff], { epoch: 2, index: step }]);
}

// ---- child mode: save forever (or die at a phase) -------------------------------------------------

async function childMain(runDir: string): Promise<void> {
  const tok = process.env.OPD_CKPT_TOKENIZER!;
  const killAt = process.env.OPD_CKPT_KILL_PHASE as CheckpointPhase | undefined;
  const { latest } = await latestCheckpoint(runDir);
  const first = (latest?.step ?? 0) + 1;
  const template = stateAt(first, tok, 'big');
  process.stdout.write('start\n');
  const deadline = Date.now() + 20_000; // never outlive a parent that died
  for (let step = first; Date.now() < deadline; step++) {
    const s = retarget(template, step);
    const onPhase = (p: CheckpointPhase) => (p === killAt ? process.kill(process.pid, 'SIGKILL') : undefined);
    await saveCheckpoint(runDir, step, s, { keepLast: 2, onPhase: (p) => void onPhase(p) });
    process.stdout.write(`committed ${step}\n`);
  }
}

/** stateAt(step) without redoing the init draws: only the step-carrying values change. */
function retarget(s: CheckpointState, step: number): CheckpointState {
  for (const w of s.weights.values()) [w[0], w[w.length - 1]] = [step, -step];
  for (const [name, m] of Object.entries(s.optimizer.tensors)) m.fill(name.startsWith('m.') ? step : step / 3);
  return { ...s, optimizer: { ...s.optimizer, t: step }, rng: { ...s.rng, sample: [step, 1, 2, 0xffffffff] }, cursor: { epoch: 2, index: step } };
}

if (process.env.OPD_CKPT_CHILD) await childMain(process.env.OPD_CKPT_CHILD);
else registerTests();

// ---- tests --------------------------------------------------------------------------------------

function registerTests(): void {
  const roots: string[] = [];
  after(() => roots.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));
  const newRun = () => {
    const d = fs.mkdtempSync(path.join(os.tmpdir(), 'opd-ckpt-'));
    roots.push(d);
    return d;
  };
  let tokDir = '';
  const tok = async () => {
    if (tokDir === '') await saveByteTokenizer((tokDir = path.join(newRun(), 'tok')));
    return tokDir;
  };
  const temps = (run: string) => fs.readdirSync(path.join(run, 'checkpoints')).filter((n) => n.startsWith('.tmp-'));
  const steps = (run: string) => listCheckpoints(run).map((c) => c.step);

  test('save -> latestCheckpoint -> load is bit-identical, in HF layout, and deterministic', async () => {
    const run = newRun();
    const s = stateAt(7, await tok());
    const saved = await saveCheckpoint(run, 7, s);
    assert.equal(saved.dir, path.join(run, 'checkpoints', 'step-000007'));
    assert.deepEqual(fs.readdirSync(saved.dir).sort(), [COMMITTED, 'model', 'optimizer.safetensors', 'state.json']);
    const { latest, rejected } = await latestCheckpoint(run);
    assert.deepEqual([latest, rejected], [{ step: 7, dir: saved.dir }, []]);
    const l = await loadCheckpoint(latest!.dir);
    assert.ok(weightsEqual(l.weights, s.weights));
    assert.deepEqual(Object.keys(l.optimizer.tensors).sort(), Object.keys(s.optimizer.tensors).sort());
    for (const [name, m] of Object.entries(s.optimizer.tensors)) assert.ok(Buffer.from(l.optimizer.tensors[name]!.buffer).equals(Buffer.from(m.buffer)), name);
    const plain = (x: CheckpointState) => [x.optimizer.t, x.rng, x.cursor, x.shards, x.counters, x.tokenizerFrom, x.meta];
    assert.deepEqual([l.step, ...plain(l)], [7, ...plain(s)]);
    assert.equal(new Rng(l.rng.shuffle!).nextU32(), new Rng(s.rng.shuffle!).nextU32());
    assert.equal(l.config.hiddenSize, 16);
    // model/ is an ordinary HF directory with the tokenizer beside it
    assert.ok(weightsEqual((await loadModelDir(path.join(saved.dir, 'model'))).weights, s.weights));
    assert.ok(fs.existsSync(path.join(saved.dir, 'model', 'tokenizer.json')));
    const manifest = JSON.parse(fs.readFileSync(path.join(saved.dir, COMMITTED), 'utf8'));
    assert.deepEqual(manifest.files.map((f: { path: string }) => f.path),
      ['model/config.json', 'model/model.safetensors', 'model/tokenizer.json', 'model/tokenizer_config.json', 'optimizer.safetensors', 'state.json']);
    // the same state saved elsewhere gives the same bytes (no wall-clock in the checkpoint)
    const again = await saveCheckpoint(newRun(), 7, s);
    assert.ok(fs.readFileSync(path.join(again.dir, COMMITTED)).equals(fs.readFileSync(path.join(saved.dir, COMMITTED))));
  });

  for (const phase of PHASES) {
    test(`a fault in phase "${phase}" leaves step 1 as the latest and step 2 never loadable`, async () => {
      const run = newRun();
      await saveCheckpoint(run, 1, stateAt(1, await tok()));
      const onPhase = async (p: CheckpointPhase, tmp: string) => {
        if (p !== phase) return;
        assert.equal((await latestCheckpoint(run)).latest?.step, phase === 'prune' ? 2 : 1);
        if (fs.existsSync(tmp)) await assert.rejects(loadCheckpoint(tmp), /not a checkpoint directory/);
        throw new Error(`injected at ${p}`);
      };
      await assert.rejects(saveCheckpoint(run, 2, stateAt(2, await tok()), { keepLast: 1, onPhase }), new RegExp(`injected at ${phase}`));
      const { latest, rejected } = await latestCheckpoint(run);
      assert.deepEqual(rejected, []);
      assertStateOf(latest!.step, await loadCheckpoint(latest!.dir));
      // before the commit nothing changed; a fault while pruning leaves the old one (deleted only next time)
      assert.deepEqual(steps(run), phase === 'prune' ? [1, 2] : [1]);
      assert.deepEqual(temps(run), []);
      if (phase === 'prune') {
        await saveCheckpoint(run, 3, stateAt(3, await tok()), { keepLast: 1 });
        assert.deepEqual(steps(run), [3]);
      }
    });
  }

  const damages: Array<[string, string, (f: string) => void, RegExp]> = [
    ['a flipped weight byte', 'model/model.safetensors', (f) => flip(f, -5), /sha256 does not match/],
    ['a truncated optimizer file', 'optimizer.safetensors', (f) => fs.truncateSync(f, fs.statSync(f).size - 4), /size \d+ bytes, COMMITTED says/],
    ['a flipped state.json byte', 'state.json', (f) => flip(f, 10), /sha256 does not match/],
    ['a missing config.json', 'model/config.json', (f) => fs.rmSync(f), /listed in COMMITTED but missing/],
    ['no COMMITTED', COMMITTED, (f) => fs.rmSync(f), /never committed/],
    ['a flipped COMMITTED byte', COMMITTED, (f) => flip(f, 60), /checksum|not valid JSON|not an opd/],
  ];
  for (const [what, rel, damage, reason] of damages) {
    test(`${what} in the newest checkpoint: fall back to the previous one, naming the file`, async () => {
      const run = newRun();
      for (const step of [1, 2]) await saveCheckpoint(run, step, stateAt(step, await tok()));
      const bad = path.join(run, 'checkpoints', stepDirName(2), rel);
      damage(bad);
      const { latest, rejected } = await latestCheckpoint(run);
      assert.equal(latest?.step, 1);
      assert.equal(rejected.length, 1);
      assert.ok(rejected[0]!.error instanceof CorruptArtifactError);
      assert.equal(rejected[0]!.error.file, bad);
      assert.match(rejected[0]!.error.message, reason);
      await assert.rejects(loadCheckpoint(path.join(run, 'checkpoints', stepDirName(2))), CorruptArtifactError);
      assertStateOf(1, await loadCheckpoint(latest!.dir));
      // resuming from 1 and saving 2 again replaces the damaged one
      await saveCheckpoint(run, 2, stateAt(2, await tok()));
      assert.equal((await latestCheckpoint(run)).latest?.step, 2);
      assert.deepEqual(temps(run), []);
    });
  }

  test('every checkpoint damaged: latest is null with one reason each', async () => {
    const run = newRun();
    for (const step of [1, 2]) await saveCheckpoint(run, step, stateAt(step, await tok()));
    for (const step of [1, 2]) flip(path.join(run, 'checkpoints', stepDirName(step), 'state.json'), 3);
    const { latest, rejected } = await latestCheckpoint(run);
    assert.equal(latest, null);
    assert.deepEqual(rejected.map((r) => r.step), [2, 1]);
    assert.equal((await latestCheckpoint(newRun())).latest, null); // a run without checkpoints/
  });

  test('keep-last-K prunes only after the commit; a save below newer steps removes that abandoned timeline', async () => {
    const run = newRun();
    const removed: number[][] = [];
    for (const step of [1, 2, 3, 4]) {
      const onPhase = (p: CheckpointPhase) => void (p === 'prune' && assert.ok(steps(run).includes(step), 'committed before pruning'));
      removed.push((await saveCheckpoint(run, step, stateAt(step, await tok()), { keepLast: 2, onPhase })).removed);
    }
    assert.deepEqual(removed, [[], [], [1], [2]]);
    assert.deepEqual(steps(run), [3, 4]);
    const r = await saveCheckpoint(run, 2, stateAt(2, await tok()), { keepLast: 2 });
    assert.deepEqual([r.removed, steps(run)], [[3, 4], [2]]);
    await assert.rejects(saveCheckpoint(run, 5, stateAt(5, await tok()), { keepLast: 0 }), /keepLast/);
    await assert.rejects(saveCheckpoint(run, 5, { ...stateAt(5, await tok()), rng: { a: [1, 2, 3] as never } }), /rng\.a/);
    assert.deepEqual([steps(run), temps(run)], [[2], []]);
  });

  test('cleanTemps removes leftovers and nothing else', async () => {
    const run = newRun();
    await saveCheckpoint(run, 1, stateAt(1, await tok()));
    const left = path.join(run, 'checkpoints', '.tmp-step-000002-1-ab');
    fs.mkdirSync(path.join(left, 'model'), { recursive: true });
    fs.writeFileSync(path.join(left, 'state.json'), '{');
    assert.deepEqual(await cleanTemps(run), ['.tmp-step-000002-1-ab']);
    assert.deepEqual([steps(run), temps(run)], [[1], []]);
  });

  test('SIGKILL at each phase, then at seeded random moments: only complete checkpoints remain', async () => {
    const run = newRun();
    const tokenizer = await tok();
    const rng = new Rng(20240611);
    const plan = [...PHASES.map((p) => ({ phase: p as CheckpointPhase | undefined, delay: 0 })), ...[0, 1, 2, 3].map(() => ({ phase: undefined, delay: 20 + rng.int(300) }))];
    await saveCheckpoint(run, 1, stateAt(1, tokenizer, 'big'), { keepLast: 2 });
    let lastStep = 1;
    for (const { phase, delay } of plan) {
      await runChild(run, tokenizer, phase, delay);
      const { latest, rejected } = await latestCheckpoint(run);
      assert.deepEqual(rejected, [], `a kill (${phase ?? `${delay} ms`}) left a damaged committed checkpoint`);
      assert.ok(latest !== null && latest.step >= lastStep, `latest ${latest?.step} after ${lastStep}`);
      assertStateOf(latest.step, await loadCheckpoint(latest.dir));
      lastStep = latest.step;
      await cleanTemps(run);
      assert.deepEqual(temps(run), []);
      assert.ok(steps(run).length <= 3, `pruning fell behind: ${steps(run)}`);
    }
    assert.ok(lastStep >= 4, `the children committed too little: ${lastStep}`);
  });

  /**
   * Runs the child until it kills itself at `phase`, or kills it `delay` ms after its first commit
   * (timed from a commit, not from the start, so a slow or busy machine still commits between kills).
   */
  function runChild(run: string, tokenizer: string, phase: CheckpointPhase | undefined, delay: number): Promise<void> {
    const env: NodeJS.ProcessEnv = { ...process.env, OPD_CKPT_CHILD: run, OPD_CKPT_TOKENIZER: tokenizer, OPD_CKPT_KILL_PHASE: phase ?? '' };
    delete env.NODE_TEST_CONTEXT;
    const child = spawn(process.execPath, ['--import', 'tsx', THIS_FILE], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    let armed = false;
    child.stderr.on('data', (d) => (stderr += d));
    child.stdout.on('data', (d) => {
      if (phase === undefined && !armed && String(d).includes('committed')) {
        armed = true;
        setTimeout(() => child.kill('SIGKILL'), delay);
      }
    });
    return new Promise((resolve, reject) => {
      child.on('exit', (code, signal) =>
        signal === 'SIGKILL' ? resolve() : reject(new Error(`child exited with ${code ?? signal}: ${stderr}`)));
    });
  }
}

function flip(file: string, at: number): void {
  const b = fs.readFileSync(file);
  const i = at < 0 ? b.length + at : at;
  b[i] = b[i]! ^ 0x01;
  fs.writeFileSync(file, b);
}
