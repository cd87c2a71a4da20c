// A local teacher's side of the full-vocabulary divergences (student/train/divergences.ts,
// docs/algorithms.md §5), computed in the trainer's process at train time.
//
// The teacher's full distribution is never stored (151,936 floats per token would dwarf the
// shards): it is recomputed from the teacher's weights on the very sequences the train step packs.
// Per packed batch, one forward of the teacher's decoder WITHOUT its LM head gives its final
// (normed) hidden states [B, T, Dt]; the train graph takes them, with the teacher's head [V, Dt]
// and 1/τ_T, and forms the teacher's logits chunk by chunk beside the student's. The feeds are:
//
//   teacher_hidden           [B, T, Dt]  position-aligned: row t is the state that predicts token t, 0 at t = 0
//   teacher_head             [V, Dt]     lm_head.weight (or the tied embeddings)
//   teacher_inv_temperature  []          1/τ of the teacher (its config's temperature)
//
// The teacher must share the student's tokenizer and vocabulary rows (pipeline/job.ts refuses
// anything else at start, naming the field).

import { compile } from '../engine/exec.ts';
import { Graph, dimAdd, pad, slice } from '../engine/index.ts';
import { type HostTensor, hostTensor } from '../engine/runtime/host.ts';
import type { RuntimeOptions, Session } from '../engine/runtime/session.ts';
import type { ModelConfig } from '../student/model/config.ts';
import { attentionBias, declareWeights, decoder } from '../student/model/lm.ts';
import { weightFeeds } from '../student/model/runner.ts';
import type { Weights } from '../student/model/weights.ts';

type Feeds = Record<string, HostTensor>;

/** The graph: teacher weights, input_ids / attention_mask / position_ids -> teacher_hidden [B, T, Dt] (aligned). */
export function teacherHiddenGraph(c: ModelConfig): Graph {
  const g = new Graph('teacher.hidden');
  const p = declareWeights(g, c, { trainable: false, dtype: 'float32' });
  const ids = g.input('input_ids', ['B', 'T'], 'int64');
  const mask = g.input('attention_mask', ['B', 'T'], 'int64');
  const positions = g.input('position_ids', ['B', 'T'], 'int64');
  const t = ids.shape[1]!;
  const { hidden } = decoder(c, p, { ids, positions, bias: attentionBias(mask, t, t, 'float32') });
  // row t of the output predicts token t: shift the states down by one, zero row at t = 0 (like the log-probs)
  g.output('teacher_hidden', pad(slice(hidden, [0], [dimAdd(t, -1)], [1]), [0, 1, 0, 0, 0, 0]));
  return g;
}

export class TeacherStates {
  private constructor(
    readonly config: ModelConfig,
    private readonly session: Session,
    private readonly weights: Feeds,
    readonly temperature: number,
  ) {}

  /** `model` shares the student's tokenizer and vocabulary rows (checked by the caller); τ_T > 0. */
  static async create(model: { config: ModelConfig; weights: Weights }, o: { temperature?: number; runtime?: RuntimeOptions } = {}): Promise<TeacherStates> {
    const temperature = o.temperature ?? 1;
    if (!(temperature > 0 && Number.isFinite(temperature))) throw new Error(`full-vocabulary teacher: temperature must be a finite number > 0, got ${temperature}`);
    const session = await compile(teacherHiddenGraph(model.config), o.runtime ?? {});
    return new TeacherStates(model.config, session, weightFeeds(model.config, model.weights), temperature);
  }

  get vocabRows(): number {
    return this.config.vocabSize;
  }

  /**
   * The three teacher feeds for a packed batch (its input_ids / attention_mask / position_ids), in
   * `dtype` (the train graph's). Add them before splitMicroBatches: teacher_hidden is [B, T, ·] and
   * is cut with the rows; teacher_head and the temperature are copied into every micro-batch by
   * `withTeacherFeeds`.
   */
  async feeds(batch: Feeds, dtype: 'float32' | 'float64' = 'float32'): Promise<Feeds> {
    const out = await this.session.run({ ...this.weights, input_ids: batch.input_ids!, attention_mask: batch.attention_mask!, position_ids: batch.position_ids! });
    const h = out.teacher_hidden!;
    const headName = this.config.tieWordEmbeddings ? 'model.embed_tokens.weight' : 'lm_head.weight';
    const head = this.weights[headName]!;
    const as = (x: HostTensor) => (dtype === 'float64' ? hostTensor('float64', x.dims as number[], Float64Array.from(x.data as Float32Array)) : x);
    return {
      teacher_hidden: as(h),
      teacher_head: as(head),
      teacher_inv_temperature: dtype === 'float64' ? hostTensor('float64', [], Float64Array.of(1 / this.temperature)) : hostTensor('float32', [], Float32Array.of(1 / this.temperature)),
    };
  }

  release(): Promise<void> {
    return this.session.release();
  }
}

/** Add the teacher feeds to a batch, or to each of its micro-batches (split after teacher_hidden was added). */
export function withTeacherFeeds(parts: Feeds | Feeds[], teacher: Feeds): Feeds | Feeds[] {
  const shared = { teacher_head: teacher.teacher_head!, teacher_inv_temperature: teacher.teacher_inv_temperature! };
  return Array.isArray(parts) ? parts.map((p) => ({ ...p, ...shared })) : { ...parts, ...shared };
}
