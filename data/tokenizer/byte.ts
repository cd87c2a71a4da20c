// ByteTokenizer: the tokenizer of built-in tasks and of the tiny models opd trains itself.
//
// Ids 0..255 are raw UTF-8 bytes; ids 256..263 are special tokens (BYTE_SPECIAL_TOKENS). No merges, no
// normalization: encode is TextEncoder plus special-token splitting, decode is TextDecoder with
// replacement characters, so any id sequence decodes without throwing.
//
// Saved form (saveByteTokenizer): a real Hugging Face `tokenizer.json` — a BPE model with the 256
// GPT-2 byte-level symbols as its vocabulary, no merges, a ByteLevel pre-tokenizer/decoder without the
// split regex, and a TemplateProcessing post-processor that adds <|bos|>. `@huggingface/tokenizers`
// (and Python `tokenizers`) therefore load it as an ordinary tokenizer with the same ids, and our own
// models are normal HF directories. `tokenizer_config.json` carries `"opd_tokenizer": "byte"` so
// loadTokenizer can swap in this faster class once it has checked the vocabulary really matches.
// Left out: byte-fallback and any learned merges (a byte model spends one id per byte by design).

import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { ChatTemplate } from "./chat.ts";
import { vocabFingerprint } from "./fingerprint.ts";
import type { ChatMessage, ChatTemplateOptions, DecodeOptions, EncodeOptions, Tokenizer } from "./types.ts";

/** Special tokens in id order from 256. The two reserved ids keep room for new markers without a resize. */
export const BYTE_SPECIAL_TOKENS = [
  "<|pad|>",
  "<|bos|>",
  "<|eos|>",
  "<|user|>",
  "<|assistant|>",
  "<|system|>",
  "<|reserved_0|>",
  "<|reserved_1|>",
] as const;
export const BYTE_PAD_ID = 256;
export const BYTE_BOS_ID = 257;
export const BYTE_EOS_ID = 258;
/** 256 bytes + 8 specials = 264 = 8·33: a multiple of 8 keeps embedding/logit matmuls aligned. */
export const BYTE_VOCAB_SIZE = 256 + BYTE_SPECIAL_TOKENS.length;

/** The value of `opd_tokenizer` in tokenizer_config.json that marks a saved ByteTokenizer. */
export const BYTE_TOKENIZER_MARKER = "byte";

/**
 * `<|system|>…<|user|>…<|assistant|>…<|eos|>` with no separators: a byte model needs none, and ending
 * each assistant turn with EOS is what teaches it to stop. Unknown roles raise instead of being
 * silently encoded as plain bytes.
 */
export const BYTE_CHAT_TEMPLATE =
  "{%- for message in messages -%}" +
  "{%- if message.role not in ['system', 'user', 'assistant'] -%}" +
  "{{- raise_exception('byte chat template: unknown role ' + message.role) -}}" +
  "{%- endif -%}" +
  "{{- '<|' + message.role + '|>' + message.content -}}" +
  "{%- if message.role == 'assistant' -%}{{- eos_token -}}{%- endif -%}" +
  "{%- endfor -%}" +
  "{%- if add_generation_prompt -%}{{- '<|assistant|>' -}}{%- endif -%}";

/** GPT-2's byte → printable character table, the spelling HF byte-level vocabularies use. */
export const BYTE_TO_UNICODE: readonly string[] = buildByteToUnicode();

