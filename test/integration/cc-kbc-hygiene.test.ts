import assert from 'node:assert/strict';
import type { ServiceError } from '@grpc/grpc-js';
import { after, before, describe, test } from 'node:test';
import { TEE_KEY_TYPES } from '../../src/emulators/aa/server';
import { generateSigningJwkPair, sealVault, signSealedSecret } from '../../src/secret';
import { spawnDaemon, type DaemonProcess } from '../../src/devtools/daemon';
import { ccKbcConfig, ccKbcEnv, startKbsWorld, type KbsWorld } from '../support/kbs-world';

/*
 * Secret hygiene of cc_kbc at log level trace: success and failure paths (every TEE key type,
 * 401 refresh, 404, 403, 5xx, a corrupted JWE, the AA failing, a vault secret and a kbs:/// kid);
 * no log line, stderr byte or status message may hold a token, a fragment of a TEE private key
 * or the bytes of a resource.
 */

const RESOURCE = Buffer.from('hygiene-resource-bytes-7e3a-0123456789');
const VAULT_VALUE = 'hygiene-kbs-vault-value-41c2';

function fragments(pem: string): string[] {
  const body = pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, '');
  const pieces: string[] = [];
  for (let i = 0; i + 24 <= body.length; i += 24) pieces.push(body.slice(i, i + 24));
  return pieces;
}

describe('cc_kbc secret hygiene at log level trace', { concurrency: 1 }, () => {
  let world: KbsWorld;
  let daemon: DaemonProcess;
  const statusMessages: string[] = [];
  const signing = generateSigningJwkPair('hygiene');
  const kid = 'kbs:///default/signing-key/hygiene';
  const vault = signSealedSecret(
    sealVault({ provider: 'kbs', name: 'kbs:///default/vault/value' }),
    signing.privateJwk,
    kid,
  );

  async function attempt(call: () => Promise<Buffer>): Promise<void> {
    try {
      await call();
    } catch (error) {
      statusMessages.push((error as ServiceError).details ?? '');
    }
  }

  before(async () => {
    world = await startKbsWorld({
      tlsHost: 'kbs.hygiene.test',
      resources: {
        'default/test/file': RESOURCE,
        'default/vault/value': VAULT_VALUE,
        'default/signing-key/hygiene': JSON.stringify(signing.publicJwk),
      },
    });
    daemon = await spawnDaemon({
      config: { ...ccKbcConfig(world), log: { level: 'trace' } },
      env: ccKbcEnv(world),
    });
  });
  after(async () => {
    await daemon?.stop();
    await world?.close();
  });

  test('success and failure scenarios run', async () => {
    const client = daemon.client();
    for (const keyType of TEE_KEY_TYPES) {
      world.aa.options.keyType = keyType;
      world.kbs.revokeTokens();
      assert.deepEqual(await client.getResource('kbs:///default/test/file'), RESOURCE);
    }
    assert.equal((await client.unsealSecret(Buffer.from(vault))).toString(), VAULT_VALUE);
    world.kbs.inject({ kind: 'unauthorized', count: 1 });
    await attempt(() => client.getResource('kbs:///default/test/file'));
    for (const kind of ['not-found', 'forbidden', 'server-error', 'corrupt-tag'] as const) {
      world.kbs.inject({ kind, count: 3 });
      await attempt(() => client.getResource('kbs:///default/test/file'));
      world.kbs.clearFaults();
    }
    world.kbs.inject({ kind: 'unauthorized', count: 3 });
    await attempt(() => client.getResource('kbs:///default/test/file'));
    world.aa.failNext = { count: 1, code: 13, message: 'attester exploded' };
    world.kbs.revokeTokens();
    await attempt(() => client.getResource('kbs:///default/test/file'));
    await attempt(() => client.getResource('kbs:///default/test/file'));
    assert.ok(statusMessages.length >= 6, `${statusMessages.length} failures seen`);
    assert.ok(world.aa.issued.length >= TEE_KEY_TYPES.length);
  });

  test('no token, TEE private key fragment or resource byte string appears anywhere', async () => {
    await daemon.stop();
    const text = [...daemon.logLines, daemon.stderr(), ...statusMessages].join('\n');
    assert.ok(
      daemon.logLines.some((line) => line.includes('"level":"debug"')),
      'debug lines were written',
    );
    const forbidden: Array<[string, string]> = [
      ['resource', RESOURCE.toString()],
      ['resource base64', RESOURCE.toString('base64').replace(/=+$/, '')],
      ['resource hex', RESOURCE.toString('hex')],
      ['vault value', VAULT_VALUE],
    ];
    for (const { token, teeKeyPem } of world.aa.issued) {
      forbidden.push(['token', token]);
      // Each of the JWT's parts: header, claims (holds the TEE public key), signature.
      for (const part of token.split('.')) forbidden.push(['token part', part]);
      for (const piece of fragments(teeKeyPem)) forbidden.push(['TEE private key fragment', piece]);
    }
    for (const [what, value] of forbidden) assert.ok(!text.includes(value), `${what} leaked`);
  });
});
