// The reward-module contract as docs/config.md states it: a module's export gets (prompt,
// completion, record) with record = {id, prompt, answer, tag?, meta} from the prompt file (extra
// columns in meta, a numeric answer as its string), and a completion decoded from generated ids
// alone keeps a leading space (byte tokenizer, Qwen3's byte-level BPE) and never holds the EOS.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadPrompts } from '../sources/index.ts';
import { ByteTokenizer } from '../tokenizer/byte.ts';
import { loadQwen3 } from '../tokenizer/test_fixtures.ts';
import type { Tokenizer } from '../tokenizer/types.ts';
import { combine } from './combine.ts';

test('a module reward gets the prompt, the completion as decoded, and the record with the other columns in meta', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'opd-reward-contract-'));
  writeFileSync(join(dir, 'train.jsonl'), '{"id": "q1", "prompt": "2+3=", "answer": 5, "tag": "add", "source": "book", "difficulty": 2}\n{"prompt": "1+1=", "answer": "2"}\n');
  // the module runs in its own worker thread (data/rewards/user.ts): it reports what it saw through a file
  const log = join(dir, 'seen.jsonl');
  writeFileSync(join(dir, 'seen.mjs'), `import { appendFileSync } from 'node:fs';\nexport function score(prompt, completion, record) { appendFileSync(${JSON.stringify(log)}, JSON.stringify({ prompt, completion, record }) + '\\n'); return completion.trim() === record.answer ? 1 : 0; }\n`);
  const { records } = await loadPrompts(join(dir, 'train.jsonl'));
  const reward = await combine([{ type: 'module', path: join(dir, 'seen.mjs'), export: 'score' }]);
  assert.equal(await reward(records[0]!.prompt, ' 5', records[0]!), 1);
  assert.equal(await reward(records[1]!.prompt, '3', records[1]!), 0);
  const seen = readFileSync(log, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as unknown);
  assert.deepEqual(seen, [
    { prompt: '2+3=', completion: ' 5', record: { id: 'q1', prompt: '2+3=', answer: '5', tag: 'add', meta: { source: 'book', difficulty: 2 } } },
    { prompt: '1+1=', completion: '3', record: { id: 'train.jsonl:2', prompt: '1+1=', answer: '2' } },
  ]);
});

test('a completion decoded from its own ids keeps its leading space and drops the EOS (byte tokenizer, Qwen3)', async () => {
  const check = (tok: Tokenizer, name: string) => {
    const ids = [...tok.encode(' 5', { addSpecialTokens: false }), tok.eosTokenIds[0]!];
    // what the rollout stage and the evaluation do with a completion's ids
    assert.equal(tok.decode(ids, { skipSpecialTokens: true }), ' 5', name);
  };
  check(new ByteTokenizer(), 'byte');
  check(await loadQwen3(), 'qwen3');
});
