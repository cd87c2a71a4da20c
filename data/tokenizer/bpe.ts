// A small byte-level BPE tokenizer the project builds itself: a second tokenizer for tests and demos of
// a teacher with another tokenizer and template (issue 12), with no download.
//
// learnByteBpe learns `merges` merges GPT-2 style: texts are split by the GPT-2 pre-tokenizer regex
// (words with their leading space; `split: false` keeps each text whole, so merges may cross words,
// digits and punctuation, and the saved tokenizer then splits nothing either), each piece spelled in the GPT-2 byte alphabet ("Ġ" = space), and
// the most frequent adjacent pair is merged, again and again (ties: the lexicographically smallest
// pair, so the result depends only on the texts). saveByteBpeTokenizer writes a real Hugging Face
// directory: tokenizer.json (BPE over the 256 byte symbols, ids 0..255, then one id per merge, then
// the special tokens; ByteLevel pre-tokenizer with the regex and ByteLevel decoder; no BOS) and
// tokenizer_config.json with a ChatML template (<|im_start|>role\n…<|im_end|>\n) whose end of turn,
// <|im_end|>, is also the EOS — the shape of Qwen's tokenizers, so its rendering differs from the
// byte tokenizer's template as a real teacher's would. Left out: byte fallback (byte-level BPE needs
// none), normalizers, dropout.

import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { atomicWriteFile } from '../../engine/io/atomic.ts';
import { BYTE_TO_UNICODE } from './byte.ts';

export const BPE_SPECIAL_TOKENS = ['<|endoftext|>', '<|im_start|>', '<|im_end|>'] as const;

export const CHATML_TEMPLATE =
  "{%- for message in messages -%}" +
  "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' -}}" +
  "{%- endfor -%}" +
  "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}";

/** GPT-2's pre-tokenizer split (what HF's ByteLevel pre-tokenizer with use_regex applies). */
const GPT2_SPLIT = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

const spell = (piece: string) => [...new TextEncoder().encode(piece)].map((b) => BYTE_TO_UNICODE[b]!);

export interface BpeOptions {
  /** Split texts with the GPT-2 regex before merging (and when encoding); default true. false: merges may cross words, digits and punctuation. */
  split?: boolean;
}

/** `merges` BPE merges learned from `texts` (see the header); fewer when no pair occurs twice. */
export function learnByteBpe(texts: readonly string[], merges: number, o: BpeOptions = {}): [string, string][] {
  const counts = new Map<string, number>();
  for (const t of texts) for (const m of (o.split ?? true) ? (t.match(GPT2_SPLIT) ?? []) : [t]) counts.set(m, (counts.get(m) ?? 0) + 1);
  const words = [...counts].map(([w, n]) => ({ symbols: spell(w), n }));
  const out: [string, string][] = [];
  while (out.length < merges) {
    const pairs = new Map<string, number>();
    for (const w of words) for (let i = 0; i + 1 < w.symbols.length; i++) {
      const key = `${w.symbols[i]}\u0000${w.symbols[i + 1]}`;
      pairs.set(key, (pairs.get(key) ?? 0) + w.n);
    }
    let best: string | null = null;
    let bestN = 1;
    for (const [k, n] of pairs) if (n > bestN || (n === bestN && best !== null && k < best)) [best, bestN] = [k, n];
    if (best === null) break;
    const [a, b] = best.split('\u0000') as [string, string];
    out.push([a, b]);
    for (const w of words) {
      const s: string[] = [];
      for (let i = 0; i < w.symbols.length; i++) {
        if (i + 1 < w.symbols.length && w.symbols[i] === a && w.symbols[i + 1] === b) s.push(a + b), i++;
        else s.push(w.symbols[i]!);
      }
      w.symbols = s;
    }
  }
  return out;
}

/** The tokenizer.json of a byte-level BPE with `merges` (ids: bytes, merges, specials). */
export function byteBpeTokenizerJson(merges: readonly [string, string][], o: BpeOptions = {}): Record<string, unknown> {
  const vocab: Record<string, number> = Object.fromEntries(BYTE_TO_UNICODE.map((ch, id) => [ch, id]));
  let next = 256;
  for (const [a, b] of merges) if (!(a + b in vocab)) vocab[a + b] = next++;
  const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: o.split ?? true };
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: BPE_SPECIAL_TOKENS.map((content, i) => ({ id: next + i, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
    normalizer: null,
    pre_tokenizer: byteLevel,
    post_processor: null,
    decoder: byteLevel,
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab, merges: merges.map(([a, b]) => `${a} ${b}`) },
  };
}

/** Write the BPE's tokenizer.json + tokenizer_config.json (ChatML template, <|im_end|> as EOS) into `dir`. */
export async function saveByteBpeTokenizer(dir: string, merges: readonly [string, string][], o: BpeOptions = {}): Promise<{ vocabSize: number; eosTokenId: number; padTokenId: number }> {
  const json = byteBpeTokenizerJson(merges, o);
  const added = json.added_tokens as { id: number; content: string }[];
  const idOf = (t: string) => added.find((x) => x.content === t)!.id;
  const config = {
    tokenizer_class: 'PreTrainedTokenizerFast',
    bos_token: null,
    eos_token: '<|im_end|>',
    pad_token: '<|endoftext|>',
    unk_token: null,
    clean_up_tokenization_spaces: false,
    added_tokens_decoder: Object.fromEntries(added.map((t) => [String(t.id), { content: t.content, lstrip: false, normalized: false, rstrip: false, single_word: false, special: true }])),
    chat_template: CHATML_TEMPLATE,
  };
  await mkdir(dir, { recursive: true });
  const enc = (x: unknown) => new TextEncoder().encode(JSON.stringify(x, null, 2) + '\n');
  await atomicWriteFile(join(dir, 'tokenizer.json'), enc(json));
  await atomicWriteFile(join(dir, 'tokenizer_config.json'), enc(config));
  return { vocabSize: added.at(-1)!.id + 1, eosTokenId: idOf('<|im_end|>'), padTokenId: idOf('<|endoftext|>') };
}
