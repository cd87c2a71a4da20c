// The cross-tokenizer teacher path (teacher/aligned.ts): with the same tokenizer and rendering the
// request and the scores pass through unchanged; forced alignment of identical tokenizers reduces to
// §2's per-token d; a byte-tokenizer student against a Qwen3-tokenizer teacher gets span gaps computed
// here independently from the fake teacher's formula and Qwen3's known ids, spread evenly (the rule in
// docs/algorithms.md); template tokens get nothing; the student's EOS is paired with the teacher's
// end of turn (<|im_end|> for a conversation, its EOS for a plain prompt); a completion cut off
// mid-character leaves the cut-off tokens without signal.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BYTE_EOS_ID, ByteTokenizer } from '../data/tokenizer/byte.ts';
import { loadQwen3 } from '../data/tokenizer/test_fixtures.ts';
import type { Tokenizer } from '../data/tokenizer/types.ts';
import { AlignedTeacher, endOfTurnOf, keepAlignment } from './aligned.ts';
import { fakeLogprob } from './fake-servers.ts';
import type { Teacher, TeacherRequest, TeacherScore } from './types.ts';

/** An in-process teacher whose "model" is the fake servers' formula: log π(ids[t]) = fakeLogprob(ids[t], t). */
export class FormulaTeacher implements Teacher {
  readonly identity = { modelId: 'formula', tokenizerFingerprint: 'x', vocabSize: 200_000 };
  readonly seen: TeacherRequest[] = [];
  async score(reqs: readonly TeacherRequest[]): Promise<TeacherScore[]> {
    this.seen.push(...reqs);
    return reqs.map((r) => ({ logprobs: r.ids.slice(r.start).map((id, k) => fakeLogprob(id, r.start + k)) }));
  }
  async close() {}
}

const byte = new ByteTokenizer();
/** Sampler log-probs that differ per token (any finite values ≤ 0 do). */
const sampler = (n: number) => Array.from({ length: n }, (_, t) => -0.05 - 0.01 * ((t * 5) % 7));

function request(tok: Tokenizer, prompt: string, completionIds: number[], messages?: { role: string; content: string }[]): TeacherRequest {
  const p = tok.encode(prompt);
  return { ids: [...p, ...completionIds], start: p.length, context: { prompt, messages, samplerLogprobs: sampler(completionIds.length) } };
}

/** The byte tokenizer under another fingerprint: same behaviour, but not recognised as the same tokenizer. */
function disguised(tok: ByteTokenizer): Tokenizer {
  return Object.assign(Object.create(Object.getPrototypeOf(tok)), tok, { fingerprint: () => 'disguised' });
}

test('same tokenizer and rendering: the request and the scores pass through unchanged (exact path)', async () => {
  const inner = new FormulaTeacher();
  const t = new AlignedTeacher(inner, { student: byte, teacher: byte });
  const req = request(byte, 'What is 2+2?', [...byte.encode(' 4', { addSpecialTokens: false }), BYTE_EOS_ID]);
  const [got] = await t.score([req]);
  const [want] = await new FormulaTeacher().score([{ ids: req.ids, start: req.start }]);
  assert.deepEqual(got, want);
  assert.deepEqual(inner.seen[0]!.ids, req.ids);
  assert.equal(inner.seen[0]!.start, req.start);
});

test('identical tokenizers forced through alignment: every span is one token and the value is the teacher log-prob (§2)', async () => {
  const inner = new FormulaTeacher();
  const t = new AlignedTeacher(inner, { student: byte, teacher: disguised(byte) });
  const req = request(byte, 'Q: é?', [...byte.encode('A: 😀 ok', { addSpecialTokens: false }), BYTE_EOS_ID]);
  const p = t.plan(req, 0);
  assert.equal(p.exact, false);
  assert.ok(p.spans.every((s) => s.a[1] - s.a[0] === 1 && s.b[1] - s.b[0] === 1));
  assert.deepEqual(p.request.ids, req.ids); // the same sequence, EOS paired with EOS
  const [got] = await t.score([req]);
  const [exact] = await new FormulaTeacher().score([{ ids: req.ids, start: req.start }]);
  got!.logprobs.forEach((v, i) => assert.ok(Math.abs(v - exact!.logprobs[i]!) < 1e-12, `token ${i}: ${v} vs ${exact!.logprobs[i]}`));
});

