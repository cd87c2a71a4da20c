// The run's logger (pipeline/log.ts): every line reaches the log file by the time flushLogger
// settles; a log file that hits a full disk is reported once on stderr (naming the file and what to
// do) and dropped, and the flush still settles (it used to wait forever: a silent exit 13).

import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mock, test } from 'node:test';
import { createLogger, flushLogger } from './log.ts';

/** Run `fn` with process.stderr.write captured (and silenced); returns what was written. */
async function capturingStderr(fn: () => Promise<void>): Promise<string> {
  let out = '';
  const m = mock.method(process.stderr, 'write', (chunk: string | Uint8Array) => ((out += String(chunk)), true));
  try {
    await fn();
  } finally {
    m.mock.restore();
  }
  return out;
}

test('flushLogger: every line is in the log file once it settles', async () => {
  const file = join(mkdtempSync(join(tmpdir(), 'opd-log-')), 'log.jsonl');
  await capturingStderr(async () => {
    const log = createLogger({ file });
    for (let i = 0; i < 2000; i++) log.info(`line ${i}`, { i });
    await flushLogger(log);
  });
  const lines = readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { message: string; i: number });
  assert.deepEqual(lines.map((l) => l.i), Array.from({ length: 2000 }, (_, i) => i));
});

test('a log file on a full disk: one stderr line naming it and what to do, console logging goes on, the flush settles', { skip: !existsSync('/dev/full') && 'needs /dev/full' }, async () => {
  const err = await capturingStderr(async () => {
    const log = createLogger({ file: '/dev/full' });
    log.info('first');
    // let the write fail before more lines and the flush (the order that used to hang)
    await new Promise((r) => setTimeout(r, 100));
    log.error('after the failure');
    await flushLogger(log);
  });
  const reports = err.split('\n').filter((l) => l.startsWith('opd: cannot write the log file'));
  assert.equal(reports.length, 1, err);
  assert.match(reports[0]!, /^opd: cannot write the log file: \/dev\/full: no space left on the device \(ENOSPC\) while writing it\. Free space on the filesystem mounted at \/dev, then continue with `opd resume RUN_DIR`/);
  assert.match(err, /error after the failure/, 'the console still gets the lines');
  assert.doesNotMatch(err, /did not finish writing/, 'the broken file was dropped, not waited for');
});
