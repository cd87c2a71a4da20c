// Preflight before any rollout (docs/reliability.md R9): how the teacher's scores will reach the
// student's tokens, and whether they can.
//
// - Exact path: the tokenizers agree on every shared id (data/tokenizer/compare.ts) and the prompt is
//   rendered the same way for both (plain prompts; or, for conversational data, both chat templates
//   render a sample conversation to the same string). The teacher scores the student's own token ids.
//   Model output sizes (embedding rows, possibly padded, e.g. 151936 vs 152064) may differ only beyond
//   the tokenizer's vocabulary, and scoring is then restricted to the shared range.
// - Aligned path (teacher/aligned.ts): anything else that can be aligned byte for byte: both
//   tokenizers' pieces map to bytes (byte-level BPE, SentencePiece with byte fallback, opd's byte
//   tokenizer), both spell probe texts back exactly (no text-changing normalizer), the teacher has
//   an end-of-turn / EOS token to pair with the student's, and, for conversations, a chat template.
// - Refused (PreflightError, saying why): a model with fewer output rows than its tokenizer has tokens,
//   and any configuration the aligned path cannot handle.
// `report` lists what a user needs to see either way: the tokenizer diff (vocabulary overlap, special
// tokens, EOS ids), a sample conversation as each template renders it, and the path.

import { compareTokenizers } from '../data/tokenizer/compare.ts';
import type { ChatMessage, Tokenizer } from '../data/tokenizer/types.ts';
import { AlignError, concatBytes, pieceScheme, teacherTokens, tokenBytesOf } from './align.ts';
import { endOfTurnOf } from './aligned.ts';

export class PreflightError extends Error {
  constructor(
    detail: string,
    readonly diffs: string[] = [],
  ) {
    super(`teacher/student preflight failed: ${detail}${diffs.length ? '\n  ' + diffs.join('\n  ') : ''}`);
    this.name = 'PreflightError';
  }
}

export type ScoringPath = 'exact' | 'aligned';

export interface PreflightResult {
  /** exact: the teacher scores the student's ids; aligned: its own tokens, mapped back (teacher/aligned.ts). */
  path: ScoringPath;
  /** Exact path: output rows both models share and the tokenizer can produce: score over [0, sharedVocab). */
  sharedVocab: number;
  /** Human-readable notes (e.g. padded rows that will be ignored). */
  notes: string[];
  /** The tokenizer diff, the sample rendered by both templates, and the path (one line each). */
  report: string[];
}

export interface PreflightOptions {
  /** The data is conversational (records carry `messages`): renderings are compared and a teacher template is needed. */
  conversational?: boolean;
  /** The conversation shown (and compared) in the report; default a one-question chat. */
  sample?: ChatMessage[];
  /** Extra chat-template variables of the run (data.chatTemplateKwargs), for both templates. */
  chatTemplateKwargs?: Record<string, unknown>;
}

export const SAMPLE_CONVERSATION: ChatMessage[] = [{ role: 'user', content: 'What is 64 plus 85?' }];

/** Texts both sides must spell back byte for byte to be aligned: spaces, newlines, accents, CJK, emoji. */
const PROBES = ['The answer is 149.', '  two  spaces\nand a newline\n\n', 'café naïve Ærø ß', '你好，世界', 'emoji 😀👍🏽 ∑ €5', 'x=1; y = [a, b]\t# done'];

function render(tok: Tokenizer, messages: ChatMessage[], kwargs?: Record<string, unknown>): string | null {
  try {
    return tok.applyChatTemplate(messages, { addGenerationPrompt: true, kwargs });
  } catch {
    return null;
  }
}

const show = (tok: Tokenizer, ids: readonly number[]) => ids.map((id) => `${id} ${JSON.stringify(tok.idToToken(id) ?? '?')}`).join(', ');

