// Tests of the task registry: determinism per seed, train/test disjointness, correct answers,
// difficulty knobs, prompt lengths, config errors, and the answer format round trip.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { combine } from '../rewards/combine.ts';
import { extractAnswer } from './answer.ts';
import { createTask, taskNames } from './registry.ts';
import { splitOf } from './split.ts';
import { writtenProduct } from './long_multiplication.ts';

test('registry lists the built-ins and refuses unknown names and config keys', () => {
  assert.deepEqual(taskNames(), ['arithmetic', 'long_multiplication', 'word_problems']);
  assert.throws(() => createTask('chess'), /unknown task "chess"; known tasks: arithmetic, long_multiplication, word_problems/);
  assert.throws(() => createTask('arithmetic', { digit: 3 }), /task arithmetic: invalid config[\s\S]*digit/);
  assert.throws(() => createTask('arithmetic', { digits: 2, minDigits: 3 }), /minDigits must be <= digits/);
  assert.throws(() => createTask('word_problems', { ops: [] }), /task word_problems: invalid config/);
  assert.equal(createTask('arithmetic').config.digits, 3);
  assert.ok(Object.isFrozen(createTask('arithmetic').config));
});

// The shared checks draw up to 6000 train problems: long_multiplication's default space (720) is
// too small for that, so it runs them on 2-3 digit multiplicands (7920 problems).
const sharedConfig: Record<string, unknown> = { long_multiplication: { digits: 3, minDigits: 2 } };

for (const name of taskNames()) {
  test(`${name}: generation is deterministic per seed and differs across seeds`, () => {
    const task = createTask(name, sharedConfig[name]);
    const a = task.generate('train', 200, 7);
    assert.deepEqual(task.generate('train', 200, 7), a);
    assert.deepEqual(createTask(name, sharedConfig[name]).generate('train', 200, 7), a);
    assert.notDeepEqual(task.generate('train', 200, 8), a);
    assert.equal(new Set(a.map((r) => r.id)).size, 200);
    assert.equal(new Set(a.map((r) => r.prompt)).size, 200, 'prompts distinct within a call');
    assert.equal(a[0]!.id, `${name}:train:7:0`);
  });

  test(`${name}: no test prompt appears in train, for any pair of seeds`, () => {
    const task = createTask(name, sharedConfig[name]);
    const train = new Set([1, 2, 3].flatMap((s) => task.generate('train', 2000, s).map((r) => r.prompt)));
    for (const seed of [1, 2, 99]) for (const r of task.generate('test', 200, seed)) assert.ok(!train.has(r.prompt), r.prompt);
  });

  test(`${name}: the demonstration is the answer, and the task's own reward gives it 1`, async () => {
    const task = createTask(name, sharedConfig[name]);
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

test('long_multiplication: the written-out trace is right step by step, and only the whole trace is rewarded', async () => {
  // hand-written traces
  assert.equal(writtenProduct(47, 8), '7*8=56,40*8=320,56+320=376');
  assert.equal(writtenProduct(305, 7), '5*7=35,0*7=0,300*7=2100,35+0=35,35+2100=2135');
  assert.equal(writtenProduct(6, 3), '6*3=18');
  const task = createTask('long_multiplication');
  assert.equal(task.config.testFraction, 0.2);
  const all = [...task.generate('train', 500, 1), ...task.generate('test', 100, 1)];
  for (const r of all) {
    const m = /^(\d{2})\*([2-9])=$/.exec(r.prompt);
    assert.ok(m, r.prompt);
    const [a, k] = [Number(m[1]), Number(m[2])];
    // independent check: every term of the trace is a true equation, and the last one is a·k
    const terms = r.answer.split(',');
    assert.equal(terms.length, 3, r.answer);
    for (const t of terms) {
      const e = /^(\d+)([*+])(\d+)=(\d+)$/.exec(t);
      assert.ok(e, t);
      assert.equal(Number(e[4]), e[2] === '*' ? Number(e[1]) * Number(e[3]) : Number(e[1]) + Number(e[3]), t);
    }
    assert.equal(Number(terms.at(-1)!.split('=')[1]), a * k);
    assert.ok(r.answer.length >= 15, `answers are long: ${r.answer}`);
  }
  const reward = await combine(task.reward);
  const r = createTask('long_multiplication').generate('test', 1, 0)[0]!;
  assert.equal(await reward(r.prompt, r.answer + '<|eos|>', r), 1);
  const slip = r.answer.replace(/\d$/, (d) => String((Number(d) + 1) % 10)); // last digit of the final sum wrong
  assert.equal(await reward(r.prompt, slip, r), 0, 'a slip in the last sum earns nothing');
  assert.equal(await reward(r.prompt, r.answer.split(',').slice(0, 2).join(','), r), 0, 'a partial trace earns nothing');
  assert.throws(() => createTask('long_multiplication', { digits: 5 }), /invalid config/);
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
