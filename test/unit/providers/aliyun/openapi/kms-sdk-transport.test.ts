import assert from 'node:assert/strict';
import { createServer as createHttpsServer, Agent, type AgentOptions } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { after, before, test } from 'node:test';
import { LOOPBACK_ONLY_ENV } from '../../../../../src/net-guard';
import { loadOpenApiSdk, type OpenApiCallScope } from '../../../../../src/providers/aliyun/openapi/kms-sdk';
import {
  OpenApiFixture,
  REGION_ID,
  STS_CREDENTIAL,
} from '../../../../../src/emulators/aliyun/openapi-scenario';
import { createTestCa } from '../../../../../src/emulators/pki';
import { listenOnLoopback } from '../../../../../src/emulators/listen';

/*
 * These tests drive the real @alicloud/kms20160120 against a local HTTPS server whose CA is
 * trusted only by the agent we hand in. If an SDK update sends its request some other way than
 * through the transport kms-sdk.ts wraps, the agent is not used (TLS to the emulator fails, the
 * counter stays 0), the signal does not reach the socket, or the guard does not run: each test fails.
 */

process.env[LOOPBACK_ONLY_ENV] = '1';

/** An https.Agent that counts the TLS connections it opens. */
class CountingAgent extends Agent {
  connections = 0;
  constructor(options: AgentOptions) {
    super(options);
  }
  override createConnection(...args: Parameters<Agent['createConnection']>): Duplex | null | undefined {
    this.connections++;
    return super.createConnection(...args);
  }
}

let fixture: OpenApiFixture;

before(async () => {
  fixture = await OpenApiFixture.start();
  fixture.openapi.putSecret('through-our-transport', [{ versionId: 'v1', data: 'patched path used' }]);
});

after(() => fixture.close());

function scope(agent: Agent, signal: AbortSignal, expectedHost = '127.0.0.1'): OpenApiCallScope {
  return { agent, signal, expectedHost, purpose: 'the KMS SDK transport test', dialled: false };
}

function sdkClient(endpoint: string, timeoutMs = 60_000) {
  return loadOpenApiSdk().newClient({
    credentials: STS_CREDENTIAL,
    endpoint,
    regionId: REGION_ID,
    timeoutMs,
  });
}

test('a GetSecretValue through the official SDK uses our agent: the CA only it trusts, our keep-alive pool', async () => {
  const agent = new CountingAgent({ ca: fixture.openapi.caPem, keepAlive: true });
  try {
    const callScope = scope(agent, new AbortController().signal);
    const answer = await sdkClient(fixture.openapi.endpoint).getSecretValue(
      { secretName: 'through-our-transport' },
      callScope,
    );
    assert.equal(answer.secretData, 'patched path used');
    assert.equal(callScope.dialled, true);
    assert.equal(callScope.httpStatus, 200);
    assert.equal(agent.connections, 1, 'the request did not go through the agent we handed in');
  } finally {
    agent.destroy();
  }
});

test("the caller's signal reaches the SDK's request: an abort ends a call the server never answers", async () => {
  const ca = createTestCa('held answers CA');
  const held: Array<{ destroy(): void }> = [];
  const cert = ca.issueServerCert(['localhost'], { ipAddresses: ['127.0.0.1'] });
  const server = createHttpsServer({ cert: cert.certPem, key: cert.keyPem }, (request) => {
    held.push(request.socket);
  });
  await listenOnLoopback(server);
  const { port } = server.address() as AddressInfo;
  const agent = new CountingAgent({ ca: ca.certPem });
  const controller = new AbortController();
  try {
    const call = sdkClient(`127.0.0.1:${port}`).getSecretValue(
      { secretName: 'held' },
      scope(agent, controller.signal),
    );
    while (held.length === 0) await new Promise((resolve) => setTimeout(resolve, 20));
    controller.abort(new Error('caller gone'));
    await assert.rejects(call);
    assert.equal(agent.connections, 1);
  } finally {
    for (const socket of held) socket.destroy();
    agent.destroy();
    server.close();
  }
});

test('the loopback guard and the host pin run inside the SDK call: nothing is dialled', async () => {
  const agent = new CountingAgent({ ca: fixture.openapi.caPem });
  try {
    await assert.rejects(
      sdkClient(`kms.${REGION_ID}.aliyuncs.com`).getSecretValue(
        { secretName: 'x' },
        scope(agent, new AbortController().signal, `kms.${REGION_ID}.aliyuncs.com`),
      ),
      /refusing to contact kms\.cn-beijing\.aliyuncs\.com/,
    );
    await assert.rejects(
      sdkClient(fixture.openapi.endpoint).getSecretValue(
        { secretName: 'through-our-transport' },
        scope(agent, new AbortController().signal, 'localhost'),
      ),
      /tried to reach 127\.0\.0\.1 instead of localhost/,
    );
    assert.equal(agent.connections, 0);
  } finally {
    agent.destroy();
  }
});
