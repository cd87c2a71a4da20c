// openTeachers / openTeacher (teacher/open.ts) on loopback fakes of vLLM and SGLang: teachers come
// back by id in spec order, behind the score cache when asked, with the routes for several and the
// one teacher for one; identities are taken from the tokenizer; duplicate ids, an HTTP teacher
// without a tokenizer and a server that does not list the model are errors; no specs open nothing.

import assert from 'node:assert/strict';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, test } from 'node:test';
import { loadTokenizer } from '../data/tokenizer/hf.ts';
import { initModelDir, tinyConfig } from '../student/model/init.ts';
import { CachedTeacher } from './cache.ts';
import { type FakeServer, fakeLogprob, startFakeServer } from './fake-servers.ts';
import { HttpTeacher } from './http.ts';
import { openTeacher, openTeachers } from './open.ts';

let root: string;
let tokDir: string;

before(async () => {
  root = mkdtempSync(join(tmpdir(), 'opd-open-teachers-'));
  tokDir = join(root, 'm');
  await initModelDir(tokDir, tinyConfig(), 0);
});

async function withFakes(fn: (v: FakeServer, s: FakeServer) => Promise<void>): Promise<void> {
  const [v, s] = await Promise.all([startFakeServer({ flavor: 'vllm' }), startFakeServer({ flavor: 'sglang' })]);
  try {
    await fn(v, s);
  } finally {
    await Promise.all([v.close(), s.close()]);
  }
}

test('several teachers: by id in spec order, behind the score cache, with the routes; scores through each', async () => {
  await withFakes(async (v, s) => {
    const cacheDir = join(root, 'cache');
    const t = await openTeachers(
      [
        { id: 'a', kind: 'http', url: v.url, servedModel: 'fake-teacher' },
        { id: 'b', kind: 'http', url: `${s.url}/v1`, servedModel: 'fake-teacher', flavor: 'auto', tokenizer: tokDir },
      ],
      { defaultTokenizer: tokDir, cacheDir, routing: { byTag: { x: 'b' }, defaultTeacher: 'a' } },
    );
    try {
      assert.deepEqual(t.list.map((o) => o.id), ['a', 'b']);
      assert.equal(t.single, null);
      assert.deepEqual([...t.routed!.byId.keys()], ['a', 'b']);
      assert.deepEqual(t.routed!.routes, { byTag: { x: 'b' }, defaultTeacher: 'a' });
      assert.ok(t.list.every((o) => o.teacher instanceof CachedTeacher));
      const tok = await loadTokenizer(tokDir);
      for (const o of t.list) {
        assert.equal(o.teacher.identity.tokenizerFingerprint, tok.fingerprint());
        assert.equal(o.teacher.identity.vocabSize, tok.vocabSize);
        const [score] = await o.teacher.score([{ ids: [257, 49, 43], start: 1 }]);
        assert.deepEqual(score!.logprobs, [fakeLogprob(49, 1), fakeLogprob(43, 2)].map(Math.fround));
      }
      assert.ok(existsSync(cacheDir));
    } finally {
      await t.close();
    }
  });
});

test('one teacher: single, no routes; without cacheDir the backend itself', async () => {
  await withFakes(async (v) => {
    const t = await openTeachers([{ id: 'only', kind: 'http', url: v.url, servedModel: 'fake-teacher', flavor: 'vllm' }], { defaultTokenizer: tokDir });
    try {
      assert.ok(t.single instanceof HttpTeacher);
      assert.equal(t.routed, undefined);
      assert.equal(t.byId.get('only'), t.single);
    } finally {
      await t.close();
    }
  });
});

test('no specs open nothing (no cache directory either); bad specs are errors', async () => {
  const none = await openTeachers([], { cacheDir: join(root, 'unused-cache') });
  assert.equal(none.single, null);
  assert.equal(none.list.length, 0);
  assert.ok(!existsSync(join(root, 'unused-cache')));
  await assert.rejects(
    openTeachers([{ id: 'x', kind: 'http', url: 'http://127.0.0.1:9', servedModel: 'm' }, { id: 'x', kind: 'local', path: tokDir }]),
    /teacher id "x" is used twice/,
  );
  await assert.rejects(openTeacher({ id: 'h', kind: 'http', url: 'http://127.0.0.1:9', servedModel: 'm' }), /http teacher h \(http:\/\/127\.0\.0\.1:9\): no tokenizer/);
  await withFakes(async (v) => {
    await assert.rejects(
      openTeachers([{ kind: 'http', url: v.url, servedModel: 'other' }], { defaultTokenizer: tokDir }),
      /\/v1\/models: model "other" is not served here; available: fake-teacher/,
    );
    const unchecked = await openTeacher({ kind: 'http', url: v.url, servedModel: 'other' }, { defaultTokenizer: tokDir, checkServer: false });
    assert.equal(unchecked.id, 'teacher');
    await unchecked.teacher.close();
  });
});
