// Tests of conversational prompt files (issue 12): TRL's conversational prompt/completion format and a
// `messages` column, in JSONL, Parquet (list<struct<role, content>>) and Arrow IPC; malformed
// conversations go to the rejects file with their line/row and reason; prompt lengths in tokens are
// measured on the rendered template; plain-string rows keep their exact records.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Field, List, Struct, Table, tableToIPC, vectorFromArray, Utf8 } from 'apache-arrow';
import { parquetWriteFile } from 'hyparquet-writer';
import { ByteTokenizer } from '../tokenizer/byte.ts';
import { loadTokenizer } from '../tokenizer/hf.ts';
import { qwen3Dir } from '../tokenizer/test_fixtures.ts';
import { encodePrompt } from '../chat.ts';
import { loadPrompts } from './load.ts';
import type { Reject } from './types.ts';

const dir = mkdtempSync(join(tmpdir(), 'opd-conversation-'));
const jsonl = (name: string, lines: (string | object)[]) => {
  const path = join(dir, name);
  writeFileSync(path, lines.map((l) => (typeof l === 'string' ? l : JSON.stringify(l))).join('\n') + '\n');
  return path;
};
const sys = { role: 'system', content: 'Answer with a number.' };
const user = (content: string) => ({ role: 'user', content });
const asst = (content: string) => ({ role: 'assistant', content });

test('JSONL: TRL conversational prompt/completion and a messages column become records with messages', async () => {
  const path = jsonl('chat.jsonl', [
    { prompt: [sys, user('What is 64 plus 85?')], completion: [asst('149')], answer: '149' },
    { messages: [user('What is 2 plus 2?'), asst('4'), user('And 3 plus 3?'), asst('6')], answer: 6 },
    { messages: [user('What is 1 plus 1?')], answer: '2' },
    { prompt: 'plain 5+5=', answer: '10' },
  ]);
  const r = await loadPrompts(path);
  assert.deepEqual(r.records, [
    // for opd run the completion column is not read: it stays in meta like any extra column
    { id: 'chat.jsonl:1', prompt: 'What is 64 plus 85?', messages: [sys, user('What is 64 plus 85?')], answer: '149', meta: { completion: [asst('149')] } },
    // a final assistant turn is dropped from the prompt conversation
    { id: 'chat.jsonl:2', prompt: 'And 3 plus 3?', messages: [user('What is 2 plus 2?'), asst('4'), user('And 3 plus 3?')], answer: '6' },
    { id: 'chat.jsonl:3', prompt: 'What is 1 plus 1?', messages: [user('What is 1 plus 1?')], answer: '2' },
    { id: 'chat.jsonl:4', prompt: 'plain 5+5=', answer: '10' },
  ]);
  assert.equal(r.completions, undefined);
  // SFT / scoring: the reference reply is the completion, or the final assistant turn
  const sft = await loadPrompts(path, { requireCompletion: true, requireAnswer: false, maxRejectFraction: 0.5 });
  assert.deepEqual(sft.records.map((x) => x.id), ['chat.jsonl:1', 'chat.jsonl:2']);
  assert.deepEqual(sft.completions, ['149', '6']);
  assert.equal(sft.records[0]!.meta, undefined); // the completion column was read, not left in meta
  assert.deepEqual(sft.rejects.map((x) => [x.line, x.reason]), [
    [3, 'missing field "completion" (or a final assistant turn in "messages")'],
    [4, 'missing field "completion"'],
  ]);
});

