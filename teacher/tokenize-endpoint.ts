// vLLM's POST /tokenize, both sides: the answer `opd teacher serve` and the fake vLLM give, and the
// client check an HTTP teacher runs against it (docs/reliability.md R9, gap 1).
//
// Request (vLLM's TokenizeCompletionRequest / TokenizeChatRequest): {model?, prompt: string,
// add_special_tokens?: bool = true, return_token_strs?: bool} or {model?, messages: [{role, content}],
// add_generation_prompt?: bool = true, add_special_tokens?: bool = false, return_token_strs?}. Answer:
// {count, max_model_len, tokens: ids, token_strs?: vocabulary strings}.
//
// checkServerTokenizer: the server's ids for a few probe texts must equal the configured tokenizer's
// (the directory opd aligns and renders with); a server without /tokenize (404/405, e.g. SGLang) is
// reported as unchecked, never refused. A difference is an error naming the server, the probe and
// the first differing position.

import type { ChatMessage, Tokenizer } from '../data/tokenizer/types.ts';

/** The /tokenize answer for `body`; `fail(status, message)` builds the error a refusal throws. */
export function tokenizeAnswer(tok: Tokenizer, body: unknown, o: { modelName: string; maxModelLen: number; fail: (status: number, message: string) => Error }): Record<string, unknown> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw o.fail(400, 'the body must be a JSON object');
  const b = body as Record<string, unknown>;
  if (b.model !== undefined && b.model !== null && b.model !== o.modelName) throw o.fail(404, `The model \`${String(b.model)}\` does not exist. This server serves \`${o.modelName}\`.`);
  const flag = (k: string, d: boolean) => {
    if (b[k] === undefined || b[k] === null) return d;
    if (typeof b[k] !== 'boolean') throw o.fail(400, `${k} must be a boolean`);
    return b[k] as boolean;
  };
  let ids: number[];
  if (b.messages !== undefined) {
    const m = b.messages;
    if (!Array.isArray(m) || !m.every((x) => typeof x === 'object' && x !== null && typeof x.role === 'string' && typeof x.content === 'string'))
      throw o.fail(400, 'messages must be an array of {role: string, content: string}');
    let text: string;
    try {
      text = tok.applyChatTemplate(m as ChatMessage[], { addGenerationPrompt: flag('add_generation_prompt', true) });
    } catch (e) {
      throw o.fail(400, (e as Error).message);
    }
    ids = tok.encode(text, { addSpecialTokens: flag('add_special_tokens', false) });
  } else {
    if (typeof b.prompt !== 'string') throw o.fail(400, 'prompt must be a string (or give messages)');
    ids = tok.encode(b.prompt, { addSpecialTokens: flag('add_special_tokens', true) });
  }
  return { count: ids.length, max_model_len: o.maxModelLen, tokens: ids, ...(flag('return_token_strs', false) ? { token_strs: ids.map((id) => tok.idToToken(id) ?? '') } : {}) };
}

const PROBES = ['The answer is 149.', ' leading space and café', '你好 😀\n\tx'];

export type ServerTokenizerCheck = { checked: true } | { checked: false; reason: string };

/** Compare the server's /tokenize ids with `tok`'s for the probe texts; throws on a difference (see the header). */
export async function checkServerTokenizer(
  url: string,
  model: string,
  tok: Tokenizer,
  o: { label: string; apiKey?: string; timeoutMs?: number } = { label: 'the configured tokenizer' },
): Promise<ServerTokenizerCheck> {
  const base = url.replace(/\/+$/, '').replace(/\/v1$/, '');
  for (const prompt of PROBES) {
    let res: Response;
    try {
      res = await fetch(`${base}/tokenize`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(o.apiKey ? { authorization: `Bearer ${o.apiKey}` } : {}) },
        body: JSON.stringify({ model, prompt, add_special_tokens: false }),
        signal: AbortSignal.timeout(o.timeoutMs ?? 30_000),
      });
    } catch (e) {
      return { checked: false, reason: `POST ${base}/tokenize failed: ${(e as Error).message}` };
    }
    if (res.status === 404 || res.status === 405) return { checked: false, reason: `${base} has no /tokenize endpoint (HTTP ${res.status})` };
    const body = (await res.json().catch(() => null)) as { tokens?: unknown } | null;
    if (!res.ok || !body || !Array.isArray(body.tokens)) return { checked: false, reason: `${base}/tokenize answered HTTP ${res.status} without a token list` };
    const want = tok.encode(prompt, { addSpecialTokens: false });
    const got = body.tokens as number[];
    const at = want.findIndex((id, i) => got[i] !== id);
    if (at >= 0 || got.length !== want.length) {
      const i = at >= 0 ? at : Math.min(got.length, want.length);
      throw new Error(
        `the teacher server ${base} (model ${model}) tokenizes ${JSON.stringify(prompt)} differently from ${o.label}: position ${i} is id ${got[i] ?? '(none)'} there, ${want[i] ?? '(none)'} here; give the teacher's own tokenizer directory as its \`tokenizer\``,
      );
    }
  }
  return { checked: true };
}
