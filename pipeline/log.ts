// The logger: the only module that imports winston. Console output is one readable line per event
// (no colours when stdout is not a terminal); a run directory adds a JSON-lines file with every field.

import winston from 'winston';

export type Logger = winston.Logger;

export interface LogOptions {
  /** Minimum console level (default "info"; OPD_LOG_LEVEL overrides). */
  level?: string;
  /** Also write JSON lines here (e.g. <run>/log.jsonl). */
  file?: string;
  /** Write the readable console lines here instead of stderr (e.g. above a progress bar). */
  consoleStream?: NodeJS.WritableStream;
  /** Console minimum level, when it should differ from `level` (e.g. "warn" for a quiet run). */
  consoleLevel?: string;
}

export function createLogger(opts: LogOptions = {}): Logger {
  const { combine, timestamp, printf, json, colorize } = winston.format;
  const level = process.env.OPD_LOG_LEVEL ?? opts.level ?? 'info';
  const readable = printf((info) => {
    const { level: lvl, message, timestamp: ts, ...rest } = info;
    const extra = Object.keys(rest).length ? ' ' + JSON.stringify(rest) : '';
    return `${String(ts).slice(11, 19)} ${lvl} ${String(message)}${extra}`;
  });
  const format = combine(timestamp(), ...(process.stderr.isTTY ? [colorize()] : []), readable);
  const consoleLevel = opts.consoleLevel ?? level;
  const console = opts.consoleStream
    ? new winston.transports.Stream({ stream: opts.consoleStream, level: consoleLevel, format })
    : new winston.transports.Console({ level: consoleLevel, stderrLevels: ['error', 'warn', 'info', 'debug'], format });
  const transports: winston.transport[] = [console];
  if (opts.file) transports.push(new winston.transports.File({ filename: opts.file, level: 'debug', format: combine(timestamp(), json()) }));
  return winston.createLogger({ level: 'debug', transports });
}

/** Wait until every transport has written what it was given (before exit). */
export function flushLogger(log: Logger): Promise<void> {
  return new Promise((resolve) => {
    log.on('finish', () => resolve());
    log.end();
  });
}
