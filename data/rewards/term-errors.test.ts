// Issue 13 item 10: an error thrown inside a reward term names the term and the record, whatever the
// term (a built-in one or a user module), and keeps its class.

import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { combine } from './combine.ts';

test('a reward term that throws: the error names the term (index and type) and the record id', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'opd-reward-err-'));
  const file = join(dir, 'throws.mjs');
  writeFileSync(file, "export default function score(prompt, completion) { if (completion === 'bad') throw new TypeError('cannot read the answer'); return 1; }\n");
  const reward = await combine([{ type: 'numeric_match', weight: 1 }, { type: 'module', path: file, weight: 0.5 }]);
  const record = { id: 'rec-7', prompt: '1+1=', answer: '2' };
  assert.equal(await reward('1+1=', '2', record), 1.5);
  await assert.rejects(reward('1+1=', 'bad', record), (e: Error) => {
    assert.match(e.message, /^reward term 1 \(module\) failed for record rec-7: .*cannot read the answer/);
    return true;
  });
});
