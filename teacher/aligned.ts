// A teacher with its own tokenizer and chat template, behind the student's Teacher interface
// (docs/algorithms.md §2, "A teacher with another tokenizer or template"; issue 12 item 3).
//
// For each request (the student's prompt + completion ids, with `context`: the prompt text or
// conversation and the sampler's log-probs) the AlignedTeacher
//   1. renders the prompt the teacher's way, by the rule the student's prompt follows (data/chat.ts
//      encodePrompt, the run's data.chatTemplate mode and kwargs) but with the TEACHER's tokenizer and
//      chat template: a conversation through its template with the generation prompt (tokenized without
//      added special tokens, as transformers' apply_chat_template does), or the plain prompt text
//      (tokenized with them, as the student's is);
//   2. tokenizes the student's completion bytes with the teacher's tokenizer on its own (so the
//      prompt/completion join is a token boundary on both sides): valid UTF-8 as text, any other byte
//      (invalid, or a character cut off at the end) as the teacher's single-byte token
//      (teacher/align.ts teacherTokensOfBytes). A teacher without such tokens gets valid text instead
//      (studentTextBytes: invalid bytes become U+FFFD, a cut-off last character is dropped and its
//      student tokens get no signal);
//   3. pairs a final student end token (a stop id that spells nothing) with the teacher's end of turn
//      (the special token its template writes after an assistant message; its first EOS id for plain
//      prompts), as one span of its own; any other student token that spells nothing (a special token
//      sampled mid-completion) is paired with the teacher's special token of the same name, or, when
//      the teacher has none, gets no signal; the text runs between them are aligned separately;
//   4. scores prompt + completion (+ end) with the inner teacher, and aligns the completion bytes
//      (teacher/align.ts alignTokens);
//   5. maps the scores back: for each span, g = Σ teacher log-probs − Σ sampler log-probs over the span
//      (so the span's d of §2 is −g), spread evenly over the span's n student tokens; each student token
//      gets the value  sampler_lp + g/n. Downstream (pipeline/algo/teacher.ts) d_t = sampler_lp − value
//      = −g/n, so the span's tokens together carry exactly the span's log-ratio. Unpaired specials,
//      tail tokens (a cut-off last character, fallback path only) and spans the teacher spells with no
//      token get g = 0: no signal.
// Same tokenizer and an identical prompt rendering: the request goes to the inner teacher unchanged and
// its log-probs come back unchanged (today's exact path, bit for bit).
//
// Why spread and not "all on the last token": both give the span's tokens the same total, but with γ = 0
// (the default) the last-token rule leaves every earlier token of a multi-token span with no signal at
// all, while the first sub-token is usually the one that chose the span; spreading keeps each token's
// advantage the span's average, bounded by the span's gap, and reduces to §2 exactly when n = 1.
//
// The value is not a log-probability: sampler_lp + g/n can be > 0 (the teacher likes the span more than
// the student did). validateScore's "≤ 0" rule therefore applies to the inner teacher's raw scores (every
// backend and the score cache check them), not to these values; validateAlignedScore checks what they
// must be (one finite number per student completion token). The score cache sits below this wrapper
// and stores the teacher's own token scores, keyed by the teacher's token ids.

import { encodePrompt, endOfTurn, type PromptRenderOptions, usesTemplate } from '../data/chat.ts';
import type { Tokenizer } from '../data/tokenizer/types.ts';
import { AlignError, alignTokens, byteTokensOf, concatBytes, type Span, studentTextBytes, teacherTokens, teacherTokensOfBytes, tokenBytesOf, type TokenBytes } from './align.ts';
import type { OpenedTeacher, OpenTeachers } from './open.ts';
import { type Teacher, type TeacherRequest, type TeacherScore, TeacherScoreError } from './types.ts';

export interface AlignedTeacherOptions {
  /** The student's tokenizer (what request ids mean). */
  student: Tokenizer;
  /** The teacher's tokenizer (what the inner teacher's ids mean), with its chat template. */
  teacher: Tokenizer;
  /** Ids that end a student completion (the sampler's stop ids); default the student tokenizer's EOS ids. */
  studentStopIds?: readonly number[];
  /** How prompts are rendered (data.chatTemplate / chatTemplateKwargs, as for the student; data/chat.ts). */
  chat?: PromptRenderOptions;
}

/** One request's plan: what the inner teacher scores and how its scores map back. */
export interface AlignPlan {
  /** Sent to the inner teacher. */
  request: TeacherRequest;
  /** Exact path: the inner log-probs are the answer as they are. */
  exact: boolean;
  /** Student completion token ranges ↔ teacher completion token ranges (specials and the end token as 1:1 spans). */
  spans: Span[];
}

