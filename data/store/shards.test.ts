// Shards are verified on read: flipped bytes, truncation and schema changes are named errors,
// never fewer rows or wrong values; a shard not in the manifest was never committed.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { Field, Int32, Schema } from 'apache-arrow';
import { tableToTeacherScores, teacherScoreSchema, teacherScoresToTable } from '../schemas.ts';
import { CorruptArtifactError, listShards, readShard, writeShard } from './shards.ts';

const rows = (n: number) =>
  Array.from({ length: n }, (_, i) => ({ key: `k${i}`, teacherId: 't', start: 1, ids: [1, 2, 3 + i], logprobs: [-0.5, -i], topK: 0, topIds: [], topLogprobs: [] }));

test('a shard round-trips and is listed with rows, size and sha256', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'opd-shard-'));
  const e = await writeShard(dir, 'scores-0', teacherScoresToTable(rows(5)));
  assert.equal(e.rows, 5);
  assert.equal(listShards(dir).length, 1);
  const back = tableToTeacherScores(readShard(dir, 'scores-0', teacherScoreSchema));
  assert.deepEqual(back.map((r) => r.ids), rows(5).map((r) => r.ids));
  await assert.rejects(writeShard(dir, 'scores-0', teacherScoresToTable(rows(1))), /already committed/);
});

test('every flipped byte and every truncation is a CorruptArtifactError naming the file', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'opd-shard-'));
  await writeShard(dir, 's', teacherScoresToTable(rows(3)));
  const path = join(dir, 's.arrow');
  const good = readFileSync(path);
  for (let i = 0; i < good.length; i += 7) {
    const bad = Buffer.from(good);
    bad[i] = bad[i]! ^ 0x40;
    writeFileSync(path, bad);
    assert.throws(() => readShard(dir, 's'), (e: unknown) => e instanceof CorruptArtifactError && e.file === path, `flip at ${i}`);
  }
  for (const len of [0, 8, good.length >> 1, good.length - 1]) {
    writeFileSync(path, good);
    truncateSync(path, len);
    assert.throws(() => readShard(dir, 's'), CorruptArtifactError, `truncated to ${len}`);
  }
});

test('an expected schema that differs is refused; an unlisted shard is not read', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'opd-shard-'));
  await writeShard(dir, 's', teacherScoresToTable(rows(2)));
  assert.throws(() => readShard(dir, 's', new Schema([new Field('x', new Int32())])), /schema/);
  writeFileSync(join(dir, 'orphan.arrow'), readFileSync(join(dir, 's.arrow')));
  assert.throws(() => readShard(dir, 'orphan'), /no such committed shard/);
});
