// Conversational rows (issue 12): TRL's conversational prompt/completion format and a `messages`
// column, read into a prompt conversation, its plain text, and (for SFT and scoring) the reference
// assistant reply. Pure: no I/O. Every malformed conversation gets a reason that names the field, the
// turn and the fix; load.ts sends it to the rejects file with its line or row.
//
//   {"prompt": [{"role": "system", ...}, {"role": "user", ...}], "completion": [{"role": "assistant", "content": ...}]}
//   {"messages": [{"role": "system", ...}, {"role": "user", ...}, {"role": "assistant", ...}]}
//
// Rules: a conversation is a non-empty list of {role, content} objects, role one of system / user /
// assistant, content a string (extra keys such as "name" are ignored); the prompt part ends with a
// user turn whose content is not blank. `messages`: a final assistant turn is the reference reply —
// SFT trains on it, `opd score` scores it; `opd run` / `opd eval` condition on the turns before it
// and ignore it. A completion is one assistant turn (a list of exactly one {role: "assistant"}), or a
// string (the assistant's content). The record's plain `prompt` is the last user turn's content.

import type { ChatMessage } from '../tokenizer/types.ts';
import { describeValue } from '../rewards/user.ts';

export const CHAT_ROLES = ['system', 'user', 'assistant'] as const;

type Reason = { reason: string };

/** Arrow struct rows and Parquet objects come in as objects; anything with toJSON becomes its JSON. */
const plain = (v: unknown): unknown => (v !== null && typeof v === 'object' && !Array.isArray(v) && typeof (v as { toJSON?: unknown }).toJSON === 'function' ? (v as { toJSON(): unknown }).toJSON() : v);

/** A list of {role, content} turns from field `name`, or why it is not one. */
export function readMessages(value: unknown, name: string, orString = false): ChatMessage[] | Reason {
  const v = plain(value);
  if (!Array.isArray(v)) return { reason: `field "${name}" must be ${orString ? 'a string or ' : ''}a list of {role, content} messages, got ${describeValue(v)}` };
  if (v.length === 0) return { reason: `field "${name}" is an empty conversation` };
  const out: ChatMessage[] = [];
  for (const [i, raw] of v.entries()) {
    const m = plain(raw);
    const at = `field "${name}" message ${i}`;
    if (m === null || typeof m !== 'object' || Array.isArray(m)) return { reason: `${at} must be a {role, content} object, got ${describeValue(m)}` };
    const { role, content } = m as Record<string, unknown>;
    if (typeof role !== 'string' || !(CHAT_ROLES as readonly string[]).includes(role))
      return { reason: `${at}: role must be one of ${CHAT_ROLES.join(', ')}, got ${describeValue(role)}` };
    if (typeof content !== 'string') return { reason: `${at} (${role}): content must be a string, got ${describeValue(content)}` };
    out.push({ role, content });
  }
  return out;
}

/** Check that `messages` can be a prompt: it ends with a non-blank user turn. Returns its plain text. */
function promptText(messages: ChatMessage[], name: string): string | Reason {
  const last = messages.at(-1)!;
  if (last.role !== 'user') return { reason: `field "${name}": a prompt conversation must end with a user turn, got ${last.role}` };
  if (last.content.trim() === '') return { reason: `field "${name}": the last user turn is empty` };
  return last.content;
}

export interface Conversation {
  /** The last user turn's content. */
  prompt: string;
  /** The prompt turns (no final assistant turn). */
  messages: ChatMessage[];
  /** The reference assistant content: the completion, or messages' final assistant turn; undefined when there is none. */
  completion?: string;
}

/** A prompt given as a conversation in field `name` (TRL's conversational "prompt"). */
export function readPromptConversation(value: unknown, name: string): Conversation | Reason {
  const messages = readMessages(value, name, true);
  if ('reason' in messages) return messages;
  const prompt = promptText(messages, name);
  return typeof prompt === 'string' ? { prompt, messages } : prompt;
}

/** A `messages` column: a final assistant turn, when there is one, becomes `completion`. */
export function readMessagesColumn(value: unknown, name: string): Conversation | Reason {
  const all = readMessages(value, name);
  if ('reason' in all) return all;
  const last = all.at(-1)!;
  const messages = last.role === 'assistant' ? all.slice(0, -1) : all;
  if (messages.length === 0) return { reason: `field "${name}" has only an assistant turn; it needs a user turn before it` };
  const prompt = promptText(messages, name);
  if (typeof prompt !== 'string') return prompt;
  return last.role === 'assistant' ? { prompt, messages, completion: last.content } : { prompt, messages };
}

/** A completion: one assistant turn (as a one-element list) or a string; `conversational` says whether the prompt was a conversation. */
export function readCompletion(value: unknown, name: string, conversational: boolean): string | Reason {
  const v = plain(value);
  if (typeof v === 'string') return v;
  if (!Array.isArray(v)) return { reason: `field "${name}" must be a string or a list with one {"role": "assistant", "content": ...} message, got ${describeValue(v)}` };
  if (!conversational) return { reason: `field "${name}" is a list of messages but the prompt is a plain string; make both conversational or both strings` };
  const messages = readMessages(v, name);
  if ('reason' in messages) return messages;
  if (messages.length !== 1 || messages[0]!.role !== 'assistant')
    return { reason: `field "${name}" must be exactly one assistant turn, got ${messages.map((m) => m.role).join(', ')}` };
  return messages[0]!.content;
}
