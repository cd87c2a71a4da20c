// Tests of the reward registry: built-ins on hand-written completions, weighted combination, and
// user reward modules (good ones, and bad ones that must fail with the module path and record id).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ByteTokenizer } from '../tokenizer/byte.ts';
import type { TaskRecord } from '../tasks/types.ts';
import { combine } from './combine.ts';
import { loadUserReward } from './user.ts';
import { NonFiniteRewardError } from './types.ts';

const rec: TaskRecord = { id: 'r1', prompt: '12+345=', answer: '357' };
const score = async (terms: Parameters<typeof combine>[0], completion: string, record = rec) => (await combine(terms))(record.prompt, completion, record);

test('numeric_match: correct, wrong, partial, garbage, empty', async () => {
  const t = [{ type: 'numeric_match' }];
  const cases: [string, number][] = [
    ['357', 1], [' 357', 1], ['357\n12', 1], ['357<|eos|>', 1], ['357.0', 1], ['0357', 1], ['it is 357', 1],
    ['356', 0], ['35', 0], ['3570', 0], ['-357', 0], ['12\n357', 0], ['abc', 0], ['', 0], ['\n357', 0],
  ];
  for (const [c, want] of cases) assert.equal(await score(t, c), want, JSON.stringify(c));
  assert.equal(await score([{ type: 'numeric_match', scope: 'all' }], '\n357'), 1);
  assert.equal(await score([{ type: 'numeric_match', tolerance: 1 }], '356'), 1);
  assert.equal(await score(t, '-4', { id: 'n', prompt: '3-7=', answer: '-4' }), 1);
  await assert.rejects(score(t, '1', { id: 'bad', prompt: 'x', answer: 'seven' }), /numeric_match: record bad: expected answer "seven" is not a number/);
});

test('exact_match compares trimmed answers; case sensitivity is a param', async () => {
  const r = { id: 'w', prompt: 'Capital of France?', answer: ' Paris ' };
  assert.equal(await score([{ type: 'exact_match' }], 'Paris\nmore', r), 1);
  assert.equal(await score([{ type: 'exact_match' }], 'paris', r), 0);
  assert.equal(await score([{ type: 'exact_match', caseSensitive: false }], 'paris', r), 1);
  assert.equal(await score([{ type: 'exact_match' }], 'Pari', r), 0);
  assert.equal(await score([{ type: 'exact_match' }], '', r), 0);
  assert.equal(await score([{ type: 'exact_match', scope: 'all' }], 'Paris\nmore', r), 0);
});

test('regex_match uses the configured pattern and refuses bad ones', async () => {
  assert.equal(await score([{ type: 'regex_match', pattern: '^\\d+$' }], '357'), 1);
  assert.equal(await score([{ type: 'regex_match', pattern: '^\\d+$' }], '357 apples'), 0);
  assert.equal(await score([{ type: 'regex_match', pattern: 'APPLE', flags: 'i' }], '3 apples'), 1);
  await assert.rejects(combine([{ type: 'regex_match', pattern: '(' }]), /regex_match: invalid pattern "\("/);
  await assert.rejects(combine([{ type: 'regex_match', pattern: 'a', flags: 'g' }]), /flags may only use i, m, s, u/);
  await assert.rejects(combine([{ type: 'regex_match' }]), /reward regex_match: invalid config[\s\S]*pattern/);
});

test('length_penalty: 0 up to target, -perToken per extra token, capped', async () => {
  const lp = (params: Record<string, unknown>, c: string) => score([{ type: 'length_penalty', ...params }], c);
  assert.equal(await lp({ target: 4 }, '1234'), 0);
  assert.ok(Math.abs((await lp({ target: 4 }, '123456')) - -0.02) < 1e-12);
  assert.equal(await lp({ target: 2, perToken: 0.5 }, '12345'), -1.5);
  assert.equal(await lp({ target: 0, perToken: 1, cap: 2 }, '12345'), -2);
  assert.equal(await lp({ target: 0, perToken: 1 }, 'é'), -2, 'bytes without a tokenizer');
  const withTok = await combine([{ type: 'length_penalty', target: 0, perToken: 1 }], { tokenizer: new ByteTokenizer() });
  assert.equal(await withTok('', 'ab', rec), -2, 'tokens with a tokenizer, no BOS counted');
  await assert.rejects(combine([{ type: 'length_penalty' }]), /length_penalty: invalid config[\s\S]*target/);
  await assert.rejects(combine([{ type: 'length_penalty', target: 3, per_token: 1 }]), /per_token/);
});

