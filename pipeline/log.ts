// The logger: the only module that imports winston. Console output is one readable line per event
// (no colours when stdout is not a terminal); a run directory adds a JSON-lines file with every field.

import { createWriteStream, type WriteStream } from 'node:fs';
import winston from 'winston';
import { writeError } from '../engine/io/disk-errors.ts';

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
  // the log file is a stream opd owns (winston's File transport swallows write errors: a full disk
  // then left a flush waiting forever), so its errors are seen and its end can be awaited
  const stream = opts.file ? createWriteStream(opts.file, { flags: 'a' }) : null;
  const file = stream ? new winston.transports.Stream({ stream, level: 'debug', format: combine(timestamp(), json()) }) : null;
  if (file) transports.push(file);
  const logger = winston.createLogger({ level: 'debug', transports });
  if (stream) {
    files.set(logger, stream);
    // A log file that cannot be written (disk full, I/O error) is said once on stderr and dropped;
    // the console keeps logging.
    let failed = false;
    const fail = (e: Error) => {
      if (failed) return;
      failed = true;
      const err = writeError(e, opts.file!) as Error;
      process.stderr.write(`opd: cannot write the log file: ${err.message} Logging goes on to the console only.\n`);
      logger.remove(file!);
    };
    stream.on('error', fail);
    logger.on('error', fail); // the transport re-emits its stream's errors
  }
  return logger;
}

const files = new WeakMap<Logger, WriteStream>();

/**
 * Wait until every transport has written what it was given and the log file is closed (before
 * exit), at most `timeoutMs`: a write that never completes must not keep the process waiting (an
 * unsettled await at exit is a silent exit 13).
 */
export function flushLogger(log: Logger, timeoutMs = 5000): Promise<void> {
  const stream = files.get(log);
  const ended = new Promise<void>((resolve) => {
    log.on('finish', () => {
      if (!stream || stream.destroyed) return resolve();
      stream.once('close', () => resolve());
      stream.end();
    });
    log.end();
  });
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<void>((resolve) => {
    timer = setTimeout(() => {
      process.stderr.write(`opd: the log did not finish writing within ${timeoutMs / 1000} s; its file may miss the last lines\n`);
      resolve();
    }, timeoutMs);
  });
  return Promise.race([ended, late]).finally(() => clearTimeout(timer));
}
