// Issue 13 item 10: a missing or damaged file of a LoRA adapter directory is an error naming the file
// and what to do, not a bare ENOENT / JSON error.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadAdapterDir, loadPeftAdapter } from './lora.ts';
import { parseConfig } from './config.ts';
import { tinyConfig } from './init.ts';

test('an adapter directory without its config files, or with a cut one, names the file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'opd-adapter-'));
  assert.throws(() => loadAdapterDir(dir), (e: Error) => {
    assert.equal(e.message, `${join(dir, 'config.json')}: missing (the base model config opd writes beside an adapter); the adapter directory is incomplete: write it again, or point to a complete one`);
    return true;
  });
  const c = parseConfig(tinyConfig(), 'tiny');
  assert.throws(() => loadPeftAdapter(dir, c), new RegExp(`${join(dir, 'adapter_config.json')}: missing \\(the PEFT adapter config\\)`));
  writeFileSync(join(dir, 'adapter_config.json'), '{"peft_type": "LO');
  assert.throws(() => loadPeftAdapter(dir, c), new RegExp(`${join(dir, 'adapter_config.json')}: the PEFT adapter config is not valid JSON`));
  rmSync(dir, { recursive: true });
});
