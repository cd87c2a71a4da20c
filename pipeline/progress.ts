// Progress of a long job: a live bar on a terminal, nothing on a pipe or file (the log lines say it
// there). The only module that imports cli-progress. While the bar is drawn, other console output
// goes through `stream` (above the bar), so a log line never tears it; once the bar is stopped the
// stream writes to stderr directly (cli-progress would otherwise hold such lines for a render that
// never comes).

import { Writable } from 'node:stream';
import cliProgress from 'cli-progress';

export interface Progress {
  /** Whether a bar is drawn (stderr is a terminal). */
  readonly live: boolean;
  /** Move to `value` of the total, with a short status text. */
  update(value: number, status: string): void;
  /** A stream whose lines print above the bar (or straight to stderr without one). */
  readonly stream: Writable;
  stop(): void;
}

/** `unit` names what is counted (default "steps"); `tty` overrides the terminal check. */
export function createProgress(o: { total: number; start: number; label: string; unit?: string; tty?: boolean }): Progress {
  const live = o.tty ?? !!process.stderr.isTTY;
  if (!live) return { live, update: () => {}, stream: process.stderr, stop: () => {} };
  const multi = new cliProgress.MultiBar(
    { format: `${o.label} {bar} {value}/{total} ${o.unit ?? 'steps'} | {status} | eta {eta_formatted}`, stream: process.stderr, hideCursor: true, clearOnComplete: false, etaBuffer: 20 },
    cliProgress.Presets.shades_classic,
  );
  const bar = multi.create(o.total, o.start, { status: '' });
  let stopped = false;
  const stream = new Writable({
    write(chunk, _enc, done) {
      const text = String(chunk);
      if (stopped) process.stderr.write(text.endsWith('\n') ? text : text + '\n', () => done());
      else {
        multi.log(text.endsWith('\n') ? text : text + '\n');
        done();
      }
    },
  });
  const stop = () => {
    if (stopped) return;
    stopped = true;
    multi.update(); // print the lines logged since the last render
    multi.stop();
  };
  return { live, update: (v, status) => bar.update(v, { status }), stream, stop };
}
