#!/usr/bin/env node
import { EmulatorUsageError, type RunningEmulator } from '../emulators/command';
import { EMULATOR_COMMANDS } from '../emulators/commands';
import { answeredHelpOrVersion, exitWithMessage } from '../cli/args';

function usage(): string {
  const width = Math.max(...EMULATOR_COMMANDS.map((c) => c.name.length)) + 2;
  return `Usage: cdh-emulator <command> [options]

Emulators of the services the Confidential Data Hub talks to, for demos, tests and benchmarks:
real servers on 127.0.0.1 (ephemeral ports, HTTPS with a throw-away CA, real signatures).
Not for production.

Commands:
${EMULATOR_COMMANDS.map((c) => `  ${c.name.padEnd(width)}${c.summary}`).join('\n')}

Once serving, prints ONE JSON line on stdout: the endpoints, the daemon config (daemon_config,
snake_case as in the config file) and the environment (env) a daemon or \`secret\` needs.
Then serves until SIGTERM or SIGINT (exit 0).
  kill -USR2 PID    prints the request counters as one JSON line {"stats": {...}} on stdout

  cdh-emulator <command> --help   the command's options
  -V, --version                   the version
`;
}

const PROGRAM = 'cdh-emulator';

async function main(): Promise<void> {
  const [name, ...args] = process.argv.slice(2);
  const help = name === undefined || name === '-h' || name === '--help';
  if (answeredHelpOrVersion(PROGRAM, usage(), { help, version: name === '-V' || name === '--version' }))
    return;
  const command = EMULATOR_COMMANDS.find((c) => c.name === name);
  if (command === undefined) exitWithMessage(PROGRAM, `unknown command "${name}" (see --help)`);
  if (args.includes('-h') || args.includes('--help'))
    return void process.stdout.write(`Usage: cdh-emulator ${command.name} [options]\n\n${command.help}\n`);

  let running: RunningEmulator;
  try {
    running = await command.start(args);
  } catch (error) {
    if (error instanceof EmulatorUsageError)
      exitWithMessage(PROGRAM, `${command.name}: ${error.message} (see --help)`);
    throw error;
  }
  process.on('SIGUSR2', () => process.stdout.write(`${JSON.stringify({ stats: running.stats() })}\n`));
  let stopping = false;
  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    void running.close().then(() => process.exit(0));
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  process.stdout.write(`${JSON.stringify(running.description)}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`${PROGRAM} failed: ${(error as Error).stack ?? String(error)}\n`);
  process.exit(1);
});
