// Tests of the task registry: determinism per seed, train/test disjointness, correct answers,
// difficulty knobs, prompt lengths, config errors, and the answer format round trip.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { combine } from '../rewards/combine.ts';
import { extractAnswer } from './answer.ts';
import { createTask, taskNames } from './registry.ts';
import { splitOf } from './split.ts';

test('registry lists the built-ins and refuses unknown names and config keys', () => {
  assert.deepEqual(taskNames(), ['arithmetic', 'word_problems']);
  assert.throws(() => createTask('chess'), /unknown task "chess"; known tasks: arithmetic, word_problems/);
  assert.throws(() => createTask('arithmetic', { digit: 3 }), /task arithmetic: invalid config[\s\S]*digit/);
  assert.throws(() => createTask('arithmetic', { digits: 2, minDigits: 3 }), /minDigits must be <= digits/);
  assert.throws(() => createTask('word_problems', { ops: [] }), /task word_problems: invalid config/);
  assert.equal(createTask('arithmetic').config.digits, 3);
  assert.ok(Object.isFrozen(createTask('arithmetic').config));
});

for (const name of taskNames()) {
  test(`${name}: generation is deterministic per seed and differs across seeds`, () => {
    const task = createTask(name);
    const a = task.generate('train', 200, 7);
    assert.deepEqual(task.generate('train', 200, 7), a);
    assert.deepEqual(createTask(name).generate('train', 200, 7), a);
    assert.notDeepEqual(task.generate('train', 200, 8), a);
    assert.equal(new Set(a.map((r) => r.id)).size, 200);
    assert.equal(new Set(a.map((r) => r.prompt)).size, 200, 'prompts distinct within a call');
    assert.equal(a[0]!.id, `${name}:train:7:0`);
  });

  test(`${name}: no test prompt appears in train, for any pair of seeds`, () => {
    const task = createTask(name);
    const train = new Set([1, 2, 3].flatMap((s) => task.generate('train', 2000, s).map((r) => r.prompt)));
    for (const seed of [1, 2, 99]) for (const r of task.generate('test', 200, seed)) assert.ok(!train.has(r.prompt), r.prompt);
  });

  test(`${name}: the demonstration is the answer, and the task's own reward gives it 1`, async () => {
    const task = createTask(name);
    const reward = await combine(task.reward);
    for (const r of task.generate('test', 50, 3)) {
      assert.equal(task.demonstration(r), r.answer);
      assert.equal(await reward(r.prompt, task.demonstration(r), r), 1);
      assert.equal(await reward(r.prompt, String(Number(r.answer) + 1), r), 0);
    }
  });
}

test('arithmetic: answers are right, prompts short, tags name the operation', () => {
  for (const r of createTask('arithmetic').generate('train', 500, 1)) {
    const m = /^(\d+)([+-])(\d+)=$/.exec(r.prompt);
    assert.ok(m, r.prompt);
    const [a, b] = [Number(m[1]), Number(m[3])];
    assert.equal(r.answer, String(m[2] === '+' ? a + b : a - b));
    assert.ok(Number(r.answer) >= 0, 'non-negative by default');
    assert.equal(r.tag, m[2] === '+' ? 'add' : 'sub');
    assert.ok(r.prompt.length <= 8 && r.answer.length <= 4);
  }
  for (const r of createTask('arithmetic', { digits: 9 }).generate('test', 200, 1)) assert.ok(r.prompt.length <= 20);
});

test('arithmetic: digits, minDigits, ops and allowNegative knobs', () => {
  const one = createTask('arithmetic', { digits: 1, ops: ['+'] }).generate('train', 60, 1);
  assert.ok(one.every((r) => /^\d\+\d=$/.test(r.prompt)));
  const four = createTask('arithmetic', { digits: 4, minDigits: 4 }).generate('train', 100, 1);
  assert.ok(four.every((r) => /^\d{4}[+-]\d{4}=$/.test(r.prompt) && !r.prompt.startsWith('0')));
  const neg = createTask('arithmetic', { digits: 3, ops: ['-'], allowNegative: true }).generate('train', 200, 1);
  assert.ok(neg.some((r) => r.answer.startsWith('-')));
});

test('a split too small for n fails with advice instead of looping', () => {
  const tiny = createTask('arithmetic', { digits: 1, ops: ['+'] }); // 100 problems, ~10 in test
  assert.throws(() => tiny.generate('test', 50, 1), /found only \d+ distinct test problems .* asked for 50/);
  assert.throws(() => tiny.generate('train', -1, 1), /n must be a non-negative integer/);
});

test('word_problems: answers follow the operands, prompts stay under 40 bytes, test operands unseen', () => {
  const task = createTask('word_problems');
  const ops: Record<string, (a: number, b: number) => number> = { add: (a, b) => a + b, sub: (a, b) => a - b, mul: (a, b) => a * b, div: (a, b) => a / b };
  const train = task.generate('train', 3000, 1);
  for (const r of train) {
    const { op, a, b } = r.meta as { op: string; a: number; b: number };
    assert.equal(r.answer, String(ops[op]!(a, b)));
    assert.ok(Number.isInteger(Number(r.answer)) && Number(r.answer) >= 0);
    assert.ok(r.prompt.includes(String(a)) && r.prompt.includes(String(b)));
    assert.ok(Buffer.byteLength(r.prompt) <= 40, r.prompt);
  }
  assert.deepEqual(new Set(train.map((r) => r.tag)), new Set(['add', 'sub', 'mul', 'div']));
  const key = (r: { meta?: Record<string, unknown> }) => `${r.meta!.op}:${r.meta!.a}:${r.meta!.b}`;
  const trainKeys = new Set(train.map(key));
  for (const r of task.generate('test', 300, 1)) assert.ok(!trainKeys.has(key(r)), key(r));
  assert.ok(createTask('word_problems', { ops: ['mul'] }).generate('train', 30, 1).every((r) => r.tag === 'mul'));
});

test('raising testFraction only moves problems into test', () => {
  for (let i = 0; i < 2000; i++) if (splitOf('arithmetic', `${i}+1=`, 0.1) === 'test') assert.equal(splitOf('arithmetic', `${i}+1=`, 0.2), 'test');
});

test('extractAnswer reads up to a newline or a special token, trimmed', () => {
  assert.equal(extractAnswer('357'), '357');
  assert.equal(extractAnswer(' 357 \nbecause 300+57'), '357');
  assert.equal(extractAnswer('357<|eos|>junk'), '357');
  assert.equal(extractAnswer(''), '');
  assert.equal(extractAnswer('\n357'), '');
});
