#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import type { CdhClient } from '../client/cdh-client';
import { DEFAULT_SOCKET } from '../config/types';
import { packageVersion } from '../package-info';
import { ADDRESS_FILE_ENV, AddressFileError, readPublishedAddress } from '../server/address-file';

const USAGE = `Usage: cdh-tool [--socket ADDR] <command> [options]

A small client of the Confidential Data Hub socket.

Commands:
  unseal-secret --secret-path FILE   unseal the sealed secret in FILE; prints the plaintext base64
  get-resource --resource-uri URI    fetch a KBS resource (kbs:///repo/type/tag); prints base64
  health                             prints the daemon's health (SERVING / NOT_SERVING); exit 1 unless SERVING

Options:
  --socket ADDR     unix:///abs/path or host:port (default: the address a daemon published in
                    the file named by env ${ADDRESS_FILE_ENV} when that file exists, else
                    ${DEFAULT_SOCKET})
  --timeout-ms N    per-call deadline (default 30000)
  -h, --help        this help
  -V, --version     the version
`;

function fail(message: string, code = 2): never {
  process.stderr.write(`cdh-tool: ${message}\n`);
  process.exit(code);
}

async function main(): Promise<void> {
  let parsed;
  try {
    parsed = parseArgs({
      options: {
        socket: { type: 'string' },
        'secret-path': { type: 'string' },
        'resource-uri': { type: 'string' },
        'timeout-ms': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean', short: 'V' },
      },
      strict: true,
      allowPositionals: true,
    });
  } catch (error) {
    fail(`${(error as Error).message} (see --help)`);
  }
  const { values, positionals } = parsed;
  if (values.help) return void process.stdout.write(USAGE);
  if (values.version) return void process.stdout.write(`cdh-tool ${packageVersion()}\n`);
  const [command, ...extra] = positionals;
  if (command === undefined)
    fail('a command is required: unseal-secret, get-resource or health (see --help)');
  if (extra.length > 0) fail(`unexpected argument "${extra[0]}" (see --help)`);
  const timeoutMs = values['timeout-ms'] === undefined ? 30_000 : Number(values['timeout-ms']);
  if (!Number.isInteger(timeoutMs) || timeoutMs <= 0) fail('--timeout-ms must be a positive whole number');

  let request: (client: CdhClient) => Promise<void>;
  switch (command) {
    case 'unseal-secret': {
      const path = values['secret-path'] ?? fail('unseal-secret needs --secret-path FILE');
      let secret: Buffer;
      try {
        secret = readFileSync(path);
      } catch (error) {
        fail(`cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? 'error'}`);
      }
      request = async (client) => {
        const plaintext = await client.unsealSecret(secret, timeoutMs);
        process.stdout.write(`${plaintext.toString('base64')}\n`);
      };
      break;
    }
    case 'get-resource': {
      const uri = values['resource-uri'] ?? fail('get-resource needs --resource-uri URI');
      request = async (client) => {
        const resource = await client.getResource(uri, timeoutMs);
        process.stdout.write(`${resource.toString('base64')}\n`);
      };
      break;
    }
    case 'health':
      request = async (client) => {
        const status = await client.check('', timeoutMs);
        process.stdout.write(`${status}\n`);
        if (status !== 'SERVING') process.exitCode = 1;
      };
      break;
    default:
      fail(`unknown command "${command}" (see --help)`);
  }

  // gRPC is loaded only once the arguments are known to be good (usage errors answer at once).
  const { CdhClient: Client, grpcTarget, grpcStatusName } = await import('../client/cdh-client.js');
  const target = grpcTarget(values.socket ?? defaultAddress());
  const client = new Client(target);
  try {
    await request(client);
  } catch (error) {
    fail(describeCallFailure(error, target, grpcStatusName), 1);
  } finally {
    client.close();
  }
}

/** Without --socket: the running daemon's published address, else the daemon's default. */
function defaultAddress(): string {
  const file = process.env[ADDRESS_FILE_ENV];
  if (!file) return DEFAULT_SOCKET;
  try {
    return readPublishedAddress(file) ?? DEFAULT_SOCKET;
  } catch (error) {
    if (error instanceof AddressFileError) fail(error.message, 1);
    throw error;
  }
}

/** One line: the gRPC status name, then what the daemon (or the channel) said. */
function describeCallFailure(error: unknown, target: string, statusName: (code: number) => string): string {
  const { code, details } = error as { code?: unknown; details?: unknown };
  if (typeof code !== 'number' || typeof details !== 'string')
    return `unexpected failure: ${(error as Error)?.message ?? String(error)}`;
  // grpc-js: "No connection established. Last error: Error: connect ENOENT /x.sock. Resolution note: "
  const unreachable =
    /^No connection established\. Last error: (?:Error: )?(.*?)\.?(?: Resolution note:.*)?$/s.exec(
      details.trim(),
    );
  const said = unreachable ? `no daemon answers at ${target} (${unreachable[1]})` : details;
  return `${statusName(code)}: ${said}`.replace(/\s*\n\s*/g, ' ');
}

void main();
