// HttpTeacher against loopback fakes of vLLM and SGLang (teacher/fake-servers.ts): both formats
// parse to the fake's deterministic values (also top-k); transport faults, 429 and 5xx are retried
// (counted at the fake); bad content is refused without retry and the whole score() call rejects,
// so no wrong score can reach the cache; other 4xx fail at once with the server's message; the
// concurrency bound holds; a closed port fails clearly after the retries; checkServer's errors.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type FakeBehaviour, type FakeServer, type Fault, fakeLogprob, fakeTopIds, startFakeServer } from './fake-servers.ts';
import { HttpTeacher, type HttpTeacherOptions } from './http.ts';
import { type TeacherRequest, TeacherScoreError } from './types.ts';

const reqs: TeacherRequest[] = [
  { ids: [3, 14, 15, 92, 65, 35], start: 2 },
  { ids: [27, 18, 28], start: 1 },
];
const expected = (r: TeacherRequest) => r.ids.slice(r.start).map((id, i) => fakeLogprob(id, r.start + i));

async function withFake(flavor: 'vllm' | 'sglang', behaviour: FakeBehaviour, fn: (f: FakeServer) => Promise<void>): Promise<void> {
  const fake = await startFakeServer({ flavor, behaviour });
  try {
    await fn(fake);
  } finally {
    await fake.close();
  }
}

// The default timeout is far longer than any answer takes on a loaded machine, so no test but the
// timeout test sees a retry it did not ask for (the request counts below are exact).
const teacherOf = (f: FakeServer, o: Partial<HttpTeacherOptions> = {}) =>
  new HttpTeacher({ url: f.url, model: 'fake-teacher', flavor: 'vllm', timeoutMs: 60_000, backoffMs: 5, retries: 2, identity: { tokenizerFingerprint: 'fp', vocabSize: 1000 }, ...o });

/** score() on `fault` at scoring request 1, for one flavor. */
async function scoreWithFault(flavor: 'vllm' | 'sglang', fault: Fault, k = 0) {
  let result: { error?: Error; scoring: number; value?: unknown; url: string } = { scoring: 0, url: '' };
  await withFake(flavor, { faults: { 1: fault } }, async (f) => {
    // A fault that never answers needs a timeout; the good attempt after it has the same 3 s.
    const t = teacherOf(f, { flavor, ...(fault.type === 'delay' ? { timeoutMs: 3000 } : {}) });
    try {
      result.value = await t.score([reqs[0]!], { topK: k });
    } catch (e) {
      result.error = e as Error;
    }
    result = { ...result, scoring: f.stats.scoring, url: f.url };
    await t.close();
  });
  return result;
}