export class AlignedTeacher implements Teacher {
  private readonly sBytes: TokenBytes;
  private readonly tBytes: TokenBytes;
  private readonly tByte: (b: number) => number | null;
  private readonly sameTokenizer: boolean;
  private readonly stop: Set<number>;
  private endOfTurnId: number | null | undefined;

  constructor(
    readonly inner: Teacher,
    private readonly o: AlignedTeacherOptions,
  ) {
    this.sBytes = tokenBytesOf(o.student);
    this.tBytes = tokenBytesOf(o.teacher);
    this.tByte = byteTokensOf(o.teacher);
    this.sameTokenizer = o.student.fingerprint() === o.teacher.fingerprint();
    this.stop = new Set(o.studentStopIds ?? o.student.eosTokenIds);
  }

  get identity() {
    return this.inner.identity;
  }

  /** The teacher's end-of-turn id (see the header), or null when it has none. */
  teacherEndOfTurn(chat: boolean): number | null {
    if (chat) {
      if (this.endOfTurnId === undefined) this.endOfTurnId = endOfTurnOf(this.o.teacher, this.o.chat?.chatTemplateKwargs);
      return this.endOfTurnId;
    }
    return this.o.teacher.eosTokenIds[0] ?? null;
  }

  /** The teacher's prompt ids for a request's context: data/chat.ts encodePrompt with the teacher's tokenizer and template. */
  teacherPrompt(req: TeacherRequest): { ids: number[]; chat: boolean } {
    const ctx = req.context!;
    const record = { prompt: ctx.prompt, messages: ctx.messages ? [...ctx.messages] : undefined };
    return { ids: encodePrompt(this.o.teacher, record, this.o.chat), chat: usesTemplate(record, this.o.chat) };
  }

  plan(req: TeacherRequest, index: number): AlignPlan {
    const ctx = req.context;
    const n = req.ids.length - req.start;
    if (!ctx) throw new TeacherScoreError(index, 'a teacher with another tokenizer needs the prompt text and the sampler log-probs (request.context); none given');
    if (ctx.samplerLogprobs.length !== n) throw new TeacherScoreError(index, `context has ${ctx.samplerLogprobs.length} sampler log-probs for ${n} completion tokens`);
    const prompt = this.teacherPrompt(req);
    const studentPrompt = req.ids.slice(0, req.start);
    if (this.sameTokenizer && prompt.ids.length === studentPrompt.length && prompt.ids.every((id, i) => id === studentPrompt[i]))
      return { request: { ids: req.ids, start: req.start }, exact: true, spans: [] };
    if (prompt.ids.length === 0) throw new TeacherScoreError(index, "the teacher's rendering of the prompt has no tokens; a scored sequence needs at least one prompt token");
    const completion = req.ids.slice(req.start);
    const ids: number[] = [];
    const spans: Span[] = [];
    // runs of text tokens are aligned byte for byte; a token that spells nothing (a special) is paired
    // with the teacher's token of the same name (the final stop token with its end of turn), or gets nothing
    let runStart = 0;
    const alignRun = (end: number) => {
      if (end <= runStart) return;
      const raw = completion.slice(runStart, end).map((id) => this.sBytes(id)!);
      let teacher: { ids: number[]; bytes: Uint8Array[] };
      let student: Uint8Array[];
      try {
        // the student's bytes as they are (invalid or cut-off bytes as the teacher's byte tokens); else valid text
        const direct = teacherTokensOfBytes(this.o.teacher, this.tBytes, this.tByte, concatBytes(raw));
        if (direct) [teacher, student] = [direct, raw];
        else {
          const st = studentTextBytes(raw);
          [teacher, student] = [teacherTokens(this.o.teacher, this.tBytes, st.text), st.tokenBytes.slice(0, st.tail)];
        }
      } catch (e) {
        throw new TeacherScoreError(index, (e as Error).message);
      }
      const [a0, b0] = [runStart, ids.length];
      for (const sp of alignTokens(student, teacher.bytes)) spans.push({ a: [a0 + sp.a[0], a0 + sp.a[1]], b: [b0 + sp.b[0], b0 + sp.b[1]], bytes: sp.bytes });
      ids.push(...teacher.ids);
    };
    completion.forEach((id, k) => {
      if (this.sBytes(id) !== null) return;
      alignRun(k);
      runStart = k + 1;
      let pair: number | null;
      if (k === completion.length - 1 && this.stop.has(id)) {
        pair = this.teacherEndOfTurn(prompt.chat);
        if (pair === null) throw new TeacherScoreError(index, "the student's completion ends with an end token but the teacher's tokenizer has no end-of-turn / EOS token to pair it with");
      } else {
        const name = this.o.student.idToToken(id);
        pair = name === undefined ? null : (this.o.teacher.specialTokens.get(name) ?? null);
      }
      if (pair === null) return;
      spans.push({ a: [k, k + 1], b: [ids.length, ids.length + 1], bytes: [0, 0] });
      ids.push(pair);
    });
    alignRun(completion.length);
    return { request: { ids: [...prompt.ids, ...ids], start: prompt.ids.length }, exact: false, spans };
  }

