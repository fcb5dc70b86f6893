/**
 * Run as a child process by test/unit/server/lazy-startup.test.ts (its own require.cache, loaded
 * by nothing but this): serves a GrpcFront on a unix socket and calls UnsealSecret and
 * Health/Check with raw bytes; then serves grpc-health-check through src/server/health-definition
 * (what the bundles use; dist's GrpcFront has the real proto-loader) and calls Check and Watch.
 * Prints the answers and the required modules as one JSON line. Usage: node flat-calls-probe.js --probe
 */
import * as grpc from '@grpc/grpc-js';
import { HealthImplementation } from 'grpc-health-check';
import { healthServiceDefinition } from '../../src/server/health-definition';
import { serveFront } from './served-front';

const pass = (bytes: Buffer): Buffer => bytes;

function unary(target: string, path: string, request: Buffer): Promise<string> {
  const client = new grpc.Client(target, grpc.credentials.createInsecure());
  return new Promise((resolve, reject) =>
    client.makeUnaryRequest(path, pass, pass, request, (error, bytes) => {
      client.close();
      if (error) reject(error);
      else resolve((bytes as Buffer).toString('hex'));
    }),
  );
}

function firstOfStream(target: string, path: string, request: Buffer): Promise<string> {
  const client = new grpc.Client(target, grpc.credentials.createInsecure());
  return new Promise((resolve, reject) => {
    const call = client.makeServerStreamRequest(path, pass, pass, request);
    call.on('data', (bytes: Buffer) => {
      call.cancel();
      client.close();
      resolve(bytes.toString('hex'));
    });
    call.on('error', (error: grpc.ServiceError) => {
      if (error.code !== grpc.status.CANCELLED) reject(error);
    });
  });
}

async function frontAnswers(): Promise<Record<string, string>> {
  const served = await serveFront({
    unsealSecret: async (secret) => Buffer.concat([Buffer.from('plain:'), secret]),
    getResource: async () => new Uint8Array(0),
  });
  const { target } = served;
  try {
    const secret = Buffer.from('0a0173', 'hex'); // UnsealSecretInput { secret: 's' }
    return {
      unseal: await unary(target, '/api.SealedSecretService/UnsealSecret', secret),
      check: await unary(target, '/grpc.health.v1.Health/Check', Buffer.alloc(0)),
    };
  } finally {
    await served.close();
  }
}

async function definitionAnswers(): Promise<Record<string, string>> {
  const server = new grpc.Server();
  const health = new HealthImplementation({ '': 'SERVING' });
  health.addToServer({
    addService: (_own: unknown, handlers: grpc.UntypedServiceImplementation) =>
      server.addService(healthServiceDefinition(), handlers),
  } as unknown as grpc.Server);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) =>
      e ? reject(e) : resolve(p),
    ),
  );
  const target = `127.0.0.1:${port}`;
  try {
    return {
      definitionCheck: await unary(target, '/grpc.health.v1.Health/Check', Buffer.alloc(0)),
      definitionWatch: await firstOfStream(
        target,
        '/grpc.health.v1.Health/Watch',
        Buffer.from('0a0178', 'hex'),
      ),
    };
  } finally {
    server.forceShutdown();
  }
}

async function main(): Promise<void> {
  const answers = { ...(await frontAnswers()), ...(await definitionAnswers()) };
  process.stdout.write(`${JSON.stringify({ answers, modules: Object.keys(require.cache) })}\n`);
}

// `node --test dist/test` runs every file under test/ (support/ too): the probe runs only when
// lazy-startup.test.ts asks for it.
if (process.argv[2] === '--probe')
  main().catch((error: unknown) => {
    process.stderr.write(`${String(error)}\n`);
    process.exit(1);
  });