export function preflight(student: { tokenizer: Tokenizer; vocabRows: number }, teacher: { tokenizer: Tokenizer; vocabRows: number }, o: PreflightOptions = {}): PreflightResult {
  for (const [who, m] of [['student', student], ['teacher', teacher]] as const) {
    if (m.vocabRows < m.tokenizer.vocabSize)
      throw new PreflightError(`the ${who}'s model has ${m.vocabRows} output rows but its tokenizer has ${m.tokenizer.vocabSize} tokens; the model cannot score every token`);
  }
  const s = student.tokenizer;
  const t = teacher.tokenizer;
  const cmp = compareTokenizers(s, t);
  const report: string[] = [];
  if (cmp.same) report.push(`tokenizers: identical on the shared ids (student ${s.vocabSize}, teacher ${t.vocabSize} tokens)`);
  else {
    const sv = s.vocab();
    const tv = t.vocab();
    let both = 0;
    let sameId = 0;
    for (const [tok, id] of sv) {
      const tid = tv.get(tok);
      if (tid !== undefined) both++;
      if (tid === id) sameId++;
    }
    report.push(`tokenizers differ: student ${s.vocabSize} tokens, teacher ${t.vocabSize}; ${both} token strings in both (${((100 * both) / Math.max(sv.size, 1)).toFixed(1)}% of the student's), ${sameId} of them at the same id`);
    report.push(...cmp.diffs.slice(0, 5).map((d) => `  ${d}`));
    const specials = (x: Tokenizer) => [...x.specialTokens].sort((a, b) => a[1] - b[1]).map(([k, v]) => `${k}=${v}`);
    const ss = specials(s);
    const ts = specials(t);
    const cut = (l: string[]) => (l.length > 12 ? [...l.slice(0, 12), `… ${l.length - 12} more`] : l).join(' ');
    report.push(`special tokens: student ${cut(ss)}; teacher ${cut(ts)}`);
  }
  report.push(`EOS ids: student [${show(s, s.eosTokenIds)}], teacher [${show(t, t.eosTokenIds)}]`);
  const sample = o.sample ?? SAMPLE_CONVERSATION;
  const rs = render(s, sample, o.chatTemplateKwargs);
  const rt = render(t, sample, o.chatTemplateKwargs);
  report.push(`sample conversation, student's template: ${rs === null ? '(no chat template)' : JSON.stringify(rs)}`);
  report.push(`sample conversation, teacher's template: ${rt === null ? '(no chat template)' : JSON.stringify(rt)}`);
  const sameRendering = !o.conversational || (rs !== null && rs === rt);

  if (cmp.same && sameRendering) {
    const notes: string[] = [];
    const sharedVocab = Math.min(student.vocabRows, teacher.vocabRows);
    if (student.vocabRows !== teacher.vocabRows)
      notes.push(`output rows differ (student ${student.vocabRows}, teacher ${teacher.vocabRows}); both tokenizers agree on ids < ${cmp.sharedSize}, rows ≥ ${sharedVocab} are padding and are not scored`);
    report.push(`scoring path: exact (one tokenizer${o.conversational ? ' and one rendering' : ''}: the teacher scores the student's token ids)`);
    return { path: 'exact', sharedVocab, notes, report };
  }

  const why = cmp.same ? 'the two chat templates render the sample differently' : 'the tokenizers differ';
  const refuse = (reason: string) => new PreflightError(`${why} and the teacher's scores cannot be aligned to the student's tokens: ${reason}`, report);
  const bytesOf = (who: string, tok: Tokenizer) => {
    try {
      pieceScheme(tok);
      return tokenBytesOf(tok);
    } catch (e) {
      throw refuse(`the ${who}'s tokenizer: ${(e as Error).message}`);
    }
  };
  const sb = bytesOf('student', s);
  const tb = bytesOf('teacher', t);
  for (const text of PROBES) {
    const got = concatBytes(s.encode(text, { addSpecialTokens: false }).map((id) => sb(id) ?? new Uint8Array(0)));
    if (new TextDecoder().decode(got) !== text) throw refuse(`the student's tokens of ${JSON.stringify(text)} spell ${JSON.stringify(new TextDecoder().decode(got))}`);
    try {
      teacherTokens(t, tb, text);
    } catch (e) {
      throw refuse(e instanceof AlignError ? e.message : String(e));
    }
  }
  if (o.conversational && rt === null) throw refuse("the data is conversational but the teacher's tokenizer has no chat template to render it with");
  const end = o.conversational ? endOfTurnOf(t, o.chatTemplateKwargs) : (t.eosTokenIds[0] ?? null);
  if (end === null) throw refuse("the teacher's tokenizer has no EOS / end-of-turn token to pair with the student's end of completion");
  report.push(
    `scoring path: aligned (${why}): the teacher scores ${o.conversational ? 'the conversation rendered by its own template' : 'the prompt text'} plus the student's completion text in its own tokens; span gaps are mapped back onto the student's tokens, the student's EOS paired with teacher id ${end} ${JSON.stringify(t.idToToken(end) ?? '?')}`,
  );
  return { path: 'aligned', sharedVocab: teacher.vocabRows, notes: [], report };
}
