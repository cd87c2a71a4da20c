// Test helper (imported by the CLI tests only): run bin/opd.mjs in a child process and return its
// exit code, stdout and stderr whether it succeeds or fails.

import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

export const OPD_BIN = new URL('../../bin/opd.mjs', import.meta.url).pathname;

export interface OpdResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** `opd ARGS...` in `cwd` (default: this process's), with `preload` modules passed to node's --import. */
export async function opdIn(cwd: string | undefined, args: readonly string[], preload: readonly string[] = []): Promise<OpdResult> {
  try {
    const r = await promisify(execFile)(process.execPath, [...preload.flatMap((p) => ['--import', p]), OPD_BIN, ...args], { cwd });
    return { code: 0, ...r };
  } catch (e) {
    return e as OpdResult;
  }
}

export const opd = (...args: string[]): Promise<OpdResult> => opdIn(undefined, args);
