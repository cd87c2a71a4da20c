// The OPD loop bound to a run directory: resume from the newest verified checkpoint, write one
// rollout shard and one metrics line per step, and commit checkpoints on a cadence and at the end.
//
// A step's rollout shard is committed before the step trains. Resume: leftover temp dirs are
// removed, metrics lines after the checkpoint's step are dropped, and the loop restarts from the
// checkpoint's weights, moments, t and data cursor; a redone step whose shard is committed is
// replayed from it (no generation, no teacher call: R6), later ones are sampled with the same
// per-step seeds as the interrupted run. `shouldStop` (SIGTERM) ends the run after a step with a
// committed checkpoint at that step (R13).

import { hostTensor } from '../../engine/runtime/host.ts';
import type { StepTrainer } from '../../engine/train/trainer.ts';
import { rolloutsToTable, tableToRollouts } from '../../data/schemas.ts';
import { listShards, readShard, writeShard } from '../../data/store/shards.ts';
import { cleanTemps, latestCheckpoint, loadCheckpoint, saveCheckpoint } from '../checkpoint.ts';
import { type RunDir, appendMetrics, truncateMetricsAfter } from '../rundir.ts';
import { type LoopState, type OpdHooks, type OpdJob, type StepRecord, runOpd } from './opd.ts';

export interface PersistOptions {
  checkpointEvery: number;
  keepLast: number;
  /** Where the student's tokenizer files come from (copied into every checkpoint). */
  tokenizerFrom: string;
  /** After each step's metrics line (and checkpoint, if one was due: checkpointSeconds); awaited. */
  onStep?: (rec: StepRecord, state: LoopState, info: { checkpointSeconds?: number }) => void | Promise<void>;
  /** When start-up is over (checkpoint restored, trainer built), before the first step; awaited. */
  onLoopStart?: () => void | Promise<void>;
  /** Checked after each step: true commits a checkpoint there and ends the run (SIGTERM). */
  shouldStop?: () => boolean;
  log?: (msg: string) => void;
}

export const shardName = (step: number) => `step-${String(step).padStart(6, '0')}.rollouts`;

export async function runPersisted(run: RunDir, job: OpdJob, o: PersistOptions) {
  const log = o.log ?? (() => {});
  const removed = await cleanTemps(run.dir);
  if (removed.length) log(`removed ${removed.length} unfinished checkpoint write(s)`);
  const { latest, rejected } = await latestCheckpoint(run.dir);
  for (const r of rejected) log(`ignoring damaged checkpoint ${r.dir}: ${r.error.message}`);
  let resume: OpdHooks['resume'];
  let student = job.student;
  if (latest) {
    const ck = await loadCheckpoint(latest.dir);
    await truncateMetricsAfter(run.dir, ck.step);
    const state = ck.cursor as LoopState;
    const lora = job.student.lora;
    if (!!ck.lora !== !!lora)
      throw new Error(`${latest.dir} is a ${ck.lora ? 'LoRA' : 'full fine-tuning'} checkpoint, but the run config ${lora ? 'trains LoRA adapters' : 'trains the whole model'}; resume with the config the run started with`);
    student = lora ? { ...job.student, lora: { ...lora, adapters: ck.weights } } : { ...job.student, weights: ck.weights };
    resume = {
      state: { ...state, step: ck.step },
      restore: (t: StepTrainer) =>
        t.importState({ t: ck.optimizer.t, tensors: Object.fromEntries(Object.entries(ck.optimizer.tensors).map(([k, v]) => [k, hostTensor('float32', shapeOf(t, k), v)])) }),
    };
    log(`resuming from ${latest.dir} (step ${ck.step})`);
  } else {
    await truncateMetricsAfter(run.dir, 0);
  }
  const committed = new Set(listShards(run.shards).map((s) => s.file));
  const checkpoint = async (trainer: StepTrainer, state: LoopState) => {
    const st = trainer.exportState();
    // exportState gives copies (fused) or views valid until the next step (layered); the checkpoint is
    // written before the next step, so split them rather than copying the weights again
    const optimizer: Record<string, Float32Array> = {};
    const weights = new Map<string, Float32Array>();
    for (const [k, v] of Object.entries(st.tensors)) {
      if (k.startsWith('m.') || k.startsWith('v.')) optimizer[k] = v.data as Float32Array;
      else weights.set(k, v.data as Float32Array);
    }
    await saveCheckpoint(
      run.dir,
      state.step,
      {
        config: job.student.config,
        weights,
        optimizer: { t: st.t, tensors: optimizer },
        rng: {}, // the sampler is reseeded from (seed, step) every step: no state to keep
        cursor: state,
        shards: [...committed],
        counters: { skipped: state.skipped, skippedTotal: state.skippedTotal },
        tokenizerFrom: o.tokenizerFrom,
        ...(job.student.lora ? { lora: { spec: job.student.lora.spec, baseModel: o.tokenizerFrom } } : {}),
      },
      { keepLast: o.keepLast },
    );
  };
  let lastCheckpoint = -1;
  const result = await runOpd({ ...job, student }, {
    resume,
    stored: (step) => (committed.has(`${shardName(step)}.arrow`) ? tableToRollouts(readShard(run.shards, `${shardName(step)}.arrow`)) : null),
    onRollouts: async (step, rows) => {
      await writeShard(run.shards, shardName(step), rolloutsToTable(rows));
      committed.add(`${shardName(step)}.arrow`);
    },
    onStep: async (rec, trainer, state) => {
      await appendMetrics(run.dir, { step: rec.step, skipped: rec.skipped, ...(rec.skipReason ? { skip_reason: rec.skipReason } : {}), ...rec.metrics });
      let checkpointSeconds: number | undefined;
      if (rec.step % o.checkpointEvery === 0 || rec.step === job.settings.steps || o.shouldStop?.()) {
        const t0 = performance.now();
        await checkpoint(trainer, state);
        lastCheckpoint = state.step;
        checkpointSeconds = (performance.now() - t0) / 1e3;
      }
      await o.onStep?.(rec, state, { checkpointSeconds });
    },
    shouldStop: o.shouldStop,
    onStart: o.onLoopStart,
  });
  // a stop request that arrived after the step's own checkpoint decision still ends on a checkpoint
  if (result.stopped && lastCheckpoint !== result.state.step) await checkpoint(result.trainer, result.state);
  return result;
}

function shapeOf(t: StepTrainer, name: string): number[] {
  const base = name.replace(/^[mv]\./, '');
  const p = t.paramSpecs.find((x) => x.name === base);
  if (!p) throw new Error(`checkpoint holds optimizer state "${name}" for a parameter the model does not have`);
  return p.shape;
}
