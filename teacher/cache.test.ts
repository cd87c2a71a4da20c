// The score cache: a second request for the same sequences never reaches the teacher (also after
// reopening the directory), bad scores are never stored, and fresh and cached scores are identical.

import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { CachedTeacher, ScoreCache } from './cache.ts';
import type { Teacher, TeacherRequest, TeacherScore } from './types.ts';

class FakeTeacher implements Teacher {
  calls = 0;
  sequences = 0;
  poison = false;
  identity = { modelId: 'fake', tokenizerFingerprint: 'fp', vocabSize: 100 };
  async score(reqs: readonly TeacherRequest[], opts: { topK?: number } = {}): Promise<TeacherScore[]> {
    this.calls++;
    this.sequences += reqs.length;
    return reqs.map((r) => {
      const lp = r.ids.slice(r.start).map((id, t) => (this.poison && t === 0 ? NaN : -0.1 - id / 1000 - t / 3));
      const s: TeacherScore = { logprobs: lp };
      if (opts.topK) {
        s.topIds = lp.map(() => [1, 2]);
        s.topLogprobs = lp.map(() => [-0.3, -1.7]);
      }
      return s;
    });
  }
  async close() {}
}

const reqs = [
  { ids: [5, 6, 7, 8], start: 2 },
  { ids: [9, 10], start: 1 },
];

test('hits skip the teacher, also after reopening the cache directory', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'opd-cache-'));
  const fake = new FakeTeacher();
  const t1 = new CachedTeacher(fake, ScoreCache.open(dir));
  const first = await t1.score(reqs);
  assert.equal(fake.sequences, 2);
  const again = await t1.score([reqs[1]!, { ids: [1, 2, 3], start: 1 }]);
  assert.equal(fake.sequences, 3, 'only the new sequence is sent');
  assert.deepEqual(again[0], first[1]);
  const t2 = new CachedTeacher(fake, ScoreCache.open(dir));
  const reopened = await t2.score(reqs);
  assert.equal(fake.sequences, 3, 'a reopened cache answers from disk');
  assert.deepEqual(reopened, first);
  assert.deepEqual(first[0]!.logprobs, [-0.1 - 7 / 1000, -0.1 - 8 / 1000 - 1 / 3].map(Math.fround), 'float32-rounded, fresh or cached');
});

test('top-k and plain scores are cached under different keys', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'opd-cache-'));
  const fake = new FakeTeacher();
  const t = new CachedTeacher(fake, ScoreCache.open(dir));
  await t.score(reqs);
  const withTop = await t.score(reqs, { topK: 2 });
  assert.equal(fake.calls, 2);
  assert.deepEqual(withTop[0]!.topIds, [[1, 2], [1, 2]]);
  assert.deepEqual(withTop[0]!.topLogprobs, [[-0.3, -1.7].map(Math.fround), [-0.3, -1.7].map(Math.fround)]);
});

test('a non-finite score is refused and never stored', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'opd-cache-'));
  const fake = new FakeTeacher();
  fake.poison = true;
  const t = new CachedTeacher(fake, ScoreCache.open(dir));
  await assert.rejects(t.score(reqs), /request 0: log-prob at completion position 0 is NaN/);
  assert.equal(ScoreCache.open(dir).size, 0, 'nothing reached the cache');
  fake.poison = false;
  await t.score(reqs);
  assert.equal(ScoreCache.open(dir).size, 2);
});

test('concurrent score calls (a step scores its sampling slices at once) commit every row, each shard verifying', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'opd-cache-concurrent-'));
  const fake = new FakeTeacher();
  const t = new CachedTeacher(fake, ScoreCache.open(dir));
  // 16 calls in flight at once, each with its own sequences
  const calls = Array.from({ length: 16 }, (_, k) => [{ ids: [k + 1, k + 2, k + 3], start: 1 }, { ids: [k + 40, k + 41], start: 1 }]);
  const first = await Promise.all(calls.map((c) => t.score(c)));
  // reopening reads every shard through its manifest entry (size and sha256): nothing lost, nothing damaged
  const warnings: string[] = [];
  const reopened = ScoreCache.open(dir, (m) => warnings.push(m));
  assert.deepEqual(warnings, [], 'no shard is damaged');
  assert.equal(reopened.size, 32, 'every row of every concurrent call is committed');
  const again = new CachedTeacher(fake, reopened);
  const before = fake.sequences;
  assert.deepEqual(await Promise.all(calls.map((c) => again.score(c))), first);
  assert.equal(fake.sequences, before, 'all hits after reopening');
});