for (const flavor of ['vllm', 'sglang'] as const) {
  test(`${flavor}: log-probs and top-k parse to the fake's values`, async () => {
    await withFake(flavor, {}, async (f) => {
      const t = teacherOf(f, { flavor });
      const plain = await t.score(reqs);
      assert.deepEqual(plain.map((s) => s.logprobs), reqs.map(expected));
      assert.equal(plain[0]!.topIds, undefined);
      const top = await t.score(reqs, { topK: 3 });
      reqs.forEach((r, i) => {
        assert.deepEqual(top[i]!.logprobs, expected(r));
        const pos = r.ids.slice(r.start).map((_, j) => r.start + j);
        assert.deepEqual(top[i]!.topIds, pos.map((p) => fakeTopIds(p, 3)));
        assert.deepEqual(top[i]!.topLogprobs, pos.map((p) => fakeTopIds(p, 3).map((id) => fakeLogprob(id, p))));
      });
      assert.equal(f.stats.scoring, 4, 'one HTTP request per TeacherRequest');
      const body = f.stats.bodies[2] as Record<string, any>;
      if (flavor === 'vllm') assert.deepEqual(body, { model: 'fake-teacher', prompt: reqs[0]!.ids, max_tokens: 1, prompt_logprobs: 3, temperature: 1 });
      else assert.deepEqual(body, { input_ids: reqs[0]!.ids, sampling_params: { max_new_tokens: 1, temperature: 1 }, return_logprob: true, logprob_start_len: 0, top_logprobs_num: 3 });
      await t.close();
    });
  });

  test(`${flavor}: 'auto' detects the server from the answer's shape`, async () => {
    await withFake(flavor, {}, async (f) => {
      const t = teacherOf(f, { flavor: 'auto' });
      assert.deepEqual((await t.score(reqs)).map((s) => s.logprobs), reqs.map(expected));
      assert.deepEqual((await t.checkServer()).flavor, flavor);
      assert.equal(f.stats.scoring, 4, 'flavor probe + 2 requests + checkServer probe');
      assert.equal(f.stats.byPath[flavor === 'vllm' ? '/generate' : '/v1/completions'] ?? 0, flavor === 'vllm' ? 0 : 1, 'the other endpoint is probed at most once');
      await t.close();
    });
  });

  const retried: Array<[string, Fault]> = [
    ['a timeout', { type: 'delay', ms: 600_000 }], // never answers
    ['HTTP 500', { type: 'status', status: 500 }],
    ['HTTP 503', { type: 'status', status: 503 }],
    ['a connection reset', { type: 'reset' }],
    ['JSON cut short', { type: 'truncate', how: 'json' }],
    ['a connection dropped mid-body', { type: 'truncate', how: 'socket' }],
  ];
  for (const [name, fault] of retried) {
    test(`${flavor}: ${name} is retried and then scores correctly`, async () => {
      const r = await scoreWithFault(flavor, fault);
      assert.equal(r.error, undefined, r.error?.message);
      assert.deepEqual((r.value as { logprobs: number[] }[])[0]!.logprobs, expected(reqs[0]!));
      assert.equal(r.scoring, 2, 'one failed attempt, one good');
    });
  }

  const refused: Array<[string, Fault, RegExp]> = [
    ['a missing position', { type: 'positions', delta: -1 }, /the answer has 5 positions but 6 tokens were sent/],
    ['an extra position', { type: 'positions', delta: 1 }, /the answer has 7 positions but 6 tokens were sent/],
    ['a different token id', { type: 'token', position: 3 }, /position 3 returned token 93 but 92 was sent \(tokenizer mismatch\?\)/],
    ['a bare NaN', { type: 'nan', position: 4, as: 'NaN' }, /position 4: log-prob NaN is not a finite number/],
    ['a null log-prob', { type: 'nan', position: 4, as: 'null' }, /position 4: log-prob null is not a finite number/],
  ];
  for (const [name, fault, message] of refused) {
    test(`${flavor}: ${name} is refused without a retry`, async () => {
      const r = await scoreWithFault(flavor, fault);
      assert.ok(r.error instanceof TeacherScoreError, `expected a TeacherScoreError, got ${r.error}`);
      assert.match(r.error.message, message);
      assert.ok(r.error.message.startsWith(`${r.url}${flavor === 'vllm' ? '/v1/completions' : '/generate'} request 0: `), r.error.message);
      assert.equal(r.value, undefined);
      assert.equal(r.scoring, 1);
    });
  }
}

test('a bad score anywhere in a batch rejects the whole batch and stops sending the rest', async () => {
  await withFake('vllm', { faults: { 2: { type: 'token', position: 1 } } }, async (f) => {
    const t = teacherOf(f, { concurrency: 1 });
    const batch = Array.from({ length: 6 }, () => reqs[1]!);
    await assert.rejects(t.score(batch), (e: Error) => e instanceof TeacherScoreError && /request 1: position 1 returned token 19 but 18 was sent/.test(e.message));
    assert.equal(f.stats.scoring, 2, 'requests after the bad one are not sent');
    assert.equal((await t.score(batch)).length, 6, 'the teacher still works');
    await t.close();
  });
});

test('a persistent 503 or cut-off JSON fails clearly after the retries', async () => {
  for (const fault of [{ type: 'status', status: 503, message: 'engine overloaded' }, { type: 'truncate' }] as Fault[]) {
    await withFake('vllm', { faults: () => fault }, async (f) => {
      const t = teacherOf(f, { retries: 3 });
      const err = await t.score([reqs[0]!]).catch((e: Error) => e);
      assert.ok(err instanceof Error);
      assert.match(err.message, fault.type === 'status' ? /request 0: HTTP 503: engine overloaded; gave up after 4 attempts/ : /request 0: the answer is not valid JSON .*gave up after 4 attempts/);
      if (fault.type === 'truncate') assert.ok(err instanceof TeacherScoreError);
      assert.equal(f.stats.scoring, 4);
      await t.close();
    });
  }
});