test('malformed conversations go to the rejects file with their line and reason', async () => {
  const rows: (string | object)[] = [
    { prompt: [user('ok')], completion: [asst('fine')], answer: '1' },
    { prompt: [user('no reply')], answer: '1' },
    { prompt: { role: 'user', content: 'x' }, answer: '1' },
    { prompt: [], answer: '1' },
    { prompt: [{ role: 'robot', content: 'x' }], answer: '1' },
    { prompt: [{ role: 'user', content: 42 }], answer: '1' },
    { prompt: ['hi'], answer: '1' },
    { prompt: [user('q'), asst('a')], answer: '1' },
    { prompt: [user('   ')], answer: '1' },
    { messages: [asst('only')], answer: '1' },
    { messages: 'not a list', answer: '1' },
    { prompt: 'p', messages: [user('q')], answer: '1' },
    { prompt: [user('q')], completion: [user('not assistant')], answer: '1' },
    { prompt: [user('q')], completion: [asst('a'), asst('b')], answer: '1' },
    { prompt: 'plain', completion: [asst('a')], answer: '1' },
    { messages: [user('q'), asst('a')], completion: 'b', answer: '1' },
    { prompt: [user('q')], completion: 7, answer: '1' },
  ];
  const path = jsonl('bad-chat.jsonl', rows);
  const rejectsFile = join(dir, 'rejects.jsonl');
  const r = await loadPrompts(path, { requireCompletion: true, maxRejectFraction: 1, rejectsFile });
  assert.equal(r.total, rows.length);
  const written: Reject[] = readFileSync(rejectsFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(written, r.rejects);
  assert.deepEqual(written.map((x) => [x.line, x.reason]), [
    [2, 'missing field "completion"'],
    [3, 'field "prompt" must be a string or a list of {role, content} messages, got an object'],
    [4, 'field "prompt" is an empty conversation'],
    [5, 'field "prompt" message 0: role must be one of system, user, assistant, got a string "robot"'],
    [6, 'field "prompt" message 0 (user): content must be a string, got 42'],
    [7, 'field "prompt" message 0 must be a {role, content} object, got a string "hi"'],
    [8, 'field "prompt": a prompt conversation must end with a user turn, got assistant'],
    [9, 'field "prompt": the last user turn is empty'],
    [10, 'field "messages" has only an assistant turn; it needs a user turn before it'],
    [11, 'field "messages" must be a list of {role, content} messages, got a string "not a list"'],
    [12, 'both field "prompt" and field "messages" are set; give the prompt in one of them'],
    [13, 'field "completion" must be exactly one assistant turn, got user'],
    [14, 'field "completion" must be exactly one assistant turn, got assistant, assistant'],
    [15, 'field "completion" is a list of messages but the prompt is a plain string; make both conversational or both strings'],
    [16, 'field "messages" ends with an assistant turn and field "completion" is set too; keep one'],
    [17, 'field "completion" must be a string or a list with one {"role": "assistant", "content": ...} message, got 7'],
  ]);
  assert.ok(written.every((x) => x.source === path && x.text.length > 0));
});

test('Parquet list<struct<role, content>> and Arrow List<Struct> columns load as conversations, rejects by row', async () => {
  const messages = [[sys, user('3+4=')], [user('5+6=')], [{ role: 'user', content: null }]];
  const pq = join(dir, 'chat.parquet');
  const str = (name: string) => ({ name, repetition_type: 'OPTIONAL', type: 'BYTE_ARRAY', converted_type: 'UTF8' });
  parquetWriteFile({
    filename: pq,
    columnData: [{ name: 'messages', data: messages }, { name: 'answer', data: ['7', '11', '0'] }],
    schema: [
      { name: 'root', num_children: 2 },
      { name: 'messages', repetition_type: 'OPTIONAL', converted_type: 'LIST', num_children: 1 },
      { name: 'list', repetition_type: 'REPEATED', num_children: 1 },
      { name: 'element', repetition_type: 'OPTIONAL', num_children: 2 },
      str('role'),
      str('content'),
      str('answer'),
    ],
  } as never);
  const structType = new Struct([new Field('role', new Utf8(), true), new Field('content', new Utf8(), true)]);
  const table = new Table({
    messages: vectorFromArray(messages, new List(new Field('item', structType, true))),
    answer: vectorFromArray(['7', '11', '0'], new Utf8()),
  });
  const arrow = join(dir, 'chat.arrow');
  writeFileSync(arrow, tableToIPC(table, 'file'));
  for (const [path, name] of [[pq, 'chat.parquet'], [arrow, 'chat.arrow']] as const) {
    const r = await loadPrompts(path, { maxRejectFraction: 0.5 });
    assert.deepEqual(r.records, [
      { id: `${name}:0`, prompt: '3+4=', messages: [sys, user('3+4=')], answer: '7' },
      { id: `${name}:1`, prompt: '5+6=', messages: [user('5+6=')], answer: '11' },
    ], path);
    assert.deepEqual(r.rejects.map((x) => [x.row, x.reason]), [[2, 'field "messages" message 0 (user): content must be a string, got null']], path);
  }
});

test('maxPromptTokens counts the rendered template (tokens) or every turn (bytes)', async () => {
  const tok = new ByteTokenizer();
  const record = { messages: [sys, user('7+8=')], answer: '15' };
  const path = jsonl('len.jsonl', [record]);
  const rendered = encodePrompt(tok, { prompt: '7+8=', messages: [sys, user('7+8=')] }).length;
  assert.equal(rendered, tok.encode('<|system|>Answer with a number.<|user|>7+8=<|assistant|>', { addSpecialTokens: false }).length);
  assert.equal((await loadPrompts(path, { tokenizer: tok, maxPromptLength: rendered })).records.length, 1);
  await assert.rejects(loadPrompts(path, { tokenizer: tok, maxPromptLength: rendered - 1 }), new RegExp(`prompt too long: ${rendered} tokens > maxPromptLength ${rendered - 1}`));
  // 'none' conditions on the last user turn only: encode('7+8=') with BOS
  assert.equal((await loadPrompts(path, { tokenizer: tok, maxPromptLength: 5, chat: { chatTemplate: 'none' } })).records.length, 1);
  const bytes = 'Answer with a number.'.length + '7+8='.length;
  assert.equal((await loadPrompts(path, { maxPromptLength: bytes })).records.length, 1);
  await assert.rejects(loadPrompts(path, { maxPromptLength: bytes - 1 }), /prompt too long: 25 bytes > maxPromptLength 24/);
});

test('a conversation for a tokenizer without a chat template stops the load naming the file, the record and the fix', async () => {
  const src = qwen3Dir()!;
  const tdir = mkdtempSync(join(tmpdir(), 'opd-no-template-'));
  symlinkSync(join(src, 'tokenizer.json'), join(tdir, 'tokenizer.json'));
  const { chat_template: _drop, ...config } = JSON.parse(readFileSync(join(src, 'tokenizer_config.json'), 'utf8'));
  writeFileSync(join(tdir, 'tokenizer_config.json'), JSON.stringify(config));
  const tok = await loadTokenizer(tdir);
  const path = jsonl('needs-template.jsonl', [{ prompt: 'plain', answer: '1' }, { messages: [user('hi')], answer: '2' }]);
  await assert.rejects(loadPrompts(path, { tokenizer: tok, name: 'data.path' }), (e: Error) => {
    assert.match(e.message, /^data\.path .*needs-template\.jsonl: line 2 is a conversation, but no chat template for the tokenizer in .*opd-no-template-/);
    assert.match(e.message, /set the chat template mode to "none" \(data\.chatTemplate, --chat-template\)/);
    return true;
  });
  // "none": the last user turn, encoded as a plain prompt
  const r = await loadPrompts(path, { tokenizer: tok, chat: { chatTemplate: 'none' } });
  assert.deepEqual(r.records.map((x) => x.prompt), ['plain', 'hi']);
});
