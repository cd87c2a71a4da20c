// loadTokenizer: a Hugging Face model directory's tokenizer as an opd `Tokenizer`.
//
// The only module that imports `@huggingface/tokenizers` (pure JS; it runs tokenizer.json's normalizer,
// pre-tokenizer, model, post-processor and decoder). On top of it this adds what transformers takes from
// tokenizer_config.json / generation_config.json: the eos/bos/pad roles, the special-token set and the
// chat template (rendered by chat.ts). A directory saved by saveByteTokenizer is recognised by its
// `opd_tokenizer` marker and, once its vocabulary and behaviour check out, served by the faster
// ByteTokenizer. Left out: slow tokenizers (see hf_files.ts), text pairs, offsets, truncation.

import { Tokenizer as HfTokenizer } from "@huggingface/tokenizers";
import { join } from "node:path";
import { BYTE_TOKENIZER_MARKER, ByteTokenizer } from "./byte.ts";
import { ChatTemplate, noChatTemplateError } from "./chat.ts";
import { vocabFingerprint } from "./fingerprint.ts";
import { generationIds, isObject, readTokenizerFiles, tokenName, type TokenizerFiles } from "./hf_files.ts";
import type { ChatMessage, ChatTemplateOptions, DecodeOptions, EncodeOptions, Tokenizer } from "./types.ts";

/** Load `dir`'s tokenizer.json (+ tokenizer_config.json, generation_config.json, chat template). */
export async function loadTokenizer(dir: string): Promise<Tokenizer> {
  const files = await readTokenizerFiles(dir);
  const tokenizer = new HfJsonTokenizer(files);
  return asByteTokenizer(tokenizer, files) ?? tokenizer;
}

class HfJsonTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly eosTokenIds: number[];
  readonly bosTokenId: number | null;
  readonly padTokenId: number | null;
  readonly specialTokens: Map<string, number>;
  private readonly hf: HfTokenizer;
  private readonly vocabMap: Map<string, number>;
  private readonly chat: ChatTemplate | null;
  private readonly dir: string;
  private cachedFingerprint: string | undefined;

  constructor(files: TokenizerFiles) {
    this.dir = files.dir;
    this.hf = buildHf(files);
    this.vocabMap = vocabOf(this.hf);
    this.vocabSize = maxId(this.vocabMap) + 1;
    const named = (key: string) => namedTokenId(files, key, this.hf);
    this.eosTokenIds = [...new Set([named("eos_token"), ...generationIds(files, "eos_token_id")])].filter(
      (id): id is number => id !== null,
    );
    this.bosTokenId = named("bos_token") ?? generationIds(files, "bos_token_id")[0] ?? null;
    this.padTokenId = named("pad_token") ?? generationIds(files, "pad_token_id")[0] ?? null;
    this.specialTokens = specialTokensOf(files, this.hf);
    this.chat = files.chatTemplate === null ? null : new ChatTemplate(files.chatTemplate, templateTokens(files), files.dir);
  }

  encode(text: string, opts: EncodeOptions = {}): number[] {
    return this.hf.encode(text, { add_special_tokens: opts.addSpecialTokens ?? true }).ids;
  }

  decode(ids: readonly number[], opts: DecodeOptions = {}): string {
    // The library throws on an empty list and maps unknown ids to undefined; we skip those ids instead.
    const known = ids.filter((id) => Number.isInteger(id) && this.hf.id_to_token(id) !== undefined);
    if (known.length === 0) return "";
    return this.hf.decode(known, { skip_special_tokens: opts.skipSpecialTokens ?? false });
  }

  idToToken(id: number): string | undefined {
    return this.hf.id_to_token(id);
  }

  vocab(): Map<string, number> {
    return new Map(this.vocabMap);
  }

  fingerprint(): string {
    this.cachedFingerprint ??= vocabFingerprint(this.vocabMap, this.specialTokens);
    return this.cachedFingerprint;
  }

  applyChatTemplate(messages: ChatMessage[], opts?: ChatTemplateOptions): string {
    if (this.chat === null) throw noChatTemplateError(this.dir);
    return this.chat.render(messages, opts);
  }
}

function buildHf(files: TokenizerFiles): HfTokenizer {
  try {
    return new HfTokenizer(withConfigAddedTokens(files), files.config);
  } catch (err) {
    const path = join(files.dir, "tokenizer.json");
    throw new Error(`${path}: @huggingface/tokenizers cannot load it: ${(err as Error).message}`);
  }
}

