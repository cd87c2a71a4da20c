// The one tokenizer interface used everywhere in opd (tasks, student, teacher, preflight).
//
// Two implementations exist: `ByteTokenizer` (byte.ts, built-in tasks and our own tiny models) and the
// Hugging Face `tokenizer.json` wrapper that `loadTokenizer` (hf.ts) returns. Left out on purpose:
// text pairs, offsets, truncation and padding — opd handles sequences as plain id arrays.

/** One chat turn as chat templates expect it (`role` is usually system/user/assistant). */
export interface ChatMessage {
  role: string;
  content: string;
}

export interface EncodeOptions {
  /** Add the tokenizer's own special tokens (e.g. a leading BOS) the way HF `add_special_tokens` does. Default true. */
  addSpecialTokens?: boolean;
}

export interface DecodeOptions {
  /** Drop special tokens (EOS, PAD, chat markers...) from the text. Default false. */
  skipSpecialTokens?: boolean;
}

export interface ChatTemplateOptions {
  /** Append the prompt that opens the assistant's turn, so the model continues as the assistant. Default false. */
  addGenerationPrompt?: boolean;
  /** Extra variables the template sees, as transformers' `apply_chat_template(**kwargs)` passes them (e.g. `{enable_thinking: false}` for Qwen3). They cannot override `messages`, `add_generation_prompt` or the special-token names. */
  kwargs?: Record<string, unknown>;
}

export interface Tokenizer {
  /** Text → token ids. Special-token strings inside `text` (e.g. from a chat template) map to their ids. */
  encode(text: string, opts?: EncodeOptions): number[];
  /** Token ids → text. Never throws: invalid UTF-8 becomes U+FFFD, ids with no token are skipped. */
  decode(ids: readonly number[], opts?: DecodeOptions): string;
  /** Largest token id + 1. A model's embedding table may be larger (padded); those extra ids have no token. */
  readonly vocabSize: number;
  /** Ids that end a generation (tokenizer_config eos_token plus generation_config eos_token_id). */
  readonly eosTokenIds: number[];
  readonly bosTokenId: number | null;
  readonly padTokenId: number | null;
  /** Special token string → id (added tokens marked special, plus the named bos/eos/pad/unk tokens). */
  readonly specialTokens: Map<string, number>;
  /** The vocabulary's string for `id` (HF byte-level form, e.g. "Ġthe"), or undefined when no token has it. */
  idToToken(id: number): string | undefined;
  /** sha256 hex of the canonical token→id map + special tokens; equal vocabularies give equal fingerprints. */
  fingerprint(): string;
  /** Token string → id for every token, added tokens included. A fresh copy; callers may mutate it. */
  vocab(): Map<string, number>;
  /** Render messages with the model's chat template; throws naming the model dir when it has none. */
  applyChatTemplate(messages: ChatMessage[], opts?: ChatTemplateOptions): string;
}
