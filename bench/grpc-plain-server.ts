/**
 * grpc-js alone, without the daemon's front: a plain grpc-js server on the socket that answers
 * every UnsealSecret with a fixed plaintext at once (its bytes written by hand: no protobuf
 * runtime, no concerns, no protocol-sniffing listener), and grpc-health-check's Health. Beside
 * the gRPC floor (bench/grpc-floor-server.ts: our front with an instant backend) it tells how
 * much of a cached unseal's distance to a Health/Check is grpc-js and HTTP/2 carrying the
 * larger request and answer, and how much is ours.
 *
 * Usage: node dist/bench/grpc-plain-server.js --socket unix:///PATH [-c FILE (ignored)]
 */
import * as grpc from '@grpc/grpc-js';
import { HealthImplementation } from 'grpc-health-check';
import { parseArgs } from 'node:util';

const PLAINTEXT = Buffer.from('benchmark secret #0: the gRPC floor answers at once');

/** UnsealSecretOutput { bytes plaintext = 1 }: tag 0x0a, a one-byte length, the bytes. */
const ANSWER = Buffer.concat([Buffer.from([0x0a, PLAINTEXT.length]), PLAINTEXT]);

const asIs = (bytes: Buffer): Buffer => bytes;

function main(): void {
  const { values } = parseArgs({
    options: { config: { type: 'string', short: 'c' }, socket: { type: 'string' } },
    strict: true,
  });
  const socket = values.socket;
  if (socket === undefined || !socket.startsWith('unix://'))
    throw new Error('--socket unix:///PATH is needed');
  const server = new grpc.Server();
  server.addService(
    {
      UnsealSecret: {
        path: '/api.SealedSecretService/UnsealSecret',
        requestStream: false,
        responseStream: false,
        requestSerialize: asIs,
        requestDeserialize: asIs,
        responseSerialize: asIs,
        responseDeserialize: asIs,
      },
    },
    { UnsealSecret: (_call: unknown, callback: grpc.sendUnaryData<Buffer>) => callback(null, ANSWER) },
  );
  new HealthImplementation({ '': 'SERVING' }).addToServer(server);
  server.bindAsync(
    `unix:${socket.slice('unix://'.length)}`,
    grpc.ServerCredentials.createInsecure(),
    (error) => {
      if (error) throw error;
      process.stdout.write(`${JSON.stringify({ level: 'info', msg: 'serving', socket })}\n`);
    },
  );
  const stop = (): void => server.tryShutdown(() => process.exit(0));
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

main();
