// Issue 13 item 10: a damaged score cache does not stop the run. It only holds what the teacher can
// score again, so it is rebuilt: the shards that verify are kept, the damaged copy is moved aside,
// a warning names the damaged file, and the lost scores are asked from the teacher again.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { listShards } from '../data/store/shards.ts';
import { CachedTeacher, ScoreCache } from './cache.ts';
import type { Teacher, TeacherRequest, TeacherScore } from './types.ts';

class CountingTeacher implements Teacher {
  sequences = 0;
  identity = { modelId: 'fake', tokenizerFingerprint: 'fp', vocabSize: 100 };
  async score(reqs: readonly TeacherRequest[]): Promise<TeacherScore[]> {
    this.sequences += reqs.length;
    return reqs.map((r) => ({ logprobs: r.ids.slice(r.start).map((id, t) => -0.1 - id / 1000 - t / 3) }));
  }
  async close() {}
}

const a = { ids: [5, 6, 7, 8], start: 2 };
const b = { ids: [9, 10], start: 1 };
const c = { ids: [1, 2, 3], start: 1 };

test('a flipped byte in a score-cache shard: the cache is rebuilt with a warning, the good shard kept, the lost scores asked again', async () => {
  const root = mkdtempSync(join(tmpdir(), 'opd-cache-rebuild-'));
  const dir = join(root, 'score-cache');
  const teacher = new CountingTeacher();
  const first = new CachedTeacher(teacher, ScoreCache.open(dir));
  const [sa] = await first.score([a]); // shard 0
  const [sb] = await first.score([b]); // shard 1
  const [bad, good] = listShards(dir).map((s) => join(dir, s.file)).reverse();
  const bytes = readFileSync(bad!);
  bytes[bytes.length >> 1] ^= 0xff;
  writeFileSync(bad!, bytes);

  const warnings: string[] = [];
  const cache = ScoreCache.open(dir, (m) => warnings.push(m));
  assert.equal(warnings.length, 1);
  assert.match(warnings[0]!, new RegExp(`score cache ${dir} is damaged: ${bad}.*sha256.*1 scores kept.*${dir}\\.damaged-`));
  assert.equal(cache.size, 1, 'the verified shard is kept');
  const aside = readdirSync(root).find((f) => f.startsWith('score-cache.damaged-'));
  assert.ok(aside, 'the damaged copy is moved aside');
  assert.ok(readdirSync(join(root, aside)).includes('manifest.json'), 'with its manifest and shards');

  const again = new CachedTeacher(teacher, cache);
  const before = teacher.sequences;
  const [ra, rb] = await again.score([a, b, c]);
  assert.equal(teacher.sequences - before, 2, 'only the lost score (b) and the new one (c) are sent; a comes from the kept shard');
  assert.deepEqual(ra, sa);
  assert.deepEqual(rb, sb);
  // the rebuilt cache verifies, holds all three, and opens without a warning
  const reopened: string[] = [];
  assert.equal(ScoreCache.open(dir, (m) => reopened.push(m)).size, 3);
  assert.deepEqual(reopened, []);
  assert.ok(good);
});
