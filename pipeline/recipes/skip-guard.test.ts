// skip-guard.ts on its own: which errors become NaN (and a note) and which still throw, the shape
// of the NaN scores (one per completion token; k entries per position when top-k is asked, as the
// rollout record requires), and how the notes become a step's skip reason.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { NonFiniteRewardError } from '../../data/rewards/index.ts';
import { type Teacher, TeacherScoreError } from '../../teacher/types.ts';
import { SkipNotes, guardReward, guardTeacher } from './skip-guard.ts';

const rec = { id: 'q1', prompt: 'p', answer: '1' };
const failing = (e: Error): Teacher => ({ identity: { modelId: 'm', tokenizerFingerprint: 'f', vocabSize: 10 }, score: async () => Promise.reject(e), close: async () => {} });

test('a non-finite teacher score becomes NaN log-probs of the right shape and a note; other teacher errors still throw', async () => {
  const notes = new SkipNotes();
  const t = guardTeacher(failing(new TeacherScoreError(1, 'log-prob at completion position 0 is NaN', true)), 't1', notes);
  const reqs = [{ ids: [1, 2, 3, 4], start: 2 }, { ids: [5, 6], start: 2 }];
  const plain = await t.score(reqs);
  assert.equal(plain.length, 2);
  assert.deepEqual(plain.map((s) => s.logprobs.length), [2, 0]);
  assert.ok(plain[0]!.logprobs.every(Number.isNaN));
  const topk = await t.score(reqs, { topK: 3 });
  assert.deepEqual(topk[0]!.topIds, [[0, 0, 0], [0, 0, 0]]);
  assert.ok(topk[0]!.topLogprobs!.flat().length === 6 && topk[0]!.topLogprobs!.flat().every(Number.isNaN));
  assert.equal(notes.take('teacher log-probs[0][0] = NaN is not finite'), 'teacher t1: teacher score for request 1: log-prob at completion position 0 is NaN (and 1 more)');

  const broken = guardTeacher(failing(new TeacherScoreError(0, 'position 1 returned token 19 but 18 was sent')), 't1', notes);
  await assert.rejects(broken.score(reqs), /returned token 19 but 18 was sent/);
  await assert.rejects(guardTeacher(failing(new Error('connection refused')), 't1', notes).score(reqs), /connection refused/);
  assert.equal(notes.take('x'), 'x', 'errors that throw leave no note');
});

test('a NaN reward becomes NaN and a note; a throwing reward still throws', async () => {
  const notes = new SkipNotes();
  const r = guardReward(async (_p, c) => (c === 'nan' ? Promise.reject(new NonFiniteRewardError(`reward returned NaN for record ${rec.id}`)) : c === 'bug' ? Promise.reject(new Error('kaput')) : 1), notes);
  assert.equal(await r('p', 'ok', rec), 1);
  assert.ok(Number.isNaN(await r('p', 'nan', rec)));
  await assert.rejects(r('p', 'bug', rec), /kaput/);
  assert.equal(notes.take('rewards[0][1] = NaN is not finite'), 'reward returned NaN for record q1');
});

test('SkipNotes.take: sorted (notes arrive in completion order), cleared, nothing without a finding', () => {
  const notes = new SkipNotes();
  notes.add('b');
  notes.add('a');
  assert.equal(notes.take(undefined), undefined, 'no non-finite value found: no skip, whatever was noted');
  assert.equal(notes.take('found'), 'found', 'the notes were cleared by the previous take');
  notes.add('b');
  notes.add('a');
  assert.equal(notes.take('found'), 'a (and 1 more)');
});