test('byte student, Qwen3 teacher, plain prompt: span gaps spread over the span, EOS paired with the teacher EOS', async () => {
  const q = await loadQwen3();
  const inner = new FormulaTeacher();
  const t = new AlignedTeacher(inner, { student: byte, teacher: q });
  const completion = [...byte.encode('Hello world', { addSpecialTokens: false }), BYTE_EOS_ID];
  const req = request(byte, 'Say hi.', completion);
  const [got] = await t.score([req]);
  // independent computation: Qwen3 spells "Hello world" as Hello (9707) Ġworld (1879); the prompt "Say hi." is its own tokens
  const qp = q.encode('Say hi.');
  assert.deepEqual(inner.seen[0]!.ids, [...qp, 9707, 1879, q.eosTokenIds[0]!]);
  const P = qp.length;
  const S = req.context!.samplerLogprobs;
  const gHello = fakeLogprob(9707, P) - (S[0]! + S[1]! + S[2]! + S[3]! + S[4]!);
  const gWorld = fakeLogprob(1879, P + 1) - (S[5]! + S[6]! + S[7]! + S[8]! + S[9]! + S[10]!);
  const gEnd = fakeLogprob(q.eosTokenIds[0]!, P + 2) - S[11]!;
  const want = [...[0, 1, 2, 3, 4].map((i) => S[i]! + gHello / 5), ...[5, 6, 7, 8, 9, 10].map((i) => S[i]! + gWorld / 6), S[11]! + gEnd];
  got!.logprobs.forEach((v, i) => assert.ok(Math.abs(v - want[i]!) < 1e-12, `token ${i}: ${v} vs ${want[i]}`));
  // the sum over the completion of (value − sampler) is Σ teacher − Σ sampler: each log-prob used once
  const total = got!.logprobs.reduce((a, v, i) => a + v - S[i]!, 0);
  const teacherSum = fakeLogprob(9707, P) + fakeLogprob(1879, P + 1) + fakeLogprob(q.eosTokenIds[0]!, P + 2);
  assert.ok(Math.abs(total - (teacherSum - S.reduce((a, b) => a + b, 0))) < 1e-12);
});

test('a conversation is rendered by the teacher template; template tokens get nothing; EOS ↔ <|im_end|>', async () => {
  const q = await loadQwen3();
  assert.equal(endOfTurnOf(q), q.specialTokens.get('<|im_end|>'));
  const inner = new FormulaTeacher();
  const t = new AlignedTeacher(inner, { student: byte, teacher: q });
  const messages = [{ role: 'user', content: 'What is 2+2?' }];
  const completion = [...byte.encode('4', { addSpecialTokens: false }), BYTE_EOS_ID];
  const req = request(byte, 'What is 2+2?', completion, messages);
  const [got] = await t.score([req]);
  const rendered = q.applyChatTemplate(messages, { addGenerationPrompt: true });
  assert.ok(rendered.startsWith('<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n'), rendered);
  const qp = q.encode(rendered, { addSpecialTokens: false });
  const four = q.encode('4', { addSpecialTokens: false });
  assert.deepEqual(inner.seen[0]!.ids, [...qp, ...four, 151645]);
  assert.equal(inner.seen[0]!.start, qp.length); // nothing of the template is scored
  assert.equal(got!.logprobs.length, 2);
  const S = req.context!.samplerLogprobs;
  assert.ok(Math.abs(got!.logprobs[1]! - fakeLogprob(151645, qp.length + 1)) < 1e-12);
  assert.ok(Math.abs(got!.logprobs[0]! - S[0]! - (fakeLogprob(four[0]!, qp.length) - S[0]!)) < 1e-12);
});

