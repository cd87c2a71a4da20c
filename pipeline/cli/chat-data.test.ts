// Conversational data through the CLI (issue 12): `opd score`, `opd sft` and `opd eval` read TRL
// conversational prompt/completion records and a "messages" column (JSONL and Parquet), render them
// with the model's own chat template (the byte tokenizer's `<|user|>…<|assistant|>` template), send
// malformed records to the rejects file with line and reason, and leave plain-string records as
// they were. Expected ids are computed here from the template text, not read back from a run.

import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, test } from 'node:test';
import { parquetWriteFile } from 'hyparquet-writer';
import { ByteTokenizer } from '../../data/tokenizer/byte.ts';
import { tinyConfig } from '../../student/model/init.ts';
import { opd } from './opd-bin.ts';

const dir = mkdtempSync(join(tmpdir(), 'opd-chat-data-'));
const model = join(dir, 'm');
const tok = new ByteTokenizer();
const EOS = tok.eosTokenIds[0]!;
const bytes = (s: string) => [...Buffer.from(s, 'utf8')];
const jsonl = (name: string, rows: unknown[]) => (writeFileSync(join(dir, name), rows.map((r) => (typeof r === 'string' ? r : JSON.stringify(r))).join('\n') + '\n'), join(dir, name));
const lines = (s: string) => s.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l));
const user = (content: string) => ({ role: 'user', content });
const asst = (content: string) => ({ role: 'assistant', content });

before(async () => {
  writeFileSync(join(dir, 'config.json'), JSON.stringify(tinyConfig()));
  const init = await opd('model', 'init', '--config', join(dir, 'config.json'), '--out', model, '--seed', '1');
  assert.equal(init.code, 0, init.stderr);
});

test('opd score: conversational records score the assistant turn through its end of turn; plain records as before; Parquet equals JSONL', async () => {
  const rows = [
    { prompt: [{ role: 'system', content: 'S' }, user('1+2=')], completion: [asst('3')] },
    { messages: [user('4+4='), asst('8')] },
    { prompt: '1+2=', completion: '3' },
  ];
  const input = jsonl('score.jsonl', rows);
  const out = await opd('score', '--model', model, '--input', input);
  assert.equal(out.code, 0, out.stderr);
  const got = lines(out.stdout);
  assert.deepEqual(got.map((l) => l.line), [1, 2, 3]);
  // the byte template writes the assistant turn as content + <|eos|>: both are scored
  assert.deepEqual(got[0].ids, [...bytes('3'), EOS]);
  assert.deepEqual(got[1].ids, [...bytes('8'), EOS]);
  assert.deepEqual(got[2].ids, bytes('3'), 'a plain record scores its completion bytes only, as before');
  for (const l of got) assert.ok(l.logprobs.length === l.ids.length && l.logprobs.every((x: number) => x < 0));

  // the same conversations as a Parquet messages column score the same
  const pq = join(dir, 'score.parquet');
  const str = (name: string) => ({ name, repetition_type: 'OPTIONAL', type: 'BYTE_ARRAY', converted_type: 'UTF8' });
  parquetWriteFile({
    filename: pq,
    columnData: [{ name: 'messages', data: [[{ role: 'system', content: 'S' }, user('1+2='), asst('3')], [user('4+4='), asst('8')]] }],
    schema: [
      { name: 'root', num_children: 1 },
      { name: 'messages', repetition_type: 'OPTIONAL', converted_type: 'LIST', num_children: 1 },
      { name: 'list', repetition_type: 'REPEATED', num_children: 1 },
      { name: 'element', repetition_type: 'OPTIONAL', num_children: 2 },
      str('role'),
      str('content'),
    ],
  } as never);
  const fromPq = await opd('score', '--model', model, '--input', pq);
  assert.equal(fromPq.code, 0, fromPq.stderr);
  const pqLines = lines(fromPq.stdout);
  assert.deepEqual(pqLines.map((l) => l.row), [0, 1]);
  assert.deepEqual(pqLines.map((l) => [l.ids, l.logprobs]), got.slice(0, 2).map((l) => [l.ids, l.logprobs]));

  // --chat-template none: a conversation is its last user turn and plain completion, encoded as plain strings are
  const none = await opd('score', '--model', model, '--input', input, '--chat-template', 'none');
  assert.equal(none.code, 0, none.stderr);
  assert.deepEqual(lines(none.stdout).map((l) => l.ids), [bytes('3'), bytes('8'), bytes('3')]);
  assert.deepEqual(lines(none.stdout)[0].logprobs, got[2].logprobs, '"1+2=" → "3" scores the same as the plain record');
});

