#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { callCommandLineOrExit, exitWithMessage } from '../cli/args';
import { ConfigError, loadConfig } from '../config/load';
import { CdhError, isCdhError, toCdhError } from '../errors';
import { buildServices } from '../app/services';
import { createLogger } from '../log';

const USAGE = `Usage: cdh-oneshot [-c FILE] <command> [options]

The Confidential Data Hub's work done once, in this process, with no socket (initrd and
peer-pod flows): the same config, KBC ([[credentials]] included), providers and errors as the
daemon.

Commands:
  unseal-secret --secret-path FILE   prints the plaintext base64
  get-resource --resource-uri URI    prints the resource base64
  unwrap-key --annotation-path FILE  unwraps the ocicrypt annotation packet (JSON) in FILE; prints
                                     the layer options base64
  pull-image --image-url REF --bundle-path DIR   prints the manifest digest

Options:
  -c, --config FILE    configuration file (.toml or .json); without it, the daemon's fallback
                       (env AA_KBC_PARAMS, kernel command line)
  --log-level LEVEL    logs go to stderr (default warn)
  --timeout-ms N       deadline of the command (default 60000; pull-image 1200000, as the Kata agent)
  -h, --help, -V, --version
`;

const PROGRAM = 'cdh-oneshot';

/** A failure of the work itself: exit status 1 (2 is a usage error). */
function fail(message: string): never {
  return exitWithMessage(PROGRAM, message, 1);
}

async function main(): Promise<void> {
  const line = callCommandLineOrExit(PROGRAM, USAGE, process.argv.slice(2), {
    commands: ['unseal-secret', 'get-resource', 'unwrap-key', 'pull-image'],
    options: { config: { type: 'string', short: 'c' }, 'log-level': { type: 'string' } },
    defaultTimeoutMs: 60_000,
  });
  if (line === undefined) return;
  const { command, timeoutMs, need } = line;

  let config;
  try {
    config = loadConfig(line.option('config'), process.env, {
      logLevel: line.option('log-level') ?? 'warn',
    }).config;
  } catch (error) {
    if (error instanceof ConfigError) exitWithMessage(PROGRAM, error.message);
    throw error;
  }
  const logger = createLogger(config.log.level, process.stderr);
  const deadline = new AbortController();
  setTimeout(
    () => deadline.abort(new CdhError('DEADLINE_EXCEEDED', `no answer within --timeout-ms ${timeoutMs}`)),
    timeoutMs,
  ).unref();
  const ctx = { signal: deadline.signal };
  const services = await buildServices(config, { logger });
  try {
    let output: string;
    if (command === 'get-resource') {
      const resource = await services.kbc.getResource(need('resource-uri'), ctx);
      output = resource.toString('base64');
      resource.fill(0);
    } else if (command === 'unseal-secret') {
      const plaintext = await services.unsealer.unseal(readFileSync(need('secret-path')), ctx);
      output = plaintext.toString('base64');
      plaintext.fill(0);
    } else if (command === 'unwrap-key') {
      const optsdata = await services.keyUnwrapper.unwrapPacket(readFileSync(need('annotation-path')), ctx);
      output = optsdata.toString('base64');
      optsdata.fill(0);
    } else {
      output = await (await services.imagePuller()).pull(need('image-url'), need('bundle-path'), ctx);
    }
    process.stdout.write(`${output}\n`);
  } finally {
    await services.close();
  }
}

main().catch((error: unknown) => {
  if (isCdhError(error) || (error as NodeJS.ErrnoException)?.code === 'ENOENT') {
    const failure = toCdhError(error);
    fail(isCdhError(error) ? `${failure.status}: ${failure.message}` : (error as Error).message);
  }
  fail(`unexpected failure: ${(error as Error)?.stack ?? String(error)}`);
});