test('combine: weighted sum, default weight 1, and clear errors', async () => {
  const terms = [{ type: 'numeric_match', weight: 2 }, { type: 'length_penalty', weight: 0.5, target: 3, perToken: 0.1 }];
  assert.ok(Math.abs((await score(terms, '357 and so on')) - (2 * 1 + 0.5 * -1.0)) < 1e-12);
  assert.ok(Math.abs((await score(terms, '3')) - 0) < 1e-12);
  assert.equal(await score([{ type: 'numeric_match' }, { type: 'exact_match' }], '357'), 2);
  assert.equal(await score([{ type: 'numeric_match', weight: -1 }], '357'), -1);
  await assert.rejects(combine([]), /non-empty list/);
  await assert.rejects(combine([{ type: 'bleu' }]), /reward term 0: unknown type "bleu"; known types: exact_match, length_penalty, module/);
  await assert.rejects(combine([{ type: 'exact_match' }, { type: 'numeric_match', weight: NaN }]), /reward term 1 \(numeric_match\): weight must be a finite number, got NaN/);
  await assert.rejects(combine([{ type: 'numeric_match', weight: '2' as unknown as number }]), /weight must be a finite number, got a string "2"/);
});

const dir = mkdtempSync(join(tmpdir(), 'opd-reward-'));
const mod = (name: string, body: string) => (writeFileSync(join(dir, name), body), join(dir, name));

test('a user module: default export, named export, async, via combine with a relative path', async () => {
  const path = mod('good.mjs', `
    export default (prompt, completion, record) => (completion.trim() === record.answer ? 1 : 0) + prompt.length / 100;
    export async function half(_p, completion) { return completion.length / 2; }
  `);
  const f = await loadUserReward(path);
  assert.equal(await f('12+345=', '357', rec), 1.07);
  assert.equal(await (await loadUserReward(path, { exportName: 'half' }))('', '1234', rec), 2);
  const both = await combine([{ type: 'module', path: 'good.mjs', weight: 2 }, { type: 'module', path: 'good.mjs', export: 'half', weight: 1 }], { baseDir: dir });
  assert.equal(await both('', '357', rec), 2 * 1 + 1.5);
});

test('bad user modules fail naming the module path and what is wrong', async () => {
  const missing = join(dir, 'nope.mjs');
  await assert.rejects(loadUserReward(missing), new RegExp(`reward module ${missing}: file not found`));
  const syntax = mod('syntax.mjs', 'export default (=>');
  await assert.rejects(loadUserReward(syntax), new RegExp(`reward module ${syntax}: failed to import`));
  const noDefault = mod('named.mjs', 'export const score = () => 1; export const other = 2;');
  await assert.rejects(loadUserReward(noDefault), new RegExp(`reward module ${noDefault}: no export named "default" \\(it exports: other, score\\)`));
  await assert.rejects(loadUserReward(noDefault, { exportName: 'other' }), /export "other" is 2, not a function/);
  await assert.rejects(combine([{ type: 'module' }]), { message: /^reward module: path: missing: a module term needs the file exporting the reward \(prompt, completion, record\) => number, e\.g\. "path": "rewards\/mine\.mjs"$/ });
  await assert.rejects(combine([{ type: 'module', path: 'm.mjs', expor: 'x' }]), { message: 'reward module: expor: unknown key; a module term has type, weight, path and export' });
});

