// `opd model init`: write a randomly initialised Hugging Face model directory from a config.json
// (for tests and for small students trained from scratch).
//
// The tokenizer: with vocab_size 264 (the byte tokenizer's) opd writes its byte tokenizer; with
// --tokenizer DIR it copies DIR's tokenizer files (tokenizer.json, tokenizer_config.json, ...; the
// model keeps its own generation_config.json), after checking every token id has an embedding row.
// Any other vocab_size without --tokenizer writes no tokenizer and says so: opd sft / run / generate
// need one in the directory.

import { existsSync, readFileSync, rmSync } from 'node:fs';
import { copyFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BYTE_VOCAB_SIZE } from '../../../data/tokenizer/byte.ts';
import { loadTokenizer } from '../../../data/tokenizer/hf.ts';
import { initModelDir } from '../../../student/model/init.ts';
import { parseConfig } from '../../../student/model/config.ts';
import { TOKENIZER_FILES } from '../../../student/model/weights.ts';
import { num, str } from '../args.ts';
import { type Command, UsageError } from '../command.ts';

/** Tokenizer files copied by --tokenizer (the model's generation_config.json is its own). */
const COPIED = TOKENIZER_FILES.filter((f) => f !== 'generation_config.json');

/** Check `dir` holds a tokenizer whose ids all fit `vocabSize` embedding rows; returns its size. */
async function checkTokenizer(dir: string, vocabSize: number): Promise<number> {
  const tok = await loadTokenizer(dir);
  if (tok.vocabSize > vocabSize)
    throw new Error(`--tokenizer ${dir}: its ids go up to ${tok.vocabSize - 1}, but vocab_size is ${vocabSize}: the model needs a row per token id; set vocab_size ≥ ${tok.vocabSize}`);
  return tok.vocabSize;
}

/** Replace the tokenizer files of `out` with those of `from`. */
async function copyTokenizer(from: string, out: string): Promise<void> {
  for (const f of COPIED) {
    if (existsSync(join(from, f))) await copyFile(join(from, f), join(out, f));
    else rmSync(join(out, f), { force: true });
  }
}

export const modelInit: Command = {
  name: 'model init',
  summary: 'write a random-init HF model directory (config.json, model.safetensors, tokenizer) from a config.json',
  usage: 'model init --config CONFIG.json --out DIR [--seed N] [--tokenizer TOKENIZER_DIR]',
  options: { config: { type: 'string' }, out: { type: 'string' }, seed: { type: 'string' }, tokenizer: { type: 'string' } },
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
    const from = str(values, 'tokenizer', null);
    const tokens = from === null ? null : await checkTokenizer(from, c.vocabSize);
    const written = await initModelDir(out, raw, num(values, 'seed', 0, { int: true, min: 0 }));
    if (from !== null) await copyTokenizer(from, out);
    console.log(`wrote ${out}: ${c.arch}, ${c.numLayers} layers, d_model ${c.hiddenSize}, vocab ${c.vocabSize}`);
    if (from !== null) console.log(`tokenizer: copied from ${from} (${tokens} token ids)`);
    else if (written.tokenizer === 'byte') console.log('tokenizer: the byte tokenizer (vocab_size 264)');
    else
      console.error(
        `opd model init: no tokenizer written to ${out}: vocab_size ${c.vocabSize} is not the byte tokenizer's ${BYTE_VOCAB_SIZE}. ` +
          `opd sft, run and generate need one there: rerun with --tokenizer DIR (a Hugging Face tokenizer directory), or copy its tokenizer.json and tokenizer_config.json into ${out}`,
      );
  },
};
