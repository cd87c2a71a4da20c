// The engine demo (the README's first command until the distillation job lands): a one-block causal
// transformer learns to copy with attention, trained by one emitted ONNX graph (forward, backward
// and AdamW) inside onnxruntime-node. Prints the loss falling and the graph's size.

import { Graph, opHistogram } from './index.ts';
import { Rng } from './rng.ts';
import { hostTensor } from './runtime/host.ts';
import { type BlockConfig, tinyLM } from './testing/toy.ts';
import { finishTrainStep } from './train/graph.ts';
import { Trainer } from './train/trainer.ts';

const cfg: BlockConfig = { dModel: 64, heads: 4, kvHeads: 2, ffn: 128, ropeTheta: 10000, eps: 1e-6 };
const vocab = 16;
const [batch, seq, steps] = [32, 16, 300];

/** Random first halves, repeated: the second half is predictable only by attending back. */
function batchOf(rng: Rng) {
  const n = batch * seq;
  const ids = new BigInt64Array(n), labels = new BigInt64Array(n), pos = new BigInt64Array(n);
  const mask = new Float32Array(n);
  for (let b = 0; b < batch; b++) {
    const head = Array.from({ length: seq / 2 }, () => rng.int(vocab));
    const row = [...head, ...head];
    for (let t = 0; t < seq; t++) {
      ids[b * seq + t] = BigInt(row[t]!);
      labels[b * seq + t] = BigInt(row[(t + 1) % seq]!);
      mask[b * seq + t] = t >= seq / 2 - 1 && t < seq - 1 ? 1 : 0;
      pos[b * seq + t] = BigInt(t);
    }
  }
  const dims = [batch, seq];
  return { input_ids: hostTensor('int64', dims, ids), labels: hostTensor('int64', dims, labels), loss_mask: hostTensor('float32', dims, mask), position_ids: hostTensor('int64', dims, pos) };
}

const g = new Graph('demo');
const model = tinyLM(g, vocab, cfg);
const step = finishTrainStep(g, model.loss, { adamw: { maxGradNorm: 1 } });
const ops = opHistogram(g);
console.log(`train-step graph: ${Object.values(ops).reduce((a, b) => a + b, 0)} ONNX-level ops, ${step.params.length} parameters tensors`);
const trainer = await Trainer.create(step, model.init(new Rng(0)));
const rng = new Rng(1);
const t0 = performance.now();
for (let i = 1; i <= steps; i++) {
  const r = await trainer.step(batchOf(rng), 3e-3);
  if (i === 1 || i % 25 === 0) console.log(`step ${String(i).padStart(3)}  loss ${r.loss.toFixed(4)}  grad_norm ${r.gradNorm.toFixed(3)}`);
}
console.log(`done: ${steps} steps in ${((performance.now() - t0) / 1000).toFixed(1)} s; chance-level loss is ln ${vocab} = ${Math.log(vocab).toFixed(3)}`);
await trainer.release();
