// A LoRA student in a run directory: the frozen base written to `<run>/lora-base/` (rewritten at
// every start; its sessions' .onnx files sit beside it), fresh adapters from the run seed, and at
// the end the two outputs users load: `<run>/lora/adapter/` (PEFT) and `<run>/lora/merged/` (HF).

import path from 'node:path';
import { type FrozenBase, writeFrozenBase } from '../../student/model/frozen.ts';
import { type LoraSpec, checkLoraSpec, initLora, mergeLora, savePeftAdapter } from '../../student/model/lora.ts';
import { type ModelDir, type Weights, saveModelDir } from '../../student/model/weights.ts';

export interface LoraStudent {
  spec: LoraSpec;
  base: FrozenBase;
  adapters: Weights;
}

export async function prepareLoraStudent(runDir: string, student: ModelDir, spec: LoraSpec, seed: number): Promise<LoraStudent> {
  checkLoraSpec(spec, 'student.lora');
  const base = await writeFrozenBase(path.join(runDir, 'lora-base'), student.config, student.weights);
  return { spec, base, adapters: initLora(student.config, spec, seed) };
}

/** Write the PEFT adapter and the merged model; returns the merged weights. */
export async function exportLora(runDir: string, student: ModelDir, spec: LoraSpec, adapters: Weights, baseModel: string): Promise<Weights> {
  const out = path.join(runDir, 'lora');
  await savePeftAdapter(path.join(out, 'adapter'), student.config, spec, adapters, baseModel);
  const merged = mergeLora(student.config, student.weights, adapters, spec);
  await saveModelDir(path.join(out, 'merged'), { config: student.config, weights: merged }, { tokenizerFrom: baseModel });
  return merged;
}
