// What the student reads for one record: its prompt rendered with the model's own chat template, or
// the plain prompt, and the ids that come out (issue 12).
//
// Mode (data.chatTemplate): 'auto' renders records that came from conversational data (they carry
// `messages`) and leaves plain-string records as they are; 'always' renders every record (a plain
// prompt becomes one user turn); 'none' never renders (a conversational record is conditioned on its
// plain `prompt`, the last user turn's content). Rendering appends the generation prompt
// (add_generation_prompt) and passes `kwargs` (data.chatTemplateKwargs, e.g. {enable_thinking: false}
// for Qwen3) to the template.
//
// Encoding follows transformers' apply_chat_template(tokenize=True): the rendered text is encoded with
// add_special_tokens=False, because a template writes its own BOS where the model wants one (a second
// BOS would be wrong). A plain prompt is encoded exactly as before: tok.encode(prompt), specials
// included — so plain-string runs keep their bytes.
//
// The template's end of turn (e.g. Qwen3's `<|im_end|>`, Llama 3's `<|eot_id|>`) is found by rendering
// a probe conversation and taking the first special token the template writes after the assistant's
// content; sampling stops there too (chatStopIds), and SFT trains on it (assistantCompletion).

import type { TaskRecord } from './tasks/types.ts';
import type { ChatMessage, Tokenizer } from './tokenizer/types.ts';

export const CHAT_TEMPLATE_MODES = ['auto', 'none', 'always'] as const;
export type ChatTemplateMode = (typeof CHAT_TEMPLATE_MODES)[number];

export interface PromptRenderOptions {
  /** Default 'auto'; see the header. */
  chatTemplate?: ChatTemplateMode;
  /** Extra template variables, e.g. {enable_thinking: false}. */
  chatTemplateKwargs?: Record<string, unknown>;
}

/** Whether `record` is rendered with the chat template under `opts`. */
export function usesTemplate(record: Pick<TaskRecord, 'messages'>, opts: PromptRenderOptions = {}): boolean {
  const mode = opts.chatTemplate ?? 'auto';
  if (!CHAT_TEMPLATE_MODES.includes(mode)) throw new Error(`chatTemplate must be one of ${CHAT_TEMPLATE_MODES.join(', ')}, got ${JSON.stringify(mode)}`);
  return mode === 'always' || (mode === 'auto' && record.messages !== undefined);
}

/** The conversation a rendered record stands for: its messages, or its plain prompt as one user turn. */
export function promptMessages(record: Pick<TaskRecord, 'prompt' | 'messages'>): ChatMessage[] {
  return record.messages ?? [{ role: 'user', content: record.prompt }];
}

/** The prompt string the student encodes for `record` (template + generation prompt, or the plain prompt). */
export function renderPrompt(tok: Tokenizer, record: Pick<TaskRecord, 'prompt' | 'messages'>, opts: PromptRenderOptions = {}): string {
  if (!usesTemplate(record, opts)) return record.prompt;
  return tok.applyChatTemplate(promptMessages(record), { addGenerationPrompt: true, kwargs: opts.chatTemplateKwargs });
}

/** The prompt ids the student is conditioned on; see the header for the special-token rule. */
export function encodePrompt(tok: Tokenizer, record: Pick<TaskRecord, 'prompt' | 'messages'>, opts: PromptRenderOptions = {}): number[] {
  if (!usesTemplate(record, opts)) return tok.encode(record.prompt);
  return tok.encode(renderPrompt(tok, record, opts), { addSpecialTokens: false });
}

const PROBE = '\u0001opd-probe\u0001';

/**
 * The template's end of turn: the first special token it writes after an assistant's content, with its
 * id, or null when it writes none (then EOS ends a completion, as for plain prompts).
 */
export function endOfTurn(tok: Tokenizer, kwargs?: Record<string, unknown>): { text: string; id: number } | null {
  const text = tok.applyChatTemplate([{ role: 'user', content: 'x' }, { role: 'assistant', content: PROBE }], { kwargs });
  const at = text.lastIndexOf(PROBE);
  if (at < 0) return null;
  const after = text.slice(at + PROBE.length);
  let first: { text: string; id: number; at: number } | null = null;
  for (const [s, id] of tok.specialTokens) {
    const i = after.indexOf(s);
    if (s !== '' && i >= 0 && (first === null || i < first.at || (i === first.at && s.length > first.text.length))) first = { text: s, id, at: i };
  }
  return first && { text: first.text, id: first.id };
}

/** Ids sampling stops at: `base` (EOS ids of the tokenizer, generation_config and the model) plus the template's end of turn when templates are used. */
export function chatStopIds(tok: Tokenizer, base: readonly number[], templated: boolean, kwargs?: Record<string, unknown>): number[] {
  if (!templated) return [...base];
  const eot = endOfTurn(tok, kwargs);
  return [...new Set([...base, ...(eot ? [eot.id] : [])])];
}

/**
 * What the template writes for the assistant turn `content` after `record`'s rendered prompt, through
 * its end of turn: SFT's completion text. Found as TRL finds it — render prompt + assistant turn and
 * take what follows the rendered prompt — then cut after the end-of-turn token (what the sampler stops
 * at; a trailing newline after it is never sampled). Null when the template's rendering of the whole
 * conversation does not start with the rendered prompt; callers then use content + end of turn.
 */
export function assistantCompletion(tok: Tokenizer, record: Pick<TaskRecord, 'prompt' | 'messages'>, content: string, opts: PromptRenderOptions = {}): string | null {
  const prompt = renderPrompt(tok, record, opts);
  const full = tok.applyChatTemplate([...promptMessages(record), { role: 'assistant', content }], { kwargs: opts.chatTemplateKwargs });
  if (!full.startsWith(prompt)) return null;
  const rest = full.slice(prompt.length);
  const eot = endOfTurn(tok, opts.chatTemplateKwargs);
  if (!eot) return rest;
  const at = rest.lastIndexOf(eot.text);
  return at < 0 ? rest : rest.slice(0, at + eot.text.length);
}

/**
 * Ids of the assistant reply `content` to the rendered `record`, as the template writes it through its
 * end of turn (assistantCompletion, else content + end of turn); EOS is appended when the template
 * writes no end of turn. What SFT trains on and `opd score` scores for a templated record.
 */
export function encodeAssistantReply(tok: Tokenizer, record: Pick<TaskRecord, 'prompt' | 'messages'>, content: string, opts: PromptRenderOptions = {}): number[] {
  const eot = endOfTurn(tok, opts.chatTemplateKwargs);
  const text = assistantCompletion(tok, record, content, opts) ?? content + (eot?.text ?? '');
  const ids = tok.encode(text, { addSpecialTokens: false });
  const eos = tok.eosTokenIds[0];
  if (!eot && eos !== undefined && ids.at(-1) !== eos) ids.push(eos);
  return ids;
}