test('429 waits for Retry-After (seconds) or retry-after-ms', async () => {
  for (const [fault, atLeast] of [
    [{ type: 'status', status: 429, retryAfter: '1' }, 950],
    [{ type: 'status', status: 429, retryAfterMs: 150 }, 140],
  ] as Array<[Fault, number]>) {
    await withFake('sglang', { faults: { 1: fault } }, async (f) => {
      const t = teacherOf(f, { flavor: 'sglang' });
      const t0 = performance.now();
      await t.score([reqs[1]!]);
      assert.ok(performance.now() - t0 >= atLeast, `waited ${performance.now() - t0} ms`);
      assert.equal(f.stats.scoring, 2);
      await t.close();
    });
  }
});

test('4xx other than 429 is not retried and carries the server message', async () => {
  await withFake('vllm', { faults: { 2: { type: 'status', status: 400, message: 'prompt too long' } } }, async (f) => {
    const t = teacherOf(f, { model: 'other-model' });
    await assert.rejects(t.score([reqs[0]!]), /v1\/completions request 0: HTTP 404, not retried: The model `other-model` does not exist/);
    assert.equal(f.stats.scoring, 1);
    await assert.rejects(teacherOf(f).score([reqs[0]!]), /HTTP 400, not retried: prompt too long/);
    assert.equal(f.stats.scoring, 2);
  });
});

test('requests in flight never exceed the concurrency bound', async () => {
  await withFake('vllm', { latencyMs: 30 }, async (f) => {
    const t = teacherOf(f, { concurrency: 3 });
    const batch = Array.from({ length: 10 }, (_, i) => ({ ids: [1, 2, 3 + i], start: 1 }));
    await Promise.all([t.score(batch.slice(0, 5)), t.score(batch.slice(5))]);
    assert.equal(f.stats.scoring, 10);
    // The bound is what is promised; whether all 3 slots overlapped at the fake depends on scheduling.
    assert.ok(f.stats.maxInFlight >= 1 && f.stats.maxInFlight <= 3, `${f.stats.maxInFlight} requests in flight at once`);
    await t.close();
  });
});

test('a closed port gives a clear error after the retries', async () => {
  const fake = await startFakeServer({ flavor: 'vllm' });
  await fake.close();
  const t = teacherOf(fake, { retries: 2 });
  await assert.rejects(t.score([reqs[0]!]), (e: Error) => e.message.startsWith(`${fake.url}/v1/completions request 0: connection refused (ECONNREFUSED)`) && /gave up after 3 attempts/.test(e.message));
  await assert.rejects(t.checkServer(), /\/v1\/models: connection refused/);
});

test('requests are checked before anything is sent; close() stops the teacher', async () => {
  await withFake('vllm', { latencyMs: 600_000 }, async (f) => {
    const t = teacherOf(f);
    await assert.rejects(t.score([{ ids: [1, 1000], start: 1 }]), /request 0: token id 1000 at position 1 is outside the vocabulary 0..999/);
    await assert.rejects(t.score([{ ids: [1, 2], start: 0 }]), /start 0 outside 1..2/);
    assert.equal(f.stats.scoring, 0);
    const pending = t.score(reqs);
    while (f.stats.scoring < reqs.length) await new Promise((r) => setTimeout(r, 5)); // both requests are at the fake, which never answers
    await t.close();
    await assert.rejects(pending, /the teacher was closed/);
    await assert.rejects(t.score(reqs), /score\(\) after close\(\)/);
  });
});

test('checkServer: lists the model, answers the probe, or says what is wrong', async () => {
  await withFake('sglang', { models: ['big-teacher', 'other'] }, async (f) => {
    assert.deepEqual(await teacherOf(f, { model: 'big-teacher', flavor: 'sglang' }).checkServer(), { flavor: 'sglang', models: ['big-teacher', 'other'] });
    await assert.rejects(teacherOf(f, { model: 'fake-teacher', flavor: 'sglang' }).checkServer(), /\/v1\/models: model "fake-teacher" is not served here; available: big-teacher, other/);
  });
  await withFake('vllm', { faults: () => ({ type: 'status', status: 400, message: 'no prompt logprobs here' }) }, async (f) => {
    await assert.rejects(teacherOf(f).checkServer(), /request 0: HTTP 400, not retried: no prompt logprobs here/);
  });
  await withFake('vllm', {}, async (f) => {
    await assert.rejects(teacherOf(f, { flavor: 'sglang' }).checkServer(), /\/generate request 0: HTTP 404, not retried: no such endpoint/);
  });
});
