// The logger: the only module that imports winston. Console output is one readable line per event
// (no colours when stdout is not a terminal); a run directory adds a JSON-lines file with every field.

import winston from 'winston';

export type Logger = winston.Logger;

export interface LogOptions {
  /** Minimum console level (default "info"; OPD_LOG_LEVEL overrides). */
  level?: string;
  /** Also write JSON lines here (e.g. <run>/log.jsonl). */
  file?: string;
}

export function createLogger(opts: LogOptions = {}): Logger {
  const { combine, timestamp, printf, json, colorize } = winston.format;
  const level = process.env.OPD_LOG_LEVEL ?? opts.level ?? 'info';
  const readable = printf((info) => {
    const { level: lvl, message, timestamp: ts, ...rest } = info;
    const extra = Object.keys(rest).length ? ' ' + JSON.stringify(rest) : '';
    return `${String(ts).slice(11, 19)} ${lvl} ${String(message)}${extra}`;
  });
  const console = new winston.transports.Console({
    level,
    stderrLevels: ['error', 'warn', 'info', 'debug'],
    format: combine(timestamp(), ...(process.stderr.isTTY ? [colorize()] : []), readable),
  });
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
