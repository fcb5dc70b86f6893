import * as grpc from '@grpc/grpc-js';
import { lstatSync, unlinkSync } from 'node:fs';
import { connect } from 'node:net';
import { parseListenAddress } from '../config/address';
import { CdhError } from '../errors';
import { MAX_REQUEST_BYTES } from '../keyprovider/protocol';
import { answerKeyWrap, type PacketSealer } from '../keyprovider/wrap';
import { KeyProviderService } from '../gen/keyprovider_pb';
import { generatedServiceMethods } from '../server/api-codec';
import { grpcServiceDefinition } from '../server/grpc-services';
import { toCallFailure } from '../server/status';
import { CommandFailure } from './keyprovider-args';
import { UsageError } from './args';

/**
 * `secret keyprovider --listen ADDR`: keyprovider.KeyProviderService over gRPC for ocicrypt's
 * `grpc` key providers. WrapKey wraps with the sealer; UnWrapKey is UNIMPLEMENTED on purpose:
 * served here, outside the guest, it would hand layer keys to anyone who can connect.
 * Silent on stdout and stderr while serving; SIGTERM / SIGINT stop it (in-flight calls finish).
 */

/** Calls wrapping at once (each may be a KMS round trip); more get RESOURCE_EXHAUSTED. */
const MAX_IN_FLIGHT = 16;
/** Protobuf framing around the JSON: tag + length varint. */
const FRAMING_BYTES = 16;
/** After SIGTERM, calls still running this long are cancelled. */
const SHUTDOWN_GRACE_MS = 10_000;

interface WrapInput {
  readonly KeyProviderKeyWrapProtocolInput?: Buffer;
}

/** The grpc-js bind target of ADDR (`unix:///abs/path`, `unix:/abs/path` or `host:port`). */
export function listenTarget(address: string): { target: string; socketPath?: string } {
  const parsed = parseListenAddress(address);
  if (parsed === undefined)
    throw new UsageError('--listen must be "unix:///abs/path", "unix:/abs/path" or "host:port"');
  return parsed.kind === 'unix'
    ? { target: `unix://${parsed.path}`, socketPath: parsed.path }
    : { target: `${parsed.host}:${parsed.port}` };
}

export async function serveKeyProvider(address: string, sealer: PacketSealer): Promise<void> {
  const { target, socketPath } = listenTarget(address);
  const calls = new Set<AbortController>();
  const server = new grpc.Server({
    'grpc.max_receive_message_length': MAX_REQUEST_BYTES + FRAMING_BYTES,
    'grpc.max_concurrent_streams': MAX_IN_FLIGHT,
  });
  server.addService(keyProviderService(), {
    WrapKey: wrapKeyHandler(sealer, calls),
    UnWrapKey: (_call: grpc.ServerUnaryCall<WrapInput, object>, callback: grpc.sendUnaryData<object>) =>
      callback({
        code: grpc.status.UNIMPLEMENTED,
        details:
          'NOT_IMPLEMENTED: UnWrapKey is served by the confidential-data-hub in the guest, not by the sealing side',
      }),
  });
  // Listening for the signals before binding: a SIGTERM right after the bind still shuts down cleanly.
  const stop = stopSignal();
  try {
    await bind(server, target, address, socketPath);
  } catch (error) {
    stop.dispose();
    throw error;
  }
  await stop.received;
  await new Promise<void>((resolve) => {
    const timer = setTimeout(() => {
      for (const call of calls) call.abort(new CdhError('SHUTTING_DOWN', 'the key provider is stopping'));
      server.forceShutdown();
      resolve();
    }, SHUTDOWN_GRACE_MS);
    server.tryShutdown(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/**
 * keyprovider.KeyProviderService from the generated types; a request that is not a protobuf
 * message decodes to one without input, answered INVALID_ARGUMENT by the handler, not INTERNAL.
 */
function keyProviderService(): grpc.ServiceDefinition {
  return grpcServiceDefinition(generatedServiceMethods(KeyProviderService), true);
}

function wrapKeyHandler(
  sealer: PacketSealer,
  calls: Set<AbortController>,
): grpc.handleUnaryCall<WrapInput, object> {
  return (call, callback) => {
    if (calls.size >= MAX_IN_FLIGHT) {
      callback({
        code: grpc.status.RESOURCE_EXHAUSTED,
        details: `TOO_MANY_IN_FLIGHT: more than ${MAX_IN_FLIGHT} WrapKey calls at once`,
      });
      return;
    }
    const controller = new AbortController();
    calls.add(controller);
    call.on('cancelled', () => controller.abort(new CdhError('CANCELLED', 'the client cancelled the call')));
    const input = call.request.KeyProviderKeyWrapProtocolInput ?? Buffer.alloc(0);
    answerKeyWrap(input, sealer, { signal: controller.signal })
      .then(
        (answer) => callback(null, { KeyProviderKeyWrapProtocolOutput: answer }),
        (error: unknown) => {
          const failure = toCallFailure(error);
          callback({ code: failure.code, details: failure.message });
        },
      )
      .finally(() => {
        input.fill(0);
        calls.delete(controller);
      });
  };
}

/** Binds with a 0600 socket file (created so: no window where others may connect). */
async function bind(
  server: grpc.Server,
  target: string,
  address: string,
  socketPath?: string,
): Promise<void> {
  if (socketPath !== undefined) await removeStaleSocket(socketPath, address);
  const previousMask = socketPath === undefined ? undefined : process.umask(0o177);
  try {
    await new Promise<void>((resolve, reject) =>
      server.bindAsync(target, grpc.ServerCredentials.createInsecure(), (error) =>
        error ? reject(error) : resolve(),
      ),
    );
  } catch (error) {
    const reason = ((error as Error).message ?? String(error)).split('\n')[0];
    throw new CommandFailure(`cannot listen on ${address}: ${reason}`);
  } finally {
    if (previousMask !== undefined) process.umask(previousMask);
  }
}

/** A socket file nobody listens on (left by a killed server) is removed; anything else is kept. */
async function removeStaleSocket(path: string, address: string): Promise<void> {
  let isSocket: boolean;
  try {
    isSocket = lstatSync(path).isSocket();
  } catch {
    return; // absent: the usual case
  }
  if (!isSocket) throw new CommandFailure(`cannot listen on ${address}: ${path} exists and is not a socket`);
  const refused = await new Promise<boolean>((resolve) => {
    const probe = connect(path);
    probe.once('connect', () => {
      probe.destroy();
      resolve(false);
    });
    probe.once('error', (error: NodeJS.ErrnoException) => resolve(error.code === 'ECONNREFUSED'));
  });
  if (!refused) throw new CommandFailure(`cannot listen on ${address}: ${path} is in use`);
  unlinkSync(path);
}

function stopSignal(): { received: Promise<void>; dispose(): void } {
  let dispose = (): void => undefined;
  const received = new Promise<void>((resolve) => {
    const stop = (): void => {
      dispose();
      resolve();
    };
    dispose = () => {
      process.off('SIGTERM', stop);
      process.off('SIGINT', stop);
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
  });
  return { received, dispose };
}
