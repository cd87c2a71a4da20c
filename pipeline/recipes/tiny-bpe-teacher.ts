// A tiny teacher with ANOTHER tokenizer than the tiny byte-level student: the project's own byte-level
// BPE (data/tokenizer/bpe.ts, merges learned across the task's prompts and answers, ChatML template,
// <|im_end|> as EOS), a fresh tiny model over that vocabulary, SFT'd briefly on the task exactly as
// tiny-job.ts SFTs the byte teacher. For tests and demos of the cross-tokenizer teacher path
// (teacher/aligned.ts; issue 12 item 4's evidence runs): give its directory as a local teacher's
// `path` and the run's preflight takes the aligned path. Deterministic for a seed; nothing downloads.
// Options size it for other tasks (e.g. the demo's 2-digit addition: pipeline/recipes/demo.ts
// DEMO_TASK, a wider model, more SFT steps); run as a script it prints where it wrote the teacher.

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { learnByteBpe, saveByteBpeTokenizer } from '../../data/tokenizer/bpe.ts';
import { loadTokenizer } from '../../data/tokenizer/hf.ts';
import { createTask } from '../../data/tasks/registry.ts';
import { initModelDir, tinyConfig } from '../../student/model/init.ts';
import { saveModelDir } from '../../student/model/weights.ts';
import { runSft, tokenizeSft } from './sft.ts';

export interface TinyBpeTeacherOptions {
  /** Built-in task and its config; default arithmetic, 1 digit, '+' (tiny-job.ts's). */
  task?: string;
  taskConfig?: Record<string, unknown>;
  /** BPE merges; default 48. */
  merges?: number;
  /** Train problems drawn (BPE corpus) and, of those, SFT demonstrations; defaults 80 and 80. */
  pool?: number;
  demos?: number;
  /** Overrides of tiny-job's model config (student/model/init.ts tinyConfig), e.g. {hidden_size: 128}. */
  config?: Record<string, unknown>;
  /** SFT steps, learning rate, batch size; defaults 150, 3e-3, 16. */
  steps?: number;
  lr?: number;
  batchSize?: number;
  seed?: number;
}

/** Create (once) `dir`: a tiny teacher whose tokenizer is a BPE learned on the task; returns `dir`. */
export async function tinyBpeTeacher(dir: string, o: TinyBpeTeacherOptions = {}): Promise<string> {
  if (existsSync(join(dir, 'config.json'))) return dir;
  const task = createTask(o.task ?? 'arithmetic', o.taskConfig ?? { digits: 1, ops: ['+'] });
  const train = task.generate('train', o.pool ?? 80, o.seed ?? 0);
  const tokDir = `${dir}-tokenizer`;
  // no pre-tokenizer split: merges such as "+5" or "=1" make its tokens cut the text where the byte student's do not
  const bpe = await saveByteBpeTokenizer(tokDir, learnByteBpe(train.map((r) => `${r.prompt}${task.demonstration(r)}`), o.merges ?? 48, { split: false }), { split: false });
  const init = await initModelDir(`${dir}-init`, tinyConfig({ ...o.config, vocab_size: bpe.vocabSize, bos_token_id: null, eos_token_id: bpe.eosTokenId, pad_token_id: bpe.padTokenId }), 1 + (o.seed ?? 0));
  const tok = await loadTokenizer(tokDir);
  const recs = train.slice(0, o.demos ?? 80).map((r) => ({ prompt: r.prompt, completion: task.demonstration(r), where: r.id }));
  const { weights } = await runSft(init, tokenizeSft(tok, recs, 256), bpe.padTokenId, { steps: o.steps ?? 150, lr: o.lr ?? 3e-3, warmup: 10, batchSize: o.batchSize ?? 16, seed: o.seed ?? 0, weightDecay: 0, maxGradNorm: 1, runtime: { threads: 1 } });
  await saveModelDir(dir, { config: init.config, weights }, { tokenizerFrom: tokDir });
  return dir;
}

// As a script: `node --import tsx pipeline/recipes/tiny-bpe-teacher.ts OUT_DIR ['{"task": …, "taskConfig": …, "config": …, "steps": …}']`
if (process.argv[1]?.endsWith('tiny-bpe-teacher.ts') && process.argv[2]) {
  const out = await tinyBpeTeacher(process.argv[2], process.argv[3] ? (JSON.parse(process.argv[3]) as TinyBpeTeacherOptions) : {});
  console.log(`teacher with a BPE tokenizer: ${out} (tokenizer ${out}-tokenizer)`);
}
