// The `opd` command end to end in a child process: init a tiny model, score JSONL with it, and the
// exit codes and messages of usage and input errors.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { tinyConfig } from '../../student/model/init.ts';

const bin = new URL('../../bin/opd.mjs', import.meta.url).pathname;
const run = async (...args: string[]) => {
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [bin, ...args], { env: { ...process.env, OPD_LOG_LEVEL: 'info' } });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
};

test('opd model init, then opd score: one JSON line per record with a log-prob per scored token', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'opd-cli-'));
  writeFileSync(join(dir, 'config.json'), JSON.stringify(tinyConfig()));
  const init = await run('model', 'init', '--config', join(dir, 'config.json'), '--out', join(dir, 'm'), '--seed', '1');
  assert.equal(init.code, 0, init.stderr);
  writeFileSync(join(dir, 'in.jsonl'), '{"prompt":"1+2=","completion":"3"}\n\n{"text":"abc"}\n');
  const out = await run('score', '--model', join(dir, 'm'), '--input', join(dir, 'in.jsonl'), '--top-k', '3');
  assert.equal(out.code, 0, out.stderr);
  const lines = out.stdout.trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(lines.length, 2);
  assert.deepEqual(lines[0].ids, [51]); // "3" is byte 51
  assert.equal(lines[0].line, 1);
  assert.equal(lines[1].line, 3, 'line numbers count blank lines');
  assert.deepEqual(lines[1].ids, [97, 98, 99]); // the BOS the tokenizer adds is never scored
  for (const l of lines) {
    assert.equal(l.logprobs.length, l.ids.length);
    for (const lp of l.logprobs) assert.ok(lp < 0 && Number.isFinite(lp));
    for (const row of l.top_logprobs) assert.ok(row[0] >= row[1] && row[1] >= row[2], 'top-k sorted');
  }
});

test('usage errors exit 2 naming the flag; bad input exits 1 naming file and line', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'opd-cli-'));
  const missing = await run('score', '--input', 'x.jsonl');
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /give exactly one of --model DIR or --teacher/);
  const unknown = await run('score', '--modle', 'x');
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /modle/);
  writeFileSync(join(dir, 'config.json'), JSON.stringify(tinyConfig()));
  assert.equal((await run('model', 'init', '--config', join(dir, 'config.json'), '--out', join(dir, 'm'))).code, 0);
  writeFileSync(join(dir, 'bad.jsonl'), '{"prompt":"a","completion":"b"}\n{"prompt": 3}\n');
  const bad = await run('score', '--model', join(dir, 'm'), '--input', join(dir, 'bad.jsonl'));
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /bad\.jsonl:2: expected \{"prompt": string, "completion": string\}/);
  const cmd = await run('frobnicate');
  assert.equal(cmd.code, 2);
  assert.match(cmd.stderr, /unknown command "frobnicate"/);
});

test('opd sft: the loss falls, the output is an HF model dir, and two runs are bit-identical', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'opd-cli-'));
  writeFileSync(join(dir, 'config.json'), JSON.stringify(tinyConfig()));
  assert.equal((await run('model', 'init', '--config', join(dir, 'config.json'), '--out', join(dir, 'm'), '--seed', '2')).code, 0);
  const lines = Array.from({ length: 50 }, (_, i) => JSON.stringify({ prompt: `${i % 10}+${(i * 3) % 10}=`, completion: String((i % 10) + ((i * 3) % 10)) }));
  writeFileSync(join(dir, 'd.jsonl'), lines.join('\n') + '\n');
  const args = ['sft', '--model', join(dir, 'm'), '--data', join(dir, 'd.jsonl'), '--steps', '60', '--lr', '3e-3', '--batch-size', '8', '--seed', '1'];
  const a = await run(...args, '--out', join(dir, 'a'));
  assert.equal(a.code, 0, a.stderr);
  const losses = [...a.stderr.matchAll(/loss (\d+\.\d+)/g)].map((m) => Number(m[1]));
  assert.ok(losses[0]! > 3 && losses.at(-1)! < 0.75 * losses[0]!, `loss should fall: ${losses.join(', ')}`);
  assert.equal((await run(...args, '--out', join(dir, 'b'))).code, 0);
  assert.ok(readFileSync(join(dir, 'a', 'model.safetensors')).equals(readFileSync(join(dir, 'b', 'model.safetensors'))), 'bit-identical weights');
  const scored = await run('score', '--model', join(dir, 'a'), '--input', join(dir, 'd.jsonl'));
  assert.equal(scored.code, 0, 'the SFT output loads as a model directory');
  const gen = await run('generate', '--model', join(dir, 'a'), '--prompt', '1+3=', '--prompt', '2+2=', '--max-new-tokens', '4', '--json');
  assert.equal(gen.code, 0, gen.stderr);
  const outs = gen.stdout.trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(outs.length, 2);
  for (const o of outs) {
    assert.equal(o.tokens.length, o.logprobs.length);
    assert.ok(o.tokens.length >= 1 && o.tokens.length <= 4);
    assert.equal(o.truncated, o.finish_reason === 'length');
  }
});
