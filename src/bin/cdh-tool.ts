#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { callCommandLineOrExit, exitWithMessage } from '../cli/args';
import type { TtrpcCallError } from '../client/ttrpc-client';
import { DEFAULT_SOCKET } from '../config/types';
import { errnoCode } from '../lib/errno';
import { ADDRESS_FILE_ENV, AddressFileError, readPublishedAddress } from '../server/address-file';

const USAGE = `Usage: cdh-tool [--socket ADDR] <command> [options]

A small client of the Confidential Data Hub socket.

Commands:
  unseal-secret --secret-path FILE   unseal the sealed secret in FILE; prints the plaintext base64
  get-resource --resource-uri URI    fetch a KBS resource (kbs:///repo/type/tag); prints base64
  pull-image --image-url REF --bundle-path DIR
                                     pull REF into DIR (DIR/rootfs mounted, DIR/config.json);
                                     prints the manifest digest (default --timeout-ms 1200000)
  unwrap-key --annotation-path FILE  unwrap the ocicrypt annotation packet (JSON) in FILE through
                                     KeyProviderService.UnWrapKey; prints the layer options base64
  health                             prints the daemon's health (SERVING / NOT_SERVING); exit 1 unless SERVING

Options:
  --socket ADDR     unix:///abs/path or host:port (default: the address a daemon published in
                    the file named by env ${ADDRESS_FILE_ENV} when that file exists, else
                    ${DEFAULT_SOCKET})
  --ttrpc           speak ttrpc, as the Kata agent does, instead of gRPC (unix sockets; not for
                    health: the daemon's health service is gRPC only)
  --timeout-ms N    per-call deadline (default 30000; pull-image 1200000, as the Kata agent)
  -h, --help        this help
  -V, --version     the version
`;

const PROGRAM = 'cdh-tool';

/** `cdh-tool: <message>` on stderr and exit `code` (2, a usage error, unless told). */
function fail(message: string, code?: number): never {
  return exitWithMessage(PROGRAM, message, code);
}

async function main(): Promise<void> {
  const line = callCommandLineOrExit(PROGRAM, USAGE, process.argv.slice(2), {
    commands: ['unseal-secret', 'get-resource', 'pull-image', 'unwrap-key', 'health'],
    options: { socket: { type: 'string' }, ttrpc: { type: 'boolean' } },
    defaultTimeoutMs: 30_000,
  });
  if (line === undefined) return;
  const { command, timeoutMs } = line;
  const ttrpc = line.flag('ttrpc');

  let request: (client: SocketClient) => Promise<void>;
  switch (command) {
    case 'unseal-secret': {
      const path = line.need('secret-path');
      const secret = readInput(path);
      request = async (client) => {
        const plaintext = await client.unsealSecret(secret, timeoutMs);
        process.stdout.write(`${plaintext.toString('base64')}\n`);
      };
      break;
    }
    case 'get-resource': {
      const uri = line.need('resource-uri');
      request = async (client) => {
        const resource = await client.getResource(uri, timeoutMs);
        process.stdout.write(`${resource.toString('base64')}\n`);
      };
      break;
    }
    case 'pull-image': {
      const imageUrl = line.need('image-url');
      const bundlePath = line.need('bundle-path');
      request = async (client) => {
        const digest = await client.pullImage(imageUrl, bundlePath, timeoutMs);
        process.stdout.write(`${digest}\n`);
      };
      break;
    }
    case 'unwrap-key': {
      const path = line.need('annotation-path');
      const packet = readInput(path);
      request = async (client) => {
        const { buildKeyUnwrapRequest, parseKeyUnwrapResults } = await import('../keyprovider/protocol.js');
        const answer = await client.keyProviderCall('UnWrapKey', buildKeyUnwrapRequest(packet), timeoutMs);
        const optsdata = parseKeyUnwrapResults(answer);
        process.stdout.write(`${optsdata.toString('base64')}\n`);
        optsdata.fill(0);
        answer.fill(0);
      };
      break;
    }
    case 'health':
      if (ttrpc) fail('health is a gRPC service (grpc.health.v1); run it without --ttrpc');
      request = async (client) => {
        const status = await client.check('', timeoutMs);
        process.stdout.write(`${status}\n`);
        if (status !== 'SERVING') process.exitCode = 1;
      };
      break;
    default:
      fail(`unknown command "${command}" (see --help)`);
  }

  // Clients are loaded only once the arguments are known to be good (usage errors answer at once).
  const { grpcTarget, grpcStatusName } = await import('../client/cdh-client.js');
  const address = line.option('socket') ?? defaultAddress();
  let client: SocketClient;
  let target: string;
  try {
    if (ttrpc) {
      target = address;
      client = await ttrpcSocketClient(address);
    } else {
      target = grpcTarget(address);
      const { CdhClient } = await import('../client/cdh-client.js');
      client = new CdhClient(target);
    }
  } catch (error) {
    fail((error as Error).message);
  }
  try {
    await request(client);
  } catch (error) {
    const ttrpcFailure = asTtrpcCallError(error);
    fail(
      ttrpcFailure
        ? describeTtrpcFailure(ttrpcFailure, grpcStatusName)
        : describeCallFailure(error, target, grpcStatusName),
      1,
    );
  } finally {
    client.close();
  }
}

/** A command's input file; a usage error (exit 2) naming it when it cannot be read. */
function readInput(path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (error) {
    fail(`cannot read ${path}: ${errnoCode(error)}`);
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

/** What the commands need of a client, whichever protocol it speaks. */
interface SocketClient {
  unsealSecret(secret: Uint8Array, timeoutMs: number): Promise<Buffer>;
  getResource(uri: string, timeoutMs: number): Promise<Buffer>;
  pullImage(imageUrl: string, bundlePath: string, timeoutMs: number): Promise<string>;
  check(service: string, timeoutMs: number): Promise<string>;
  keyProviderCall(method: 'UnWrapKey' | 'WrapKey', request: Uint8Array, timeoutMs: number): Promise<Buffer>;
  close(): void;
}

async function ttrpcSocketClient(address: string): Promise<SocketClient> {
  const { CdhTtrpcClient } = await import('../client/cdh-ttrpc-client.js');
  const client = new CdhTtrpcClient(address);
  return {
    unsealSecret: (secret, timeoutMs) => client.unsealSecret(secret, { timeoutMs }),
    getResource: (uri, timeoutMs) => client.getResource(uri, { timeoutMs }),
    pullImage: (imageUrl, bundlePath, timeoutMs) => client.pullImage(imageUrl, bundlePath, { timeoutMs }),
    check: () => Promise.reject(new Error('health has no ttrpc form')),
    keyProviderCall: (method, request, timeoutMs) => client.keyProviderCall(method, request, { timeoutMs }),
    close: () => client.close(),
  };
}

function asTtrpcCallError(error: unknown): TtrpcCallError | undefined {
  return error instanceof Error && error.name === 'TtrpcCallError' ? (error as TtrpcCallError) : undefined;
}

/** One line, as for gRPC: the status name, then what the daemon said (or why nothing answered). */
function describeTtrpcFailure(error: TtrpcCallError, statusName: (code: number) => string): string {
  const said = error.kind === 'status' ? error.peerMessage : error.message;
  return `${statusName(error.code)}: ${said}`.replace(/\s*\n\s*/g, ' ');
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