test('a completion cut off mid-character: the cut-off bytes are scored as the teacher\'s own byte tokens, one span each; no EOS pairing', async () => {
  const q = await loadQwen3();
  const inner = new FormulaTeacher();
  const t = new AlignedTeacher(inner, { student: byte, teacher: q });
  const bytes = [...new TextEncoder().encode('ok €')].slice(0, -1); // "€" lacks its last byte
  const req = request(byte, 'x', bytes);
  const [got] = await t.score([req]);
  const S = req.context!.samplerLogprobs;
  const sent = inner.seen[0]!;
  const [e2, b82] = [q.vocab().get('â')!, q.vocab().get('Ĥ')!]; // GPT-2 byte characters of 0xE2 and 0x82
  const okIds = q.encode('ok ', { addSpecialTokens: false });
  assert.deepEqual(sent.ids.slice(sent.start), [...okIds, e2, b82]);
  const at = sent.start + okIds.length;
  assert.ok(Math.abs(got!.logprobs.at(-2)! - fakeLogprob(e2, at)) < 1e-12);
  assert.ok(Math.abs(got!.logprobs.at(-1)! - fakeLogprob(b82, at + 1)) < 1e-12);
  assert.notEqual(got!.logprobs[0], S[0]);
});

test('a request without context, or asking top-k across tokenizers, is refused with the reason', async () => {
  const q = await loadQwen3();
  const t = new AlignedTeacher(new FormulaTeacher(), { student: byte, teacher: q });
  await assert.rejects(t.score([{ ids: [257, 65, 66], start: 1 }]), /needs the prompt text and the sampler log-probs/);
  await assert.rejects(t.score([request(byte, 'x', [65])], { topK: 2 }), /top-k/);
});

test('a special token sampled mid-completion: paired with the teacher special of the same name, else no signal', async () => {
  const q = await loadQwen3();
  const completion = [...byte.encode('4<|user|>x', { addSpecialTokens: false }), BYTE_EOS_ID];
  assert.equal(completion[1], 259);
  const toQwen = new FormulaTeacher();
  const req = request(byte, 'x', completion);
  const [got] = await new AlignedTeacher(toQwen, { student: byte, teacher: q }).score([req]);
  const sent = toQwen.seen[0]!;
  assert.deepEqual(sent.ids.slice(sent.start), [...q.encode('4', { addSpecialTokens: false }), ...q.encode('x', { addSpecialTokens: false }), q.eosTokenIds[0]]);
  assert.equal(got!.logprobs[1], req.context!.samplerLogprobs[1]); // Qwen3 has no <|user|>: no signal
  const toByte = new FormulaTeacher();
  const [same] = await new AlignedTeacher(toByte, { student: byte, teacher: disguised(byte) }).score([req]);
  assert.deepEqual(toByte.seen[0]!.ids, req.ids);
  assert.ok(Math.abs(same!.logprobs[1]! - fakeLogprob(259, req.start + 1)) < 1e-12);
});

test('keepAlignment: a replaced backend (a queue teacher) keeps the aligned path; an exact teacher is simply replaced', async () => {
  const q = await loadQwen3();
  const aligned = new AlignedTeacher(new FormulaTeacher(), { student: byte, teacher: q });
  const queue = new FormulaTeacher();
  const kept = keepAlignment(aligned, queue);
  assert.ok(kept instanceof AlignedTeacher && kept.inner === queue);
  const req = request(byte, 'Say hi.', [...byte.encode('Hello world', { addSpecialTokens: false }), BYTE_EOS_ID]);
  assert.deepEqual(await kept.score([req]), await aligned.score([req]));
  assert.deepEqual(queue.seen[0]!.ids.slice(queue.seen[0]!.start), [9707, 1879, q.eosTokenIds[0]]); // the queue sees the teacher's own ids
  const plain = new FormulaTeacher();
  assert.equal(keepAlignment(new FormulaTeacher(), plain), plain);
});
