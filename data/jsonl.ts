// JSON Lines reading with line numbers: every record knows where it came from, so an error can
// name the file and line. Blank lines are skipped; a line that is not a JSON object is reported.

import { createReadStream, existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { createInterface } from 'node:readline';

export interface JsonlRecord {
  line: number; // 1-based
  value: Record<string, unknown>;
}

export interface JsonlProblem {
  line: number;
  reason: string;
  text: string;
}

/** Stream records; malformed lines go to `onProblem` (default: throw an error naming file:line). */
export async function* readJsonl(file: string, onProblem?: (p: JsonlProblem) => void): AsyncGenerator<JsonlRecord> {
  if (!existsSync(file)) throw new Error(`${file}: no such file (resolved to ${resolve(file)})`);
  const rl = createInterface({ input: createReadStream(file, 'utf8'), crlfDelay: Infinity });
  let line = 0;
  for await (const text of rl) {
    line++;
    if (!text.trim()) continue;
    let value: unknown;
    let reason: string | null = null;
    try {
      value = JSON.parse(text);
      if (typeof value !== 'object' || value === null || Array.isArray(value)) reason = 'not a JSON object';
    } catch (e) {
      reason = `invalid JSON (${(e as Error).message})`;
    }
    if (reason) {
      const problem = { line, reason, text: text.length > 200 ? text.slice(0, 200) + '…' : text };
      if (!onProblem) throw new Error(`${file}:${line}: ${reason}`);
      onProblem(problem);
      continue;
    }
    yield { line, value: value as Record<string, unknown> };
  }
}

export async function readAllJsonl(file: string): Promise<JsonlRecord[]> {
  const out: JsonlRecord[] = [];
  for await (const r of readJsonl(file)) out.push(r);
  return out;
}
