// `opd <command> [options]`: a table of commands, each one file under pipeline/cli/commands.
// Options are parsed by node:util parseArgs (strict: an unknown flag is an error naming it). Only the
// command that runs is imported (commands/index.ts).
// Exit codes: 0 success, 1 the command failed (message printed), 2 usage error, 129 / 130 / 143 a
// run stopped by SIGHUP / SIGINT / SIGTERM after committing a checkpoint (resume continues it).

import { parseArgs } from 'node:util';
import { type Command, UsageError } from './command.ts';
import { commands } from './commands/index.ts';
import { describeFailure } from '../../engine/io/disk-errors.ts';

/** Every command's one-line summary (the only place all command modules are loaded). */
async function help(): Promise<string> {
  const all = await Promise.all(commands.map((c) => c.load()));
  const width = Math.max(...all.map((c) => c.name.length));
  return ['usage: opd <command> [options]', '', ...all.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`), '', 'opd <command> --help shows its options.'].join('\n');
}

function commandHelp(c: Command): string {
  const opts = Object.entries(c.options).map(([k, o]) => `  --${k}${o.type === 'string' ? ' <value>' : ''}`);
  return [`usage: opd ${c.usage}`, '', c.summary, '', ...opts].join('\n');
}

async function main(argv: string[]): Promise<number> {
  const entry = commands
    .filter((c) => c.name.split(' ').every((w, i) => argv[i] === w))
    .sort((a, b) => b.name.length - a.name.length)[0];
  if (!entry) {
    if (argv.length && !['-h', '--help', 'help'].includes(argv[0]!)) console.error(`opd: unknown command "${argv.join(' ')}"\n`);
    console.error(await help());
    return argv.length && !['-h', '--help', 'help'].includes(argv[0]!) ? 2 : 0;
  }
  const cmd = await entry.load();
  const rest = argv.slice(cmd.name.split(' ').length);
  if (rest.includes('--help') || rest.includes('-h')) {
    console.log(commandHelp(cmd));
    return 0;
  }
  let parsed;
  try {
    parsed = parseArgs({ args: rest, options: cmd.options, allowPositionals: true, strict: true });
    if (parsed.positionals.length > (cmd.positionals ?? 0)) throw new UsageError(`unexpected argument "${parsed.positionals[cmd.positionals ?? 0]}"`);
  } catch (e) {
    console.error(`opd ${cmd.name}: ${(e as Error).message}\n\n${commandHelp(cmd)}`);
    return 2;
  }
  try {
    const code = await cmd.run(parsed as never);
    return typeof code === 'number' ? code : 0;
  } catch (e) {
    if (e instanceof UsageError) {
      console.error(`opd ${cmd.name}: ${e.message}\n\n${commandHelp(cmd)}`);
      return 2;
    }
    console.error(`opd ${cmd.name}: ${describeFailure(e)}`); // a disk error names what to do (engine/io/disk-errors.ts)
    if (process.env.OPD_DEBUG) console.error((e as Error).stack);
    return 1;
  }
}

// `opd score ... | head` closes stdout early: that is the reader being done, not an error.
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code === 'EPIPE') process.exit(0);
  throw e;
});

process.exitCode = await main(process.argv.slice(2));