test('opd score: a malformed conversation is an error naming its line, or with --rejects a reject with line and reason', async () => {
  const input = jsonl('score-bad.jsonl', [{ prompt: [user('1+2=')], completion: [asst('3')] }, { prompt: [{ role: 'robot', content: 'x' }], completion: 'y' }]);
  const bad = await opd('score', '--model', model, '--input', input);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /score-bad\.jsonl:2: field "prompt" message 0: role must be one of system, user, assistant, got a string "robot"/);
  const rejects = join(dir, 'score-rejects.jsonl');
  const ok = await opd('score', '--model', model, '--input', input, '--rejects', rejects);
  assert.equal(ok.code, 0, ok.stderr);
  assert.deepEqual(lines(ok.stdout).map((l) => l.line), [1]);
  assert.deepEqual(lines(readFileSync(rejects, 'utf8')).map((r) => [r.line, r.reason]), [[2, 'field "prompt" message 0: role must be one of system, user, assistant, got a string "robot"']]);
});

test('opd sft on a messages column: trains, writes the model, and malformed records go to the rejects file', async () => {
  const good = Array.from({ length: 120 }, (_, i) => ({ messages: [user(`${i % 10}+${(i * 3) % 10}=`), asst(String((i % 10) + ((i * 3) % 10)))] }));
  const data = jsonl('sft.jsonl', [...good, { messages: [user('no reply')] }]);
  const out = join(dir, 'sft-out');
  const r = await opd('sft', '--model', model, '--data', data, '--out', out, '--steps', '2', '--batch-size', '4');
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /120 of 121 records loaded, 1 rejected/);
  assert.deepEqual(lines(readFileSync(join(out, 'rejects.jsonl'), 'utf8')).map((x) => [x.line, x.reason]), [[121, 'missing field "completion" (or a final assistant turn in "messages")']]);
  assert.ok(readFileSync(join(out, 'model.safetensors')).length > 0);
});

test('opd eval --data on a conversational file with a reward module: prompts are the last user turns, rewards see no template tokens', async () => {
  const data = jsonl('eval.jsonl', [
    { prompt: [{ role: 'system', content: 'S' }, user('1+2=')], answer: '3' },
    { messages: [user('4+4='), asst('8')], answer: '8' },
  ]);
  const reward = join(dir, 'reward.mjs');
  writeFileSync(reward, 'export default (prompt, completion) => (/<\\|/.test(completion) ? -1 : 1);\n');
  const out = join(dir, 'eval-out.jsonl');
  const r = await opd('eval', '--model', model, '--data', data, '--reward', reward, '--max-new-tokens', '6', '--out', out, '--json');
  assert.equal(r.code, 0, r.stderr);
  const rows = lines(readFileSync(out, 'utf8'));
  assert.deepEqual(rows.map((x) => x.prompt), ['1+2=', '4+4=']);
  assert.ok(rows.every((x) => x.reward === 1 && !x.completion.includes('<|')), JSON.stringify(rows));
});

test('opd generate: a conversational --input record is rendered like --chat; bad --chat-template-kwargs is a usage error', async () => {
  const input = jsonl('gen.jsonl', [{ messages: [user('1+2=')] }]);
  const fromFile = await opd('generate', '--model', model, '--input', input, '--max-new-tokens', '5', '--json');
  assert.equal(fromFile.code, 0, fromFile.stderr);
  const viaChat = await opd('generate', '--model', model, '--prompt', '1+2=', '--chat', '--max-new-tokens', '5', '--json');
  assert.equal(viaChat.code, 0, viaChat.stderr);
  const [a] = lines(fromFile.stdout);
  const [b] = lines(viaChat.stdout);
  assert.equal(a.prompt, '1+2=');
  assert.deepEqual(a.tokens, b.tokens);
  assert.deepEqual(a.logprobs, b.logprobs);
  const bad = await opd('generate', '--model', model, '--prompt', 'x', '--chat', '--chat-template-kwargs', '[1]');
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--chat-template-kwargs must be a JSON object/);
});

test('opd sft without rejects leaves no rejects file in the model directory', async () => {
  const data = jsonl('sft-clean.jsonl', Array.from({ length: 8 }, (_, i) => ({ prompt: [user(`${i}+0=`)], completion: [asst(String(i))] })));
  const out = join(dir, 'sft-clean');
  const r = await opd('sft', '--model', model, '--data', data, '--out', out, '--steps', '1', '--batch-size', '2');
  assert.equal(r.code, 0, r.stderr);
  assert.ok(!existsSync(join(out, 'rejects.jsonl')));
  assert.ok(existsSync(join(out, 'model.safetensors')));
});
