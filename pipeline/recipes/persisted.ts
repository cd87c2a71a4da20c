// The OPD loop bound to a run directory: resume from the newest verified checkpoint, write one
// rollout shard and one metrics line per step, and commit checkpoints on a cadence and at the end.
//
// Resume: leftover temp dirs are removed, metrics lines after the checkpoint's step are dropped,
// and the loop restarts from the checkpoint's weights, moments, t, RNG state and data cursor, so
// the steps it redoes sample the same prompts and tokens as the interrupted run did. A rollout
// shard already committed for a redone step is kept (it holds the same rows) rather than rewritten.

import { hostTensor } from '../../engine/runtime/host.ts';
import type { Trainer } from '../../engine/train/trainer.ts';
import { rolloutsToTable } from '../../data/schemas.ts';
import { listShards, writeShard } from '../../data/store/shards.ts';
import { cleanTemps, latestCheckpoint, loadCheckpoint, saveCheckpoint } from '../checkpoint.ts';
import { type RunDir, appendMetrics, truncateMetricsAfter } from '../rundir.ts';
import { type LoopState, type OpdHooks, type OpdJob, type StepRecord, runOpd } from './opd.ts';

export interface PersistOptions {
  checkpointEvery: number;
  keepLast: number;
  /** Where the student's tokenizer files come from (copied into every checkpoint). */
  tokenizerFrom: string;
  onStep?: (rec: StepRecord, state: LoopState) => void;
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
    student = { ...job.student, weights: ck.weights };
    resume = {
      state: { ...state, step: ck.step },
      restore: (t: Trainer) =>
        t.importState({ t: ck.optimizer.t, tensors: Object.fromEntries(Object.entries(ck.optimizer.tensors).map(([k, v]) => [k, hostTensor('float32', shapeOf(t, k), v)])) }),
    };
    log(`resuming from ${latest.dir} (step ${ck.step})`);
  } else {
    await truncateMetricsAfter(run.dir, 0);
  }
  const committed = new Set(listShards(run.shards).map((s) => s.file));
  const checkpoint = async (trainer: Trainer, state: LoopState) => {
    const st = trainer.exportState();
    // exportState already copied parameters and moments; split them rather than copying the weights again
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
        rng: { sampler: state.rng },
        cursor: state,
        shards: [...committed],
        counters: { skipped: state.skipped, skippedTotal: state.skippedTotal },
        tokenizerFrom: o.tokenizerFrom,
      },
      { keepLast: o.keepLast },
    );
  };
  const result = await runOpd({ ...job, student }, {
    resume,
    onStep: async (rec, trainer, state) => {
      const name = shardName(rec.step);
      if (!committed.has(`${name}.arrow`)) {
        await writeShard(run.shards, name, rolloutsToTable(rec.rows));
        committed.add(`${name}.arrow`);
      }
      await appendMetrics(run.dir, { step: rec.step, skipped: rec.skipped, ...(rec.skipReason ? { skip_reason: rec.skipReason } : {}), ...rec.metrics });
      if (rec.step % o.checkpointEvery === 0 || rec.step === job.settings.steps) await checkpoint(trainer, state);
      o.onStep?.(rec, state);
    },
  });
  return result;
}

function shapeOf(t: Trainer, name: string): number[] {
  const base = name.replace(/^[mv]\./, '');
  const p = t.spec.params.find((x) => x.name === base);
  if (!p) throw new Error(`checkpoint holds optimizer state "${name}" for a parameter the model does not have`);
  return p.shape;
}
