// `opd model init`: write a randomly initialised Hugging Face model directory from a config.json
// (for tests and for small students trained from scratch).

import { readFileSync } from 'node:fs';
import { initModelDir } from '../../../student/model/init.ts';
import { parseConfig } from '../../../student/model/config.ts';
import { num, str } from '../args.ts';
import { type Command, UsageError } from '../command.ts';

export const modelInit: Command = {
  name: 'model init',
  summary: 'write a random-init HF model directory (config.json, model.safetensors, tokenizer) from a config.json',
  usage: 'model init --config CONFIG.json --out DIR [--seed N]',
  options: { config: { type: 'string' }, out: { type: 'string' }, seed: { type: 'string' } },
  async run({ values }) {
    const file = str(values, 'config');
    let raw: Record<string, unknown>;
    try {
      raw = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
    } catch (e) {
      throw new UsageError(`--config ${file}: cannot read a JSON config (${(e as Error).message})`);
    }
    const c = parseConfig(raw, file);
    const out = str(values, 'out');
    await initModelDir(out, raw, num(values, 'seed', 0, { int: true, min: 0 }));
    console.log(`wrote ${out}: ${c.arch}, ${c.numLayers} layers, d_model ${c.hiddenSize}, vocab ${c.vocabSize}`);
  },
};
