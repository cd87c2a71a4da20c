// Tests of prompt sources: JSONL, Parquet and Arrow IPC files written here, field mapping, rejects
// with line/row numbers, the reject threshold, and too-long prompts rejected or filtered (never cut).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Table, tableToIPC, vectorFromArray, Int64, Utf8, Int32 } from 'apache-arrow';
import { parquetWriteFile } from 'hyparquet-writer';
import { ByteTokenizer } from '../tokenizer/byte.ts';
import { loadPrompts, PromptSourceError } from './load.ts';
import type { Reject } from './types.ts';

const dir = mkdtempSync(join(tmpdir(), 'opd-sources-'));
const file = (name: string, text: string) => (writeFileSync(join(dir, name), text), join(dir, name));
const jsonl = (name: string, lines: (string | object)[]) => file(name, lines.map((l) => (typeof l === 'string' ? l : JSON.stringify(l))).join('\n') + '\n');
const readRejects = (path: string): Reject[] => readFileSync(path, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l));

test('JSONL: records, default ids <file>:<line>, numeric answers, tags and extra fields in meta', async () => {
  const path = jsonl('good.jsonl', [{ prompt: '1+1=', answer: '2', tag: 'add' }, '', { id: 'q7', prompt: '2+3=', answer: 5, level: 2 }]);
  const r = await loadPrompts(path);
  assert.deepEqual(r.records, [
    { id: 'good.jsonl:1', prompt: '1+1=', answer: '2', tag: 'add' },
    { id: 'q7', prompt: '2+3=', answer: '5', meta: { level: 2 } },
  ]);
  assert.equal(r.total, 2);
  assert.deepEqual(r.rejects, []);
  assert.match(r.summary, /good\.jsonl: 2 of 2 records loaded, 0 rejected/);
});

test('JSONL: field mapping', async () => {
  const path = jsonl('mapped.jsonl', [{ question: 'Q?', solution: 'A', kind: 'k', uid: 3 }]);
  const r = await loadPrompts(path, { fields: { prompt: 'question', answer: 'solution', tag: 'kind', id: 'uid' } });
  assert.deepEqual(r.records, [{ id: '3', prompt: 'Q?', answer: 'A', tag: 'k' }]);
  const noAnswer = jsonl('noanswer.jsonl', [{ prompt: 'open question' }]);
  assert.deepEqual((await loadPrompts(noAnswer, { requireAnswer: false })).records[0]!.answer, '');
});