function buildByteToUnicode(): string[] {
  const printable = (b: number) => (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
  const table: string[] = [];
  let next = 256;
  for (let b = 0; b < 256; b++) table.push(String.fromCharCode(printable(b) ? b : next++));
  return table;
}

const SPECIAL_SPLIT = new RegExp(`(${BYTE_SPECIAL_TOKENS.map(escapeRegExp).join("|")})`);
const SPECIAL_IDS = new Map<string, number>(BYTE_SPECIAL_TOKENS.map((t, i) => [t, 256 + i]));

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

export interface ByteTokenizerOptions {
  /** Chat template to use instead of BYTE_CHAT_TEMPLATE (e.g. an edited one from a model dir). */
  chatTemplate?: string;
  /** Where this tokenizer came from, named in errors. */
  source?: string;
}

export class ByteTokenizer implements Tokenizer {
  readonly vocabSize = BYTE_VOCAB_SIZE;
  readonly eosTokenIds = [BYTE_EOS_ID];
  readonly bosTokenId = BYTE_BOS_ID;
  readonly padTokenId = BYTE_PAD_ID;
  readonly specialTokens = new Map(SPECIAL_IDS);
  private readonly chat: ChatTemplate;
  private readonly encoder = new TextEncoder();
  // ignoreBOM keeps a leading U+FEFF, as HF's ByteLevel decoder does; fatal:false gives U+FFFD.
  private readonly decoder = new TextDecoder("utf-8", { fatal: false, ignoreBOM: true });
  private cachedFingerprint: string | undefined;

  constructor(opts: ByteTokenizerOptions = {}) {
    const tokens = { bos_token: "<|bos|>", eos_token: "<|eos|>", pad_token: "<|pad|>", unk_token: null };
    this.chat = new ChatTemplate(opts.chatTemplate ?? BYTE_CHAT_TEMPLATE, tokens, opts.source ?? "ByteTokenizer");
  }

  encode(text: string, opts: EncodeOptions = {}): number[] {
    const ids: number[] = (opts.addSpecialTokens ?? true) ? [BYTE_BOS_ID] : [];
    // split() with a capture group keeps the special tokens at odd indices.
    for (const piece of text.split(SPECIAL_SPLIT)) {
      const special = SPECIAL_IDS.get(piece);
      if (special !== undefined) ids.push(special);
      else for (const byte of this.encoder.encode(piece)) ids.push(byte);
    }
    return ids;
  }

  decode(ids: readonly number[], opts: DecodeOptions = {}): string {
    // Specials are dropped before decoding, so bytes on both sides of one join up (as in HF).
    const kept = opts.skipSpecialTokens ? ids.filter((id) => !isSpecialId(id)) : ids;
    let text = "";
    let run: number[] = [];
    for (const id of kept) {
      if (isByteId(id)) run.push(id);
      else if (isSpecialId(id)) {
        text += this.decoder.decode(Uint8Array.from(run)) + BYTE_SPECIAL_TOKENS[id - 256];
        run = [];
      }
      // Any other id has no token (e.g. a padded logit row): skipped, and it does not split a byte run.
    }
    return text + this.decoder.decode(Uint8Array.from(run));
  }

  idToToken(id: number): string | undefined {
    if (isByteId(id)) return BYTE_TO_UNICODE[id];
    return isSpecialId(id) ? BYTE_SPECIAL_TOKENS[id - 256] : undefined;
  }

  vocab(): Map<string, number> {
    const map = new Map<string, number>();
    for (let id = 0; id < BYTE_VOCAB_SIZE; id++) map.set(this.idToToken(id)!, id);
    return map;
  }

  fingerprint(): string {
    this.cachedFingerprint ??= vocabFingerprint(this.vocab(), this.specialTokens);
    return this.cachedFingerprint;
  }

  applyChatTemplate(messages: ChatMessage[], opts?: ChatTemplateOptions): string {
    return this.chat.render(messages, opts);
  }
}

function isByteId(id: number): boolean {
  return Number.isInteger(id) && id >= 0 && id < 256;
}

function isSpecialId(id: number): boolean {
  return Number.isInteger(id) && id >= 256 && id < BYTE_VOCAB_SIZE;
}

/** The HF `tokenizer.json` of the ByteTokenizer (see the header for why it is shaped this way). */
export function byteTokenizerJson(): Record<string, unknown> {
  const byteLevel = { type: "ByteLevel", add_prefix_space: false, trim_offsets: false, use_regex: false };
  const bos = "<|bos|>";
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: BYTE_SPECIAL_TOKENS.map((content, i) => ({
      id: 256 + i,
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    })),
    normalizer: null,
    pre_tokenizer: byteLevel,
    post_processor: {
      type: "TemplateProcessing",
      single: [{ SpecialToken: { id: bos, type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }],
      pair: [
        { SpecialToken: { id: bos, type_id: 0 } },
        { Sequence: { id: "A", type_id: 0 } },
        { Sequence: { id: "B", type_id: 1 } },
      ],
      special_tokens: { [bos]: { id: bos, ids: [BYTE_BOS_ID], tokens: [bos] } },
    },
    decoder: byteLevel,
    model: {
      type: "BPE",
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab: Object.fromEntries(BYTE_TO_UNICODE.map((ch, id) => [ch, id])),
      merges: [],
    },
  };
}

/** The HF `tokenizer_config.json` of the ByteTokenizer, with the opd marker. */
export function byteTokenizerConfig(chatTemplate: string = BYTE_CHAT_TEMPLATE): Record<string, unknown> {
  const decoder = Object.fromEntries(
    BYTE_SPECIAL_TOKENS.map((content, i) => [
      String(256 + i),
      { content, lstrip: false, normalized: false, rstrip: false, single_word: false, special: true },
    ]),
  );
  return {
    opd_tokenizer: BYTE_TOKENIZER_MARKER,
    tokenizer_class: "PreTrainedTokenizerFast",
    bos_token: "<|bos|>",
    eos_token: "<|eos|>",
    pad_token: "<|pad|>",
    unk_token: null,
    // HF's default (true) would rewrite " ." to "." on decode and break byte round trips.
    clean_up_tokenization_spaces: false,
    added_tokens_decoder: decoder,
    chat_template: chatTemplate,
  };
}

/** Write tokenizer.json + tokenizer_config.json into `dir` (created if needed). */
export async function saveByteTokenizer(dir: string, opts: { chatTemplate?: string } = {}): Promise<void> {
  const config = byteTokenizerConfig(opts.chatTemplate);
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, "tokenizer.json"), JSON.stringify(byteTokenizerJson(), null, 2) + "\n");
  await writeFile(join(dir, "tokenizer_config.json"), JSON.stringify(config, null, 2) + "\n");
}