/**
 * tokenizer.json's added_tokens plus any token that only tokenizer_config.json's added_tokens_decoder
 * lists (transformers registers both); tokenizer.json wins where they disagree.
 */
function withConfigAddedTokens(files: TokenizerFiles): Record<string, unknown> {
  const added = Array.isArray(files.tokenizerJson.added_tokens) ? [...files.tokenizerJson.added_tokens] : [];
  const known = new Set(added.map((t) => (isObject(t) ? t.id : undefined)));
  const decoder = isObject(files.config.added_tokens_decoder) ? files.config.added_tokens_decoder : {};
  for (const [key, token] of Object.entries(decoder)) {
    const id = Number(key);
    if (known.has(id) || !isObject(token) || typeof token.content !== "string") continue;
    added.push({ ...token, id });
  }
  return { ...files.tokenizerJson, added_tokens: added };
}

// get_vocab walks an id-indexed array; sparse ids leave holes that come back as undefined keys.
function vocabOf(hf: HfTokenizer): Map<string, number> {
  const vocab = new Map<string, number>();
  for (const [token, id] of hf.get_vocab(true)) if (typeof token === "string") vocab.set(token, id);
  return vocab;
}

// A loop, not Math.max(...ids): 150k spread arguments can overflow the stack.
function maxId(vocab: Map<string, number>): number {
  let max = -1;
  for (const id of vocab.values()) if (id > max) max = id;
  return max;
}

/** Id of tokenizer_config.json's `<key>` token; a name missing from the vocabulary is an error. */
function namedTokenId(files: TokenizerFiles, key: string, hf: HfTokenizer): number | null {
  const name = tokenName(files, key);
  if (name === null) return null;
  const id = hf.token_to_id(name);
  if (id === undefined) {
    throw new Error(`${join(files.dir, "tokenizer_config.json")}: ${key} "${name}" is not in tokenizer.json's vocabulary`);
  }
  return id;
}

/** Added tokens marked special, plus the named role tokens and additional_special_tokens. */
function specialTokensOf(files: TokenizerFiles, hf: HfTokenizer): Map<string, number> {
  const special = new Map<string, number>();
  for (const [id, token] of hf.get_added_tokens_decoder()) if (token.special) special.set(token.content, id);
  const names = ["bos_token", "eos_token", "pad_token", "unk_token"].map((key) => tokenName(files, key));
  const extra = files.config.additional_special_tokens;
  if (Array.isArray(extra)) for (const t of extra) names.push(typeof t === "string" ? t : isObject(t) ? String(t.content) : null);
  for (const name of names) {
    const id = name === null ? undefined : hf.token_to_id(name);
    if (name !== null && id !== undefined) special.set(name, id);
  }
  return special;
}

function templateTokens(files: TokenizerFiles) {
  return {
    bos_token: tokenName(files, "bos_token"),
    eos_token: tokenName(files, "eos_token"),
    pad_token: tokenName(files, "pad_token"),
    unk_token: tokenName(files, "unk_token"),
  };
}

// A probe that exercises the BOS post-processor, special-token splitting and multi-byte UTF-8.
const BYTE_PROBE = "a é€😀<|user|>x<|eos|>";

/**
 * The ByteTokenizer for a directory written by saveByteTokenizer — only when the marker is present and
 * vocabulary, roles and a probe encoding all agree, so an edited file falls back to the generic path.
 */
function asByteTokenizer(generic: Tokenizer, files: TokenizerFiles): Tokenizer | null {
  if (files.config.opd_tokenizer !== BYTE_TOKENIZER_MARKER || files.chatTemplate === null) return null;
  const byte = new ByteTokenizer({ chatTemplate: files.chatTemplate, source: files.dir });
  const agrees =
    byte.fingerprint() === generic.fingerprint() &&
    byte.vocabSize === generic.vocabSize &&
    JSON.stringify(byte.eosTokenIds) === JSON.stringify(generic.eosTokenIds) &&
    byte.bosTokenId === generic.bosTokenId &&
    byte.padTokenId === generic.padTokenId &&
    JSON.stringify(byte.encode(BYTE_PROBE)) === JSON.stringify(generic.encode(BYTE_PROBE));
  return agrees ? byte : null;
}