  /** The per-student-token values of one request from the inner teacher's log-probs (see the header). */
  static mapBack(p: AlignPlan, teacherLogprobs: readonly number[], samplerLogprobs: readonly number[]): number[] {
    if (p.exact) return [...teacherLogprobs];
    const gaps = new Array<number>(samplerLogprobs.length).fill(0);
    for (const sp of p.spans) {
      const n = sp.a[1] - sp.a[0];
      if (n === 0 || sp.b[1] === sp.b[0]) continue; // the teacher says nothing about this span
      let g = 0;
      for (let j = sp.b[0]; j < sp.b[1]; j++) g += teacherLogprobs[j]!;
      for (let t = sp.a[0]; t < sp.a[1]; t++) g -= samplerLogprobs[t]!;
      for (let t = sp.a[0]; t < sp.a[1]; t++) gaps[t] = g / n;
    }
    return samplerLogprobs.map((s, t) => s + gaps[t]!);
  }

  async score(reqs: readonly TeacherRequest[], opts?: { topK?: number }): Promise<TeacherScore[]> {
    const plans = reqs.map((r, i) => this.plan(r, i));
    if (opts?.topK && plans.some((p) => !p.exact)) throw new Error("top-k teacher alternatives are in the teacher's vocabulary; they cannot be used with a teacher of another tokenizer");
    const scores = await this.inner.score(
      plans.map((p) => p.request),
      opts,
    );
    return plans.map((p, i) => {
      if (p.exact) return scores[i]!;
      const s: TeacherScore = { logprobs: AlignedTeacher.mapBack(p, scores[i]!.logprobs, reqs[i]!.context!.samplerLogprobs) };
      validateAlignedScore(reqs[i]!, s, i);
      return s;
    });
  }

  close(): Promise<void> {
    return this.inner.close();
  }

  /** The same alignment around another backend (a queue's teacher jobs: pipeline/queue/controller.ts). */
  withInner(inner: Teacher): AlignedTeacher {
    return new AlignedTeacher(inner, this.o);
  }
}

/** `now` in place of `was`, keeping `was`'s alignment when it had one (so a replaced backend never drops the aligned path). */
export function keepAlignment(was: Teacher | null | undefined, now: Teacher): Teacher {
  return was instanceof AlignedTeacher ? was.withInner(now) : now;
}

/** An aligned score: one finite value per student completion token (the "≤ 0" rule does not apply; see the header). */
export function validateAlignedScore(req: TeacherRequest, s: TeacherScore, index: number): void {
  const n = req.ids.length - req.start;
  if (s.logprobs.length !== n) throw new TeacherScoreError(index, `expected ${n} aligned values, got ${s.logprobs.length}`);
  const bad = s.logprobs.findIndex((x) => !Number.isFinite(x));
  if (bad >= 0) throw new TeacherScoreError(index, `aligned value at completion position ${bad} is ${s.logprobs[bad]} (must be finite)`);
}

/** The teacher's end of turn: its template's (data/chat.ts endOfTurn), else its first EOS id; null when it has neither. */
export function endOfTurnOf(tok: Tokenizer, kwargs?: Record<string, unknown>): number | null {
  try {
    const eot = endOfTurn(tok, kwargs);
    if (eot) return eot.id;
  } catch {
    // no template: EOS ends a turn
  }
  return tok.eosTokenIds[0] ?? null;
}

export { AlignError };

/**
 * Put `wrap(t)` in place of every teacher of `opened` for which it returns one (e.g. an AlignedTeacher),
 * in the list, byId, single and routed alike; close() still closes each backend once.
 */
export function wrapTeachers(opened: OpenTeachers, wrap: (t: OpenedTeacher) => Teacher | null): OpenTeachers {
  let changed = false;
  opened.list.forEach((t, i) => {
    const w = wrap(t);
    if (w) [opened.list[i], changed] = [{ ...t, teacher: w }, true];
  });
  if (!changed) return opened;
  const byId = new Map(opened.list.map((t) => [t.id, t.teacher]));
  opened.byId = byId;
  opened.single = opened.list.length === 1 ? opened.list[0]!.teacher : null;
  if (opened.routed) opened.routed = { byId, routes: opened.routed.routes };
  return opened;
}