test('a user reward returning a non-number, NaN or Infinity, or throwing, names the record id', async () => {
  const bad = mod('bad.mjs', `
    export const nan = () => NaN;
    export const inf = async () => Infinity;
    export const str = () => '1';
    export const none = () => {};
    export const boom = () => { throw new Error('kaput'); };
  `);
  const cases: [string, RegExp][] = [
    ['nan', /\(export "nan"\) returned NaN for record r1; a reward must be a finite number/],
    ['inf', /\(export "inf"\) returned Infinity for record r1/],
    ['str', /\(export "str"\) returned a string "1" for record r1/],
    ['none', /\(export "none"\) returned undefined for record r1/],
    ['boom', /\(export "boom"\) threw on record r1: kaput/],
  ];
  for (const [name, re] of cases) {
    const f = await loadUserReward(bad, { exportName: name });
    await assert.rejects(f('p', 'c', rec), (e: Error) => re.test(e.message) && e.message.includes(`reward module ${bad}`));
  }
});

test('reward time limit: a module that never settles, or busy-loops, fails naming the reward, the record and the limit; the next call gets a fresh worker', async () => {
  const slow = mod('slow.mjs', `
    export const never = () => new Promise(() => {});
    export const busy = (_p, completion) => { if (completion === 'loop') for (;;) {} return 1; };
  `);
  const never = await loadUserReward(slow, { exportName: 'never', timeoutMs: 300 });
  await assert.rejects(never('p', 'c', rec), (e: Error) => e.message.includes(`reward module ${slow} (export "never") did not return within 300 ms for record r1`) && /rewardTimeoutMs = 300\)/.test(e.message));
  const busy = await loadUserReward(slow, { exportName: 'busy', timeoutMs: 300 });
  const call = busy('p', 'loop', rec);
  let settled = false;
  call.then(() => (settled = true), () => (settled = true));
  // the busy loop runs in the worker: this thread still runs its timers while the call is pending
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(settled, false, 'the busy call cannot have returned');
  await assert.rejects(call, /\(export "busy"\) did not return within 300 ms for record r1/);
  assert.equal(await busy('p', 'fine', rec), 1, 'the worker was replaced after the time-out');
  // through combine, with the limit from the context; the error names the module and the record
  const viaCombine = await combine([{ type: 'module', path: 'slow.mjs', export: 'never' }], { baseDir: dir, timeoutMs: 200 });
  await assert.rejects(viaCombine('p', 'c', { ...rec, id: 'q7' }), /reward module slow\.mjs \(export "never"\) did not return within 200 ms for record q7/);
  await assert.rejects(loadUserReward(slow, { timeoutMs: 0 }), /time limit must be a finite number of ms > 0, got 0/);
});

test('a NaN or Infinity reward is a NonFiniteRewardError (the loop skips the step); a non-number is a plain error', async () => {
  const bad = mod('nf.mjs', 'export const nan = () => NaN; export const str = () => "x";');
  await assert.rejects((await loadUserReward(bad, { exportName: 'nan' }))('p', 'c', rec), NonFiniteRewardError);
  await assert.rejects((await loadUserReward(bad, { exportName: 'str' }))('p', 'c', rec), (e: Error) => !(e instanceof NonFiniteRewardError) && /returned a string "x"/.test(e.message));
});

test('a .ts reward module loads in its worker, in a CommonJS package and in an ES module package, default and named exports', async () => {
  for (const type of ['commonjs', 'module']) {
    const d = mkdtempSync(join(tmpdir(), `opd-reward-ts-${type}-`));
    writeFileSync(join(d, 'package.json'), JSON.stringify({ type }));
    writeFileSync(join(d, 'r.ts'), 'export default (_p: string, c: string, r: { answer: string }): number => (c.trim() === r.answer ? 1 : 0);\nexport const half = (): number => 0.5;\n');
    assert.equal(await (await loadUserReward(join(d, 'r.ts')))('p', ' 357', rec), 1, type);
    assert.equal(await (await loadUserReward(join(d, 'r.ts'), { exportName: 'half' }))('p', 'x', rec), 0.5, type);
    await assert.rejects(loadUserReward(join(d, 'r.ts'), { exportName: 'nope' }), /no export named "nope" \(it exports: (default, half|half, default)\)/);
  }
});
