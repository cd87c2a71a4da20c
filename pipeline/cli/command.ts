// The shape of one CLI command, and the error a command throws for bad usage (exit code 2).

import type { ParseArgsConfig } from 'node:util';

export type Values = Record<string, string | boolean | string[] | undefined>;

export interface Command {
  /** Words after `opd`, e.g. "model init". */
  name: string;
  summary: string;
  usage: string;
  options: NonNullable<ParseArgsConfig['options']>;
  /** Positional arguments allowed (default 0). */
  positionals?: number;
  /** Resolves to the exit code, or void for 0 (e.g. `opd run` stopped by SIGTERM returns 143). */
  run(args: { values: Values; positionals: string[] }): Promise<void | number>;
}

export class UsageError extends Error {}
