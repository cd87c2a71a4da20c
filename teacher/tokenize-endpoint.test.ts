// vLLM's POST /tokenize on `opd teacher serve`'s server and on the fake vLLM, and the check an HTTP
// teacher runs with it when it opens (R9 gap 1): same tokenizer → opens; a server whose tokenizer is
// not the configured one → refused, naming the server, the probe and the first differing position;
// a server without /tokenize → opens, with a log line saying the tokenizer is unchecked.

import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { ByteTokenizer } from '../data/tokenizer/byte.ts';
import { loadQwen3, qwen3Dir } from '../data/tokenizer/test_fixtures.ts';
import { initModelDir, tinyConfig } from '../student/model/init.ts';
import { startFakeServer } from './fake-servers.ts';
import { LocalTeacher } from './local.ts';
import { openTeacher } from './open.ts';
import { TeacherServer } from './server.ts';
import { checkServerTokenizer } from './tokenize-endpoint.ts';

let dir: string;
let local: LocalTeacher;
let server: TeacherServer;

before(async () => {
  dir = (await initModelDir(join(mkdtempSync(join(tmpdir(), 'opd-tokenize-')), 'm'), tinyConfig({ max_position_embeddings: 64 }), 5)).dir;
  local = await LocalTeacher.open(dir, { threads: 1 });
  server = await TeacherServer.start(local, { port: 0, modelName: 'tiny' });
});
after(async () => {
  await server.close();
  await local.close();
});

const post = async (url: string, body: unknown) => {
  const r = await fetch(`${url}/tokenize`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: r.status, body: (await r.json()) as Record<string, unknown> };
};

test("opd teacher serve's /tokenize: the served tokenizer's ids for a prompt and for a conversation, vLLM's shape", async () => {
  const byte = new ByteTokenizer();
  const a = await post(server.url, { model: 'tiny', prompt: 'hé', return_token_strs: true });
  assert.equal(a.status, 200);
  assert.deepEqual(a.body.tokens, byte.encode('hé')); // BOS, h, 0xC3, 0xA9
  assert.equal(a.body.count, 4);
  assert.deepEqual(a.body.token_strs, ['<|bos|>', 'h', 'Ã', '©']);
  const b = await post(server.url, { messages: [{ role: 'user', content: 'hi' }] });
  assert.deepEqual(b.body.tokens, byte.encode('<|user|>hi<|assistant|>', { addSpecialTokens: false }));
  assert.equal((await post(server.url, { model: 'other', prompt: 'x' })).status, 404);
  assert.equal((await post(server.url, { prompt: 3 })).status, 400);
});

test('an HTTP teacher whose server tokenizes like its configured tokenizer opens; another tokenizer is refused, naming the difference', async () => {
  const ok = await openTeacher({ kind: 'http', url: server.url, servedModel: 'tiny', tokenizer: dir });
  await ok.teacher.close();
  await assert.rejects(
    openTeacher({ kind: 'http', url: server.url, servedModel: 'tiny', tokenizer: qwen3Dir()! }),
    (e: unknown) => /teacher server http:\/\/127\.0\.0\.1:\d+ \(model tiny\) tokenizes "The answer is 149\." differently from the tokenizer in .*tokenizer-qwen3.*: position 0 is id 84 there, 785 here/.test(String(e)),
  );
});

test('the fake vLLM answers /tokenize with its tokenizer; without one /tokenize is a 404 and the teacher opens unchecked, saying so', async () => {
  const q = await loadQwen3();
  const fake = await startFakeServer({ flavor: 'vllm', behaviour: { tokenizer: q, vocabSize: q.vocabSize } });
  const bare = await startFakeServer({ flavor: 'vllm' });
  try {
    assert.deepEqual(await checkServerTokenizer(fake.url, 'fake-teacher', q), { checked: true });
    await assert.rejects(checkServerTokenizer(fake.url, 'fake-teacher', new ByteTokenizer(), { label: 'the byte tokenizer' }), /differently from the byte tokenizer: position 0 is id 785 there, 84 here/);
    const logs: string[] = [];
    const t = await openTeacher({ kind: 'http', url: bare.url, servedModel: 'fake-teacher', tokenizer: dir }, { log: (m) => logs.push(m) });
    await t.teacher.close();
    assert.ok(logs.some((l) => /its tokenizer is not checked against .*: .* has no \/tokenize endpoint \(HTTP 404\)/.test(l)), logs.join('\n'));
  } finally {
    await fake.close();
    await bare.close();
  }
});