test('JSONL: malformed records go to rejects.jsonl with line and reason', async () => {
  const good = Array.from({ length: 20 }, (_, i) => ({ prompt: `${i}+1=`, answer: String(i + 1) }));
  const path = jsonl('mixed.jsonl', [
    ...good.slice(0, 2),
    '{"prompt": "1+', // 3: bad JSON
    { answer: '3' }, // 4: missing prompt
    { prompt: 42, answer: '1' }, // 5: wrong type
    '[1, 2]', // 6: not an object
    { prompt: 'x', answer: { n: 1 } }, // 7: wrong answer type
    { prompt: '   ', answer: '1' }, // 8: empty prompt
    { id: 'dup', prompt: 'a', answer: '1' }, // 9
    { id: 'dup', prompt: 'b', answer: '2' }, // 10: duplicate id
    { prompt: 'c', answer: '1', tag: 5 }, // 11: wrong tag type
    ...good.slice(2),
  ]);
  const rejectsFile = join(dir, 'rejects.jsonl');
  const r = await loadPrompts(path, { maxRejectFraction: 0.5, rejectsFile });
  assert.equal(r.total, 29);
  assert.equal(r.records.length, 21);
  const written = readRejects(rejectsFile);
  assert.deepEqual(written, r.rejects);
  assert.deepEqual(written.map((x) => [x.line, x.reason.replace(/ \(.*/, '')]), [
    [3, 'invalid JSON'],
    [4, 'missing field "prompt"'],
    [5, 'field "prompt" must be a string, got 42'],
    [6, 'not a JSON object'],
    [7, 'field "answer" must be a string or a finite number, got an object'],
    [8, 'field "prompt" is empty'],
    [10, 'duplicate id "dup"'],
    [11, 'field "tag" must be a string, got 5'],
  ]);
  assert.ok(written.every((x) => x.source === path && x.row === undefined && x.text.length > 0));
  assert.equal(written[0]!.text, '{"prompt": "1+');
  assert.match(r.summary, /21 of 29 records loaded, 8 rejected \(see .*rejects\.jsonl\)/);
});

test('the reject threshold stops loading, after writing the rejects file', async () => {
  const path = jsonl('bad.jsonl', [{ prompt: 'a', answer: '1' }, { prompt: 'b', answer: '2' }, { prompt: 'c' }, 'nope']);
  const rejectsFile = join(dir, 'rejects-bad.jsonl');
  await assert.rejects(loadPrompts(path, { maxRejectFraction: 0.25, rejectsFile }), (e: unknown) => {
    assert.ok(e instanceof PromptSourceError);
    assert.match(e.message, /2 of 4 records rejected \(50\.0% > maxRejectFraction 25\.0%\); first: line 3: missing field "answer"; line 4: invalid JSON/);
    assert.match(e.message, /all rejects in .*rejects-bad\.jsonl/);
    assert.equal(e.rejects.length, 2);
    return true;
  });
  assert.deepEqual(readRejects(rejectsFile).map((x) => x.line), [3, 4]);
  assert.equal((await loadPrompts(path, { maxRejectFraction: 0.5 })).records.length, 2);
  await assert.rejects(loadPrompts(jsonl('one-bad.jsonl', [...Array(50).fill({ prompt: 'p', answer: '1' }).map((x, i) => ({ ...x, id: i })), 'x'])), /1 of 51 records rejected \(2\.0% > maxRejectFraction 1\.0%\)/);
  await assert.rejects(loadPrompts(file('empty.jsonl', '\n\n')), /prompt source .*empty\.jsonl: no records/);
});

test('too-long prompts are rejected or filtered (in tokens or bytes), counted, never sliced', async () => {
  const path = jsonl('long.jsonl', [{ prompt: 'short', answer: '1' }, { prompt: 'x'.repeat(30), answer: '2' }, { prompt: 'é'.repeat(5), answer: '3' }]);
  // bytes: 'short' 5, 'x'*30 30, 'é'*5 10
  const filtered = await loadPrompts(path, { maxPromptLength: 10, onTooLong: 'filter' });
  assert.deepEqual(filtered.records.map((r) => r.prompt), ['short', 'é'.repeat(5)]);
  assert.equal(filtered.filteredTooLong, 1);
  assert.deepEqual(filtered.rejects, []);
  assert.match(filtered.summary, /2 of 3 records loaded, 0 rejected, 1 filtered as longer than 10 bytes/);
  // tokens: the byte tokenizer adds BOS, so 'é'*5 is 11 tokens
  const tok = await loadPrompts(path, { maxPromptLength: 10, tokenizer: new ByteTokenizer(), onTooLong: 'filter' });
  assert.deepEqual(tok.records.map((r) => r.prompt), ['short']);
  assert.equal(tok.filteredTooLong, 2);
  const rejected = await loadPrompts(path, { maxPromptLength: 10, maxRejectFraction: 0.5 });
  assert.deepEqual(rejected.rejects.map((r) => [r.line, r.reason]), [[2, 'prompt too long: 30 bytes > maxPromptLength 10']]);
  assert.ok(rejected.records.every((r) => r.prompt === 'short' || r.prompt === 'é'.repeat(5)));
  await assert.rejects(loadPrompts(path, { maxPromptLength: 10 }), /1 of 3 records rejected/);
  await assert.rejects(loadPrompts(path, { maxPromptLength: 1, onTooLong: 'filter' }), /no usable records \(0 rejected, 3 filtered as too long\)/);
});

test('Parquet: records by row, mapped fields, rejects with row numbers', async () => {
  const path = join(dir, 'data.parquet');
  parquetWriteFile({
    filename: path,
    columnData: [
      { name: 'q', data: ['1+1=', '2+2=', null, '4+4='], type: 'STRING' },
      { name: 'a', data: [2n, 4n, 6n, 8n], type: 'INT64' },
      { name: 'tag', data: ['add', 'add', 'add', null], type: 'STRING' },
    ],
  });
  const r = await loadPrompts(path, { fields: { prompt: 'q', answer: 'a' }, maxRejectFraction: 0.3 });
  assert.deepEqual(r.records, [
    { id: 'data.parquet:0', prompt: '1+1=', answer: '2', tag: 'add' },
    { id: 'data.parquet:1', prompt: '2+2=', answer: '4', tag: 'add' },
    { id: 'data.parquet:3', prompt: '4+4=', answer: '8' },
  ]);
  assert.deepEqual(r.rejects, [{ source: path, row: 2, reason: 'missing field "q"', text: '{"q":null,"a":"6","tag":"add"}' }]);
});

test('Arrow IPC (file and stream formats): records, meta columns, rejects with row numbers', async () => {
  const table = new Table({
    prompt: vectorFromArray(['3+4=', '5+6=', 'bad'], new Utf8()),
    answer: vectorFromArray(['7', '11', '0'], new Utf8()),
    id: vectorFromArray([10n, 11n, 12n], new Int64()),
    level: vectorFromArray([1, 2, 3], new Int32()),
  });
  for (const format of ['file', 'stream'] as const) {
    const path = join(dir, `data-${format}.arrow`);
    writeFileSync(path, tableToIPC(table, format));
    const r = await loadPrompts(path);
    assert.deepEqual(r.records.slice(0, 2), [
      { id: '10', prompt: '3+4=', answer: '7', meta: { level: 1 } },
      { id: '11', prompt: '5+6=', answer: '11', meta: { level: 2 } },
    ]);
  }
  const badTable = new Table({ prompt: vectorFromArray([1, 2], new Int32()), answer: vectorFromArray(['1', '2'], new Utf8()) });
  const badPath = join(dir, 'bad.arrow');
  writeFileSync(badPath, tableToIPC(badTable));
  await assert.rejects(loadPrompts(badPath), /2 of 2 records rejected .* row 0: field "prompt" must be a string, got 1; row 1/);
});

test('unreadable files and unknown extensions fail naming the file', async () => {
  await assert.rejects(loadPrompts(join(dir, 'x.csv')), /x\.csv: unknown extension "\.csv"; known: \.jsonl/);
  const notParquet = file('fake.parquet', 'not parquet at all');
  await assert.rejects(loadPrompts(notParquet), /fake\.parquet: cannot read as Parquet/);
  const notArrow = file('fake.arrow', 'not arrow at all');
  await assert.rejects(loadPrompts(notArrow), /fake\.arrow: cannot read as Arrow IPC/);
  assert.equal((await loadPrompts(jsonl('as.txt', [{ prompt: 'p', answer: '1' }]), { format: 'jsonl' })).records.length, 1);
  await assert.rejects(loadPrompts(join(dir, 'missing.jsonl')), { message: `prompt source ${join(dir, 'missing.jsonl')}: no such file (resolved to ${join(dir, 'missing.jsonl')})` });
});
