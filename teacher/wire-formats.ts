// The wire formats the HTTP teacher (teacher/http.ts) speaks, one registry entry per server family:
// where a scoring request goes, what it holds, how an answer is recognised and how it is read into
// one row per sent position. A new server family is one more entry here; the teacher has no
// per-format branches. `auto` tries the entries in registry order.
//
// Formats read from the servers' sources (formats only, no code taken):
// - vLLM request: vllm-project/vllm vllm/entrypoints/openai/completion/protocol.py (CompletionRequest:
//   `prompt` may be list[int], `max_tokens`, `prompt_logprobs`, `temperature`; older releases keep it
//   in vllm/entrypoints/openai/protocol.py). Answer: CompletionResponseChoice.prompt_logprobs =
//   list[dict[int, Logprob] | None], one entry per prompt token, the first None, each keyed by the
//   token id (a string in JSON) and holding the actual token plus the top-k at ranks 1..k; Logprob =
//   {logprob, rank, decoded_token} (vllm/logprobs.py); −inf is sent as −9999.0
//   (clamp_prompt_logprobs in vllm/entrypoints/openai/serving_engine.py). Errors:
//   {"error": {"message", ...}} or, in older releases, {"object": "error", "message", ...}.
//   `opd teacher serve` (teacher/server.ts) answers in this format.
// - SGLang request: sgl-project/sglang python/sglang/srt/managers/io_struct.py (GenerateReqInput:
//   `input_ids`, `sampling_params`, `return_logprob`, `logprob_start_len`, `top_logprobs_num`).
//   Answer: meta_info.input_token_logprobs = [logprob, token_id, text|null] per prompt token and
//   meta_info.input_top_logprobs = per position a list of such triples or null
//   (python/sglang/srt/managers/tokenizer_manager.py, detokenize_*_tokens); the first entry's
//   log-prob is always null (python/sglang/srt/managers/scheduler_output_processor_mixin.py). SGLang's
//   /v1/completions does not compute prompt log-probs (its entrypoints/openai/serving_completions.py
//   points to /generate), so the sglang format posts to /generate.
//
// A format only reads: whether each row's id is the one sent and each log-prob is valid is checked
// by the teacher for every format alike.

import { type Json, obj } from './http-client.ts';

/** One position as the server returned it: id null = none given (vLLM position 0), undefined = the sent id is not there. */
export interface Row {
  id: unknown;
  logprob: unknown;
  /** [id, log-prob] best first. */
  top: Array<[unknown, unknown]>;
}

export interface WireFormat {
  /** The server family, for messages. */
  label: string;
  /** The endpoint scoring requests are POSTed to. */
  path: string;
  /** The request for log-probs of every position of `ids` (and the top-k when k > 0), one token generated. */
  request(ids: readonly number[], k: number, o: { model: string; temperature: number }): Json;
  /** Whether an answer has this format's shape (the `auto` probe's test). */
  recognises(answer: unknown): boolean;
  /** What recognises() looks for, for the message when nothing is recognised. */
  shape: string;
  /** One row per sent position, read but not checked; `fail` makes the error for an unreadable answer. */
  rows(answer: unknown, ids: readonly number[], k: number, fail: (detail: string) => Error): Row[];
}

export const show = (x: unknown) => (typeof x === 'string' ? x : JSON.stringify(x) ?? 'missing');

function firstChoice(body: unknown): Json | null {
  const choices = obj(body)?.choices;
  return Array.isArray(choices) ? obj(choices[0]) : null;
}

/** SGLang answers one object for one prompt; a one-element list is accepted too. */
function metaInfo(body: unknown): Json | null {
  return obj(obj(Array.isArray(body) && body.length === 1 ? body[0] : body)?.meta_info);
}

const vllm: WireFormat = {
  label: 'vLLM',
  path: '/v1/completions',
  request: (ids, k, o) => ({ model: o.model, prompt: ids, max_tokens: 1, prompt_logprobs: k, temperature: o.temperature }),
  recognises: (b) => Array.isArray(firstChoice(b)?.prompt_logprobs),
  shape: 'choices[0].prompt_logprobs',
  /** choices[0].prompt_logprobs; the returned token is the key equal to the sent id, else the one outside the top-k. */
  rows(body, ids, k, fail) {
    const pl = firstChoice(body)?.prompt_logprobs;
    if (!Array.isArray(pl)) throw fail('the answer has no choices[0].prompt_logprobs (not a vLLM-style server? try flavor "sglang" or "auto")');
    return pl.map((entry: unknown, t): Row => {
      if (entry === null && t === 0) return { id: null, logprob: null, top: [] };
      const e = obj(entry);
      if (!e) throw fail(`prompt_logprobs[${t}] is ${JSON.stringify(entry)}, not an object`);
      const vals = Object.entries(e).map(([key, v]) => ({ id: Number(key), logprob: obj(v)?.logprob, rank: obj(v)?.rank }));
      const inTop = (rank: unknown) => Number.isInteger(rank) && (rank as number) >= 1 && (rank as number) <= k;
      const outside = vals.filter((v) => !inTop(v.rank));
      const own = vals.find((v) => v.id === ids[t]) ?? (vals.length === 1 ? vals[0] : outside.length === 1 ? outside[0] : undefined);
      const top = vals.filter((v) => inTop(v.rank)).sort((a, b) => (a.rank as number) - (b.rank as number));
      return { id: own?.id, logprob: own?.logprob, top: top.map((v) => [v.id, v.logprob]) };
    });
  },
};

const sglang: WireFormat = {
  label: 'SGLang',
  path: '/generate',
  request: (ids, k, o) => ({ input_ids: ids, sampling_params: { max_new_tokens: 1, temperature: o.temperature }, return_logprob: true, logprob_start_len: 0, top_logprobs_num: k }),
  recognises: (b) => Array.isArray(metaInfo(b)?.input_token_logprobs),
  shape: 'meta_info.input_token_logprobs',
  /** meta_info.input_token_logprobs [logprob, id, text] and input_top_logprobs. */
  rows(body, _ids, _k, fail) {
    const m = metaInfo(body);
    const finish = obj(m?.finish_reason);
    if (finish?.type === 'abort') throw fail(`the server aborted the request: ${show(finish.message ?? finish)}`);
    const rows = m?.input_token_logprobs;
    if (!Array.isArray(rows)) throw fail('the answer has no meta_info.input_token_logprobs (not an SGLang server? try flavor "vllm" or "auto")');
    const tops = Array.isArray(m!.input_top_logprobs) ? m!.input_top_logprobs : [];
    return rows.map((r: unknown, t): Row => {
      if (!Array.isArray(r) || r.length < 2) throw fail(`input_token_logprobs[${t}] is ${JSON.stringify(r)}, not [logprob, token_id, text]`);
      const top = Array.isArray(tops[t]) ? (tops[t] as unknown[]).map((x): [unknown, unknown] => (Array.isArray(x) ? [x[1], x[0]] : [undefined, undefined])) : [];
      return { id: r[1], logprob: r[0], top };
    });
  },
};

/** Every wire format by name (the config's teachers[].flavor), in the order `auto` probes them. */
export const WIRE_FORMATS = { vllm, sglang } satisfies Record<string, WireFormat>;

export type Flavor = keyof typeof WIRE_FORMATS;

export const FLAVORS = Object.keys(WIRE_FORMATS) as Flavor[];
