import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { CdhClient } from '../../src/client/cdh-client';
import { defaultConfig, type CdhConfig } from '../../src/config/types';
import { silentLogger } from '../../src/log';
import { startDaemon, type DaemonHandle } from '../../src/app/daemon';
import { encodeFrame, MessageType } from '../../src/server/ttrpc/frame';
import { tempDir } from '../../src/devtools/daemon';
import { envelopeFixture, unsignedSecret, vaultFixture } from '../support/sealed-fixtures';
import { TestKms } from '../support/test-provider';
import {
  connectTtrpc,
  TtrpcConnectionClosedError,
  ttrpcGetResource,
  ttrpcUnsealSecret,
  type TtrpcClient,
} from '../support/ttrpc-client';

/**
 * One socket, two protocols: the daemon in-process (test KMS provider, verification skipped),
 * ttrpc and gRPC clients on the same socket at the same time, identical answers.
 */

const PLAINTEXT = 'ttrpc-plaintext-marker-4b1e';
const VAULT_VALUE = 'ttrpc-vault-marker-9c2d';

/** The outcome of a call as both transports can express it. */
type Outcome = { ok: true; value: string } | { ok: false; code: number; message: string };

describe('ttrpc and gRPC on the daemon socket', { timeout: 30_000 }, () => {
  const dir = tempDir('cdh-ttrpc-daemon-');
  const socketPath = join(dir.path, 'cdh.sock');
  let daemon: DaemonHandle;
  let grpcClient: CdhClient;
  let kms: TestKms;
  const ttrpcClients: TtrpcClient[] = [];

  async function ttrpc(): Promise<TtrpcClient> {
    const client = await connectTtrpc(socketPath);
    ttrpcClients.push(client);
    return client;
  }

  before(async () => {
    kms = new TestKms({ keyIds: ['key-1'], secrets: { 'db-password': VAULT_VALUE } });
    const config: CdhConfig = {
      ...defaultConfig(),
      socket: `unix://${socketPath}`,
      skipSealedSecretVerification: true,
      maxMessageBytes: 64 * 1024,
    };
    daemon = await startDaemon(config, { providers: [kms.factory], logger: silentLogger() });
    grpcClient = new CdhClient(daemon.address, { timeoutMs: 10_000 });
  });

  after(async () => {
    await Promise.all(ttrpcClients.map((client) => client.close()));
    grpcClient?.close();
    await daemon?.stop(1000);
    dir.cleanup();
  });

  async function overGrpc(call: () => Promise<Buffer>): Promise<Outcome> {
    try {
      return { ok: true, value: (await call()).toString() };
    } catch (error) {
      const serviceError = error as grpc.ServiceError;
      return { ok: false, code: serviceError.code, message: serviceError.details };
    }
  }

  async function unsealOverTtrpc(client: TtrpcClient, secret: string): Promise<Outcome> {
    const result = await ttrpcUnsealSecret(client, Buffer.from(secret), { timeoutNs: 10e9 });
    return result.status.code === 0
      ? { ok: true, value: result.plaintext?.toString() ?? '' }
      : { ok: false, code: result.status.code, message: result.status.message };
  }

  async function resourceOverTtrpc(client: TtrpcClient, uri: string): Promise<Outcome> {
    const result = await ttrpcGetResource(client, uri);
    return result.status.code === 0
      ? { ok: true, value: result.resource?.toString() ?? '' }
      : { ok: false, code: result.status.code, message: result.status.message };
  }

  const secrets: Array<[string, () => string]> = [
    ['an envelope secret', () => unsignedSecret(envelopeFixture(kms, PLAINTEXT))],
    ['a vault secret', () => unsignedSecret(vaultFixture('db-password'))],
    ['a vault secret that does not exist', () => unsignedSecret(vaultFixture('no-such-secret'))],
    ['an unknown provider', () => unsignedSecret({ ...vaultFixture('x'), provider: 'nope' })],
    ['not a sealed secret', () => 'plain text'],
    ['bad base64 in the payload', () => 'sealed.fakejwsheader.*.fakesignature'],
  ];

  for (const [name, secret] of secrets) {
    it(`UnsealSecret with ${name}: identical over ttrpc and gRPC, at the same time`, async () => {
      const client = await ttrpc();
      const input = secret();
      const [overTtrpc, overGrpcResult] = await Promise.all([
        unsealOverTtrpc(client, input),
        overGrpc(() => grpcClient.unsealSecret(Buffer.from(input))),
      ]);
      assert.deepEqual(overTtrpc, overGrpcResult);
    });
  }

  it('the envelope secret round trip gives the plaintext over ttrpc', async () => {
    const client = await ttrpc();
    const outcome = await unsealOverTtrpc(client, unsignedSecret(envelopeFixture(kms, PLAINTEXT)));
    assert.deepEqual(outcome, { ok: true, value: PLAINTEXT });
  });

  it('GetResource: identical over ttrpc and gRPC', async () => {
    const client = await ttrpc();
    const uri = 'kbs:///default/key/1';
    const [overTtrpc, overGrpcResult] = await Promise.all([
      resourceOverTtrpc(client, uri),
      overGrpc(() => grpcClient.getResource(uri)),
    ]);
    assert.deepEqual(overTtrpc, overGrpcResult);
  });

  it('many calls over both protocols at once', async () => {
    const clients = await Promise.all([ttrpc(), ttrpc()]);
    const input = unsignedSecret(vaultFixture('db-password'));
    const outcomes = await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        i % 2 === 0
          ? unsealOverTtrpc(clients[(i / 2) % 2] as TtrpcClient, input)
          : overGrpc(() => grpcClient.unsealSecret(Buffer.from(input))),
      ),
    );
    for (const outcome of outcomes) assert.deepEqual(outcome, { ok: true, value: VAULT_VALUE });
  });

  it('a request over max_message_bytes is RESOURCE_EXHAUSTED over both', async () => {
    const client = await ttrpc();
    const big = 'x'.repeat(70 * 1024);
    const [overTtrpc, overGrpcResult] = await Promise.all([
      unsealOverTtrpc(client, big),
      overGrpc(() => grpcClient.unsealSecret(Buffer.from(big))),
    ]);
    assert.equal(overTtrpc.ok, false);
    assert.equal(overGrpcResult.ok, false);
    assert.equal(!overTtrpc.ok && overTtrpc.code, grpc.status.RESOURCE_EXHAUSTED);
    assert.equal(!overGrpcResult.ok && overGrpcResult.code, grpc.status.RESOURCE_EXHAUSTED);
  });

  it('malformed ttrpc frames close only their connection; gRPC calls in flight are undisturbed', async () => {
    const input = unsignedSecret(vaultFixture('db-password'));
    const grpcCalls = Array.from({ length: 10 }, () =>
      overGrpc(() => grpcClient.unsealSecret(Buffer.from(input))),
    );
    const malformed = [
      Buffer.from([0, 0x40, 0, 1, 0, 0, 0, 1, MessageType.Request, 0]),
      encodeFrame({ streamId: 2, type: MessageType.Request, flags: 0 }, Buffer.alloc(0)),
      encodeFrame({ streamId: 1, type: 9, flags: 0 }, Buffer.alloc(0)),
      encodeFrame({ streamId: 1, type: MessageType.Data, flags: 0 }, Buffer.from('x')),
      encodeFrame({ streamId: 1, type: MessageType.Request, flags: 0 }, Buffer.from([0x0a, 0x7f])),
      Buffer.from('GET / HTTP/1.1\r\n\r\n'),
    ];
    const victims = await Promise.all(malformed.map(() => ttrpc()));
    malformed.forEach((bytes, i) => victims[i]?.writeRaw(bytes));
    await Promise.all(victims.map((victim) => victim.closed));
    await assert.rejects(unsealOverTtrpc(victims[0] as TtrpcClient, input), TtrpcConnectionClosedError);
    for (const outcome of await Promise.all(grpcCalls))
      assert.deepEqual(outcome, { ok: true, value: VAULT_VALUE });
    assert.equal(await grpcClient.check(''), 'SERVING');
    const fresh = await ttrpc();
    assert.deepEqual(await unsealOverTtrpc(fresh, input), { ok: true, value: VAULT_VALUE });
  });
});
