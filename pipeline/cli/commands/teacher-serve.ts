// `opd teacher serve --model DIR|FILE.onnx`: a local teacher over vLLM's OpenAI-compatible
// completions protocol (teacher/server.ts), until SIGINT or SIGTERM. Either stops it cleanly
// (docs/reliability.md R19): no new connections; requests that arrived before the signal are
// answered; connections still open after --drain-seconds (default 10: a half-sent request, a
// client that never reads) are cut; then the teacher is closed and the process exits 0. A second
// signal cuts the open connections at once. Prints the listening URL on stdout. Listens on
// 127.0.0.1 unless --host is given; a non-loopback --host is allowed, with a warning.

import { readFileSync } from 'node:fs';
import { openTeacher } from '../../../teacher/open.ts';
import { isLoopback, TeacherServer } from '../../../teacher/server.ts';
import { createLogger } from '../../log.ts';
import { num, runtimeFrom, runtimeOptions, str } from '../args.ts';
import { type Command, UsageError } from '../command.ts';

function readToken(file: string | null): string | null {
  if (file === null) return null;
  let token: string;
  try {
    token = readFileSync(file, 'utf8').trim();
  } catch (e) {
    throw new UsageError(`--token-file ${file}: cannot read it (${(e as Error).message})`);
  }
  if (!token) throw new UsageError(`--token-file ${file} is empty`);
  return token;
}

export const teacherServe: Command = {
  name: 'teacher serve',
  summary: 'serve a local teacher over the vLLM/OpenAI completions protocol (prompt_logprobs)',
  usage:
    'teacher serve --model DIR|FILE.onnx [--tokenizer DIR] [--host 127.0.0.1] [--port 8000] [--token-file F] [--max-body-bytes N] ' +
    '[--max-seq-len N] [--max-logprobs K] [--temperature T] [--served-model-name NAME] [--pack [--batch-tokens N]] [--drain-seconds S] [--device cpu] [--threads N]',
  options: {
    model: { type: 'string' },
    tokenizer: { type: 'string' },
    host: { type: 'string' },
    port: { type: 'string' },
    'token-file': { type: 'string' },
    'max-body-bytes': { type: 'string' },
    'max-seq-len': { type: 'string' },
    'max-logprobs': { type: 'string' },
    temperature: { type: 'string' },
    'served-model-name': { type: 'string' },
    'batch-tokens': { type: 'string' },
    pack: { type: 'boolean' },
    'drain-seconds': { type: 'string' },
    ...runtimeOptions,
  },
  async run({ values }) {
    const model = str(values, 'model');
    const host = str(values, 'host', null);
    const token = readToken(str(values, 'token-file', null));
    const port = num(values, 'port', 8000, { int: true, min: 0, max: 65535 });
    const maxBodyBytes = num(values, 'max-body-bytes', 16 << 20, { int: true, min: 1 });
    const maxSeqLen = values['max-seq-len'] === undefined ? undefined : num(values, 'max-seq-len', 0, { int: true, min: 1 });
    const topK = num(values, 'max-logprobs', 20, { int: true, min: 0 });
    const temperature = num(values, 'temperature', 1, { min: 1e-6 });
    const drainSeconds = num(values, 'drain-seconds', 10, { min: 0 });
    const batchTokens = values['batch-tokens'] === undefined ? undefined : num(values, 'batch-tokens', 0, { int: true, min: 1 });
    const log = createLogger();
    const { teacher } = await openTeacher({ kind: 'local', path: model, topK, temperature, batchTokens, pack: values.pack === true, tokenizer: str(values, 'tokenizer', null) ?? undefined }, runtimeFrom(values));
    let server: TeacherServer;
    try {
      if (host !== null && !isLoopback(host))
        log.warn(`listening on non-loopback address ${host}: anyone who can reach it can use this teacher${token ? '' : ' (no --token-file: no authentication)'}`);
      server = await TeacherServer.start(teacher, {
        host: host ?? undefined, port, allowNonLoopback: host !== null, token, maxBodyBytes, maxSeqLen, batchWindowMs: 5, drainMs: drainSeconds * 1000,
        modelName: str(values, 'served-model-name', null) ?? model,
        log: (level, message) => log.log(level, message),
      });
    } catch (e) {
      await teacher.close();
      throw e;
    }
    // The handlers go in before the URL is printed: a client that reads it may signal at once, and
    // a signal before them would kill the process (the default action) instead of draining it.
    // They stay installed to the end (a second signal cuts the open connections at once).
    let first: ((s: string) => void) | null = null;
    const stopped = new Promise<string>((resolve) => (first = resolve));
    const onSignal = (s: string) => (first ? (first(s), (first = null)) : server.cut());
    process.on('SIGINT', onSignal).on('SIGTERM', onSignal);
    console.log(`opd teacher serve: listening on ${server.url} (model ${model}, ${teacher.mode}, vocab ${teacher.identity.vocabSize}, prompt_logprobs <= ${topK})`);
    const signal = await stopped;
    log.info(`${signal}: closing (open requests get up to ${drainSeconds} s)`);
    await server.close();
    await teacher.close();
  },
};
