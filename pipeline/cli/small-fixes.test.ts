// Smaller CLI behaviours, in child processes: opd generate fits its default --max-new-tokens to the
// model's context; opd model init says when it writes no tokenizer and copies one with --tokenizer;
// opd score --teacher URL takes the server's only model; missing input files name their flag or
// field; a module reward without a path is a config error naming rewards[i].path.

import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadPrompts } from '../../data/sources/index.ts';
import { tinyConfig } from '../../student/model/init.ts';
import { startFakeServer } from '../../teacher/fake-servers.ts';
import { parseRunConfig } from '../config.ts';
import { opd } from './opd-bin.ts';

const tmp = () => mkdtempSync(join(tmpdir(), 'opd-small-'));

/** `opd model init` of tinyConfig(overrides) into dir/name. */
async function initModel(dir: string, name: string, overrides: Record<string, unknown>, ...flags: string[]) {
  writeFileSync(join(dir, `${name}.json`), JSON.stringify(tinyConfig(overrides)));
  return opd('model', 'init', '--config', join(dir, `${name}.json`), '--out', join(dir, name), ...flags);
}

test('opd generate: the default --max-new-tokens fits a context of 64; a prompt filling the context is a clear error', { timeout: 60_000 }, async () => {
  const dir = tmp();
  assert.equal((await initModel(dir, 'm', { max_position_embeddings: 64 })).code, 0);
  const g = await opd('generate', '--model', join(dir, 'm'), '--prompt', '1+2=', '--json');
  assert.equal(g.code, 0, g.stderr);
  assert.match(g.stderr, /--max-new-tokens 59 \(default 64, cut to the model's context 64 − the longest prompt's 5 tokens\)/);
  const out = JSON.parse(g.stdout) as { tokens: number[] };
  assert.ok(out.tokens.length >= 1 && out.tokens.length <= 59, `${out.tokens.length} tokens`);
  const long = await opd('generate', '--model', join(dir, 'm'), '--prompt', 'x'.repeat(70));
  assert.equal(long.code, 1);
  assert.match(long.stderr, /prompt 0 has 71 tokens, and the model's context \(max_position_embeddings\) is 64: no room to generate/);
});

test('opd model init: a vocab_size without a tokenizer says so; --tokenizer DIR copies one whose ids fit', { timeout: 60_000 }, async () => {
  const dir = tmp();
  assert.equal((await initModel(dir, 'byte', {})).code, 0);
  const bare = await initModel(dir, 'v512', { vocab_size: 512 });
  assert.equal(bare.code, 0);
  assert.match(bare.stderr, /no tokenizer written to .*v512: vocab_size 512 is not the byte tokenizer's 264\. .*rerun with --tokenizer DIR/);
  assert.ok(!existsSync(join(dir, 'v512', 'tokenizer.json')));
  const copied = await initModel(dir, 'v512t', { vocab_size: 512 }, '--tokenizer', join(dir, 'byte'));
  assert.equal(copied.code, 0, copied.stderr);
  assert.match(copied.stdout, /tokenizer: copied from .*byte \(264 token ids\)/);
  const g = await opd('generate', '--model', join(dir, 'v512t'), '--prompt', '1+', '--max-new-tokens', '2');
  assert.equal(g.code, 0, 'the directory opd made is usable: ' + g.stderr);
  const small = await initModel(dir, 'v200', { vocab_size: 200 }, '--tokenizer', join(dir, 'byte'));
  assert.equal(small.code, 1);
  assert.match(small.stderr, /its ids go up to 263, but vocab_size is 200/);
});

test('opd score --teacher URL: --served-model defaults to the only model the server lists; several must be chosen', { timeout: 60_000 }, async () => {
  const dir = tmp();
  assert.equal((await initModel(dir, 'm', {})).code, 0);
  writeFileSync(join(dir, 'in.jsonl'), '{"prompt":"1+2=","completion":"3"}\n');
  const one = await startFakeServer({ flavor: 'vllm', behaviour: { models: ['only-model'] } });
  const two = await startFakeServer({ flavor: 'vllm', behaviour: { models: ['a', 'b'] } });
  try {
    const ok = await opd('score', '--teacher', one.url, '--tokenizer', join(dir, 'm'), '--input', join(dir, 'in.jsonl'));
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(JSON.parse(ok.stdout).ids.length, 1, 'scored with the listed model (the fake refuses any other name)');
    const several = await opd('score', '--teacher', two.url, '--tokenizer', join(dir, 'm'), '--input', join(dir, 'in.jsonl'));
    assert.equal(several.code, 2);
    assert.match(several.stderr, /serves 2 models \(a, b\); choose one with --served-model NAME/);
  } finally {
    await Promise.all([one.close(), two.close()]);
  }
});

test('missing input files name the flag or the config field, never a bare ENOENT', async () => {
  const dir = tmp();
  const sft = await opd('sft', '--model', dir, '--data', join(dir, 'nope.jsonl'), '--out', join(dir, 'o'));
  assert.equal(sft.code, 1);
  assert.equal(sft.stderr.trim(), `opd sft: --data ${join(dir, 'nope.jsonl')}: no such file (resolved to ${join(dir, 'nope.jsonl')})`);
  const score = await opd('score', '--model', dir, '--input', join(dir, 'nope.jsonl'));
  assert.match(score.stderr, /--input .*nope\.jsonl: no such file/);
  await assert.rejects(loadPrompts(join(dir, 'nope.jsonl'), { name: 'data.path' }), { message: `data.path ${join(dir, 'nope.jsonl')}: no such file (resolved to ${join(dir, 'nope.jsonl')})` });
});

test('a module reward without a path is a config error at rewards[i].path, not zod text', () => {
  assert.throws(() => parseRunConfig({ student: 's', data: { path: 'p.jsonl' }, rewards: [{ type: 'numeric_match' }, { type: 'module', export: 3 }], algo: { blend: { mode: 'grpo' } } }, 'c.json'), {
    message: [
      'c.json: rewards[1].path: missing: a module term needs the file exporting the reward (prompt, completion, record) => number, e.g. "path": "rewards/mine.mjs"',
      'c.json: rewards[1].export: 3 is not an export name (a non-empty string; default "default")',
    ].join('\n'),
  });
});
