import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { TEE_KEY_TYPES } from '../../src/emulators/aa/server';
import { spawnDaemon, type DaemonProcess } from '../../src/devtools/daemon';
import { ccKbcConfig, ccKbcEnv, startKbsWorld, type KbsWorld } from '../support/kbs-world';

/**
 * GetResource through cc_kbc: the daemon as a process, the AA emulator (ttrpc on a Unix socket,
 * really attesting) and the KBS emulator (HTTPS with a test CA, host name verified) on loopback.
 */

const INVALID_ARGUMENT = 3;
const DEADLINE_EXCEEDED = 4;
const NOT_FOUND = 5;
const PERMISSION_DENIED = 7;
const UNAVAILABLE = 14;
const DATA_LOSS = 15;

interface GrpcFailure {
  code: number;
  details: string;
}

function failsWith(code: number, ...patterns: RegExp[]): (error: unknown) => boolean {
  return (error: unknown) => {
    const failure = error as GrpcFailure;
    assert.equal(failure.code, code, `status ${failure.code} ${failure.details}`);
    for (const pattern of patterns) assert.match(failure.details, pattern);
    return true;
  };
}

const RESOURCE = 'resource-bytes-marker-5d2e';
const URI = 'kbs:///default/test/file';

describe('GetResource through cc_kbc (https KBS, AA over ttrpc)', () => {
  let world: KbsWorld;
  let daemon: DaemonProcess;

  before(async () => {
    world = await startKbsWorld({
      tlsHost: 'kbs.cdh.test',
      resources: { 'default/test/file': RESOURCE, 'default/other/file': 'other' },
    });
    world.putResource('+nebula-ca/credential/node', 'nebula-credential');
    daemon = await spawnDaemon({ config: ccKbcConfig(world), env: ccKbcEnv(world) });
  });
  after(async () => {
    await daemon?.stop();
    await world?.close();
  });

  for (const producer of ['jose', 'jwcrypto'] as const) {
    for (const keyType of TEE_KEY_TYPES) {
      test(`a ${keyType} TEE key decrypts answers encrypted by ${producer}`, async () => {
        world.aa.options.keyType = keyType;
        world.kbs.producer = producer;
        // The daemon's token (and key) is refused from now on: it gets one of the new type.
        world.kbs.revokeTokens();
        const before = world.aa.counters.getToken;
        const resource = await daemon.client().getResource(URI);
        assert.equal(resource.toString(), RESOURCE);
        assert.equal(world.aa.counters.getToken, before + 1, 'one new token after the 401');
      });
    }
  }

  test('a warm token is reused: no AA call for the next requests', async () => {
    world.kbs.producer = 'jose';
    await daemon.client().getResource(URI);
    const tokens = world.aa.counters.getToken;
    for (let i = 0; i < 3; i++) assert.equal((await daemon.client().getResource(URI)).toString(), RESOURCE);
    assert.equal(world.aa.counters.getToken, tokens);
  });

  test('a 401 gets a fresh token from the AA and the request succeeds', async () => {
    await daemon.client().getResource(URI);
    const tokens = world.aa.counters.getToken;
    world.kbs.inject({ kind: 'unauthorized', count: 1 });
    assert.equal((await daemon.client().getResource(URI)).toString(), RESOURCE);
    assert.equal(world.aa.counters.getToken, tokens + 1);
  });

  test('concurrent requests needing a token share one GetToken', async () => {
    world.kbs.revokeTokens();
    world.aa.delayMs = 300;
    try {
      const tokens = world.aa.counters.getToken;
      const client = daemon.client();
      const answers = await Promise.all(Array.from({ length: 6 }, () => client.getResource(URI)));
      for (const answer of answers) assert.equal(answer.toString(), RESOURCE);
      assert.equal(world.aa.counters.getToken, tokens + 1);
    } finally {
      world.aa.delayMs = 0;
    }
  });

  test('the query and the plugin reach the KBS as the URI gives them', async () => {
    await daemon.client().getResource('kbs:///default/test/file?version=2&x=a%2Fb');
    assert.equal(world.kbs.counters.lastResourcePath, 'resource/default/test/file?version=2&x=a%2Fb');
    const nebula = await daemon
      .client()
      .getResource('kbs+nebula-ca://kbs.example/credential/node?ip=10.0.0.1');
    assert.equal(nebula.toString(), 'nebula-credential');
    assert.equal(world.kbs.counters.lastResourcePath, 'nebula-ca/credential/node?ip=10.0.0.1');
  });

  test('a resource the KBS does not have is NOT_FOUND naming the URI and the KBS error', async () => {
    await assert.rejects(
      daemon.client().getResource('kbs:///default/test/missing'),
      failsWith(NOT_FOUND, /kbs:\/\/\/default\/test\/missing/, /404/, /ResourceNotFound/),
    );
  });

  test('a JWE whose tag was changed is DATA_LOSS', async () => {
    world.kbs.inject({ kind: 'corrupt-tag', count: 1 });
    await assert.rejects(
      daemon.client().getResource(URI),
      failsWith(DATA_LOSS, /kbs:\/\/\/default\/test\/file/),
    );
  });

  test('401 on every attempt is PERMISSION_DENIED after 3 attempts, each with a fresh token', async () => {
    await daemon.client().getResource(URI);
    const tokens = world.aa.counters.getToken;
    const requests = world.kbs.counters.resourceRequests;
    world.kbs.inject({ kind: 'unauthorized', count: 3 });
    await assert.rejects(
      daemon.client().getResource(URI),
      failsWith(PERMISSION_DENIED, /kbs:\/\/\/default\/test\/file/, /401 after 3 attempts/, /PolicyDeny/),
    );
    assert.equal(world.kbs.counters.resourceRequests - requests, 3);
    assert.equal(world.aa.counters.getToken - tokens, 2, 'a new token for the 2nd and the 3rd attempt');
  });

  test('403 is PERMISSION_DENIED at once', async () => {
    world.kbs.inject({ kind: 'forbidden', count: 1 });
    await assert.rejects(daemon.client().getResource(URI), failsWith(PERMISSION_DENIED, /403/, /PolicyDeny/));
  });

  test('a KBS answering 5xx is UNAVAILABLE after retries', async () => {
    world.kbs.inject({ kind: 'server-error', count: 3 });
    await assert.rejects(daemon.client().getResource(URI), failsWith(UNAVAILABLE, /500/, /InternalError/));
    assert.equal((await daemon.client().getResource(URI)).toString(), RESOURCE, 'and recovers');
  });

  test('a caller deadline shorter than a hung KBS answers DEADLINE_EXCEEDED on time', async () => {
    await daemon.client().getResource(URI);
    world.kbs.inject({ kind: 'hang', count: 1 });
    const started = Date.now();
    await assert.rejects(daemon.client().getResource(URI, 600), failsWith(DEADLINE_EXCEEDED));
    const took = Date.now() - started;
    assert.ok(took < 2000, `answered after ${took} ms`);
    assert.equal((await daemon.client().getResource(URI)).toString(), RESOURCE, 'the daemon keeps serving');
  });

  test('the AA going away is UNAVAILABLE naming its socket; once it is back, requests succeed', async () => {
    await world.aa.close();
    world.kbs.revokeTokens();
    await assert.rejects(
      daemon.client().getResource(URI),
      failsWith(UNAVAILABLE, /attestation agent/, new RegExp(world.aaSocket.replace(/[/.]/g, '\\$&'))),
    );
    await world.aa.start();
    assert.equal((await daemon.client().getResource(URI)).toString(), RESOURCE);
  });

  test('a malformed resource URI is INVALID_ARGUMENT and never reaches the KBS', async () => {
    const requests = world.kbs.counters.resourceRequests;
    for (const uri of [
      'kbs:///default/../file',
      'kbs:///a/b',
      'http://x/a/b/c',
      'kbs:///a/b/c#frag',
      'kbs:///a/b/c?',
    ]) {
      await assert.rejects(daemon.client().getResource(uri), failsWith(INVALID_ARGUMENT, /resource URI/));
    }
    assert.equal(world.kbs.counters.resourceRequests, requests);
  });
});

describe('cc_kbc TLS checks', () => {
  test('a KBS certificate for another host name, or from an untrusted CA, is UNAVAILABLE', async () => {
    const world = await startKbsWorld({
      tlsHost: 'kbs.cdh.test',
      resources: { 'default/test/file': RESOURCE },
    });
    const wrongHost = await spawnDaemon({
      config: {
        ...ccKbcConfig(world),
        kbc: { name: 'cc_kbc', url: `https://other.cdh.test:${world.kbs.port}`, kbs_cert: world.ca?.certPem },
      },
      env: ccKbcEnv(world),
    });
    const noCa = await spawnDaemon({
      config: { ...ccKbcConfig(world), kbc: { name: 'cc_kbc', url: world.url } },
      env: ccKbcEnv(world),
    });
    try {
      await assert.rejects(wrongHost.client().getResource(URI), failsWith(UNAVAILABLE, /TLS|ALTNAME/));
      await assert.rejects(noCa.client().getResource(URI), failsWith(UNAVAILABLE, /TLS|certificate|CERT/i));
    } finally {
      await wrongHost.stop();
      await noCa.stop();
      await world.close();
    }
  });
});
