// Issue acceptance: the same sequences scored by the student's own score graph, by the local
// teacher (worker), and through `opd teacher serve` + the HTTP backend agree to 1e-5.

import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { initModelDir, tinyConfig } from '../student/model/init.ts';
import { weightFeeds } from '../student/model/runner.ts';
import { Scorer } from '../student/model/scorer.ts';
import { HttpTeacher } from './http.ts';
import { LocalTeacher } from './local.ts';
import { TeacherServer } from './server.ts';

test('student score graph, local teacher and served teacher over HTTP agree to 1e-5 (with top-k)', async () => {
  const dir = join(mkdtempSync(join(tmpdir(), 'opd-agree-')), 'm');
  const m = await initModelDir(dir, tinyConfig(), 11);
  const reqs = [
    { ids: [257, 49, 43, 50, 61, 51, 258], start: 5 },
    { ids: [257, 104, 105], start: 1 },
    { ids: [257, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], start: 3 },
  ];
  const feeds = weightFeeds(m.config, m.weights);
  const scorer = await Scorer.create(m.config, () => feeds, { topK: 3 });
  const own = await scorer.score(reqs);
  await scorer.release();

  const local = await LocalTeacher.open(dir, { topK: 3 });
  const server = await TeacherServer.start(local, { modelName: 'tiny' });
  const http = new HttpTeacher({ url: server.url, model: 'tiny', flavor: 'vllm', identity: { tokenizerFingerprint: local.identity.tokenizerFingerprint, vocabSize: local.identity.vocabSize } });
  try {
    const viaLocal = await local.score(reqs, { topK: 3 });
    const viaHttp = await http.score(reqs, { topK: 3 });
    for (const [name, other] of [['local', viaLocal], ['http', viaHttp]] as const) {
      reqs.forEach((_, i) => {
        assert.equal(other[i]!.logprobs.length, own[i]!.logprobs.length, `${name} request ${i} length`);
        other[i]!.logprobs.forEach((x, t) => assert.ok(Math.abs(x - own[i]!.logprobs[t]!) < 1e-5, `${name} request ${i} position ${t}: ${x} vs ${own[i]!.logprobs[t]}`));
        assert.deepEqual(other[i]!.topIds, own[i]!.topIds, `${name} top ids`);
      });
    }
  } finally {
    await http.close();
    await server.close();
    await local.close();
  }
});
