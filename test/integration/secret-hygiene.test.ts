import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { status as GrpcStatus, type ServiceError } from '@grpc/grpc-js';
import type { CdhClient } from '../../src/client/cdh-client';
import {
  startClientKeyWorld,
  WRONG_CA_INSTANCE_ID,
  type ClientKeyWorld,
  type SealedEnvelope,
} from '../support/client-key-world';
import { spawnDaemon, type DaemonProcess } from '../../src/devtools/daemon';
import {
  OpenApiFixture,
  REGION_ID,
  ROLE_NAME,
  STS_CREDENTIAL,
} from '../../src/emulators/aliyun/openapi-scenario';

/*
 * Secret hygiene: the daemon process at log level trace runs success and failure scenarios of
 * every client type; no log line (stdout, stderr) and no status message may contain a plaintext,
 * a data key (raw, hex, base64, base64url), the PKCS#12 password, a fragment of the client key's
 * private key or PKCS#12, or an STS AccessKeySecret / SecurityToken.
 */

const VAULT_VALUE = 'hygiene-vault-value-5be1';
const STS_VALUE = 'hygiene-sts-value-c4a7';

interface Forbidden {
  readonly what: string;
  readonly text?: string;
  readonly bytes?: Buffer;
}

/** Every way a data key could be written down. */
function dataKeyForms(label: string, key: Buffer): Forbidden[] {
  return [
    { what: `${label} raw`, bytes: key },
    { what: `${label} hex`, text: key.toString('hex') },
    { what: `${label} HEX`, text: key.toString('hex').toUpperCase() },
    { what: `${label} base64`, text: key.toString('base64').replace(/=+$/, '') },
    { what: `${label} base64url`, text: key.toString('base64url') },
    // A JSON-serialised Buffer lists the byte values.
    { what: `${label} as a JSON array`, text: JSON.stringify([...key]).slice(1, 40) },
  ];
}

/** 24-character pieces of the base64 lines of a PEM (or of any base64 text). */
function fragments(what: string, base64Text: string): Forbidden[] {
  const body = base64Text.replace(/-----[^-]+-----/g, '').replace(/\s+/g, '');
  const pieces: Forbidden[] = [];
  for (let i = 0; i + 24 <= body.length; i += 24) pieces.push({ what, text: body.slice(i, i + 24) });
  return pieces;
}

describe('secret hygiene at log level trace', { concurrency: 1 }, () => {
  let world: ClientKeyWorld;
  let fixture: OpenApiFixture;
  let daemon: DaemonProcess;
  let client: CdhClient;
  const envelopes: Array<SealedEnvelope & { plaintext: string }> = [];
  const statusMessages: string[] = [];
  const plaintextsReturned: string[] = [];

  async function unseal(secret: string | Buffer, deadlineMs = 10_000): Promise<string> {
    try {
      const plaintext = await client.unsealSecret(Buffer.from(secret), deadlineMs);
      plaintextsReturned.push(plaintext.toString());
      return 'OK';
    } catch (error) {
      const failure = error as ServiceError;
      statusMessages.push(failure.details ?? '');
      return GrpcStatus[failure.code] ?? String(failure.code);
    }
  }

  before(async () => {
    world = await startClientKeyWorld();
    fixture = await OpenApiFixture.start({ metadataMode: 'hardened', credentialLifetimeMs: 1000 });
    fixture.openapi.putSecret('sts-secret', [{ versionId: 'v1', data: STS_VALUE }]);
    world.emulator.putSecretVersion('vault-secret', 'v1', VAULT_VALUE);
    writeFileSync(
      join(world.credentials.dir, 'ecsRamRole.json'),
      JSON.stringify({ ecs_ram_role_name: ROLE_NAME, region_id: REGION_ID }),
    );
    for (let i = 0; i < 6; i++) {
      const plaintext = `hygiene-plaintext-${i}-e0f9`;
      envelopes.push({ ...(await world.sealEnvelope(plaintext)), plaintext });
    }
    const base = world.daemonConfig(1500) as { aliyun: Record<string, unknown> };
    daemon = await spawnDaemon({
      config: {
        ...base,
        aliyun: {
          ...base.aliyun,
          ...fixture.daemonConfig(1500).aliyun,
          credential_dir: world.credentials.dir,
        },
        log: { level: 'trace' },
        cache: { ttl_seconds: 0 },
      },
    });
    client = daemon.client();
  });
  after(async () => {
    await daemon.stop();
    daemon.cleanup();
    await fixture.close();
    await world.close();
  });

  test('client_key: envelope and vault, successes and failures', async () => {
    const [first, second, third, fourth, fifth] = envelopes as [
      (typeof envelopes)[number],
      (typeof envelopes)[number],
      (typeof envelopes)[number],
      (typeof envelopes)[number],
      (typeof envelopes)[number],
    ];
    assert.equal(await unseal(first.sealed), 'OK');
    assert.equal(await unseal(world.sealVault('vault-secret')), 'OK');
    const payload = second.payload as unknown as Record<string, string>;
    const data = Buffer.from(payload['encrypted_data'] ?? '', 'base64');
    data[0] = (data[0] ?? 0) ^ 1;
    assert.equal(
      await unseal(world.sign({ ...payload, encrypted_data: data.toString('base64') })),
      'DATA_LOSS',
    );
    const otherIv = Buffer.alloc(12, 7).toString('base64');
    assert.equal(await unseal(world.sign({ ...payload, iv: otherIv })), 'DATA_LOSS');
    world.emulator.failNext(2, 503);
    assert.equal(await unseal(third.sealed), 'OK');
    world.emulator.failNext(10, 503);
    assert.equal(await unseal(fourth.sealed), 'UNAVAILABLE');
    world.emulator.clearFaults();
    world.emulator.truncateNext(1);
    assert.equal(await unseal(fourth.sealed), 'OK');
    world.emulator.hangNext(1);
    assert.equal(await unseal(fifth.sealed, 400), 'DEADLINE_EXCEEDED');
    const [prefix, header, body, signature = ''] = fifth.sealed.split('.');
    // A different first character (one signature in 64 already starts with 'A').
    const tampered = `${signature.startsWith('A') ? 'B' : 'A'}${signature.slice(1)}`;
    assert.equal(await unseal(`${prefix}.${header}.${body}.${tampered}`), 'PERMISSION_DENIED');
    assert.equal(await unseal(world.sealVault('vault-secret', {}, WRONG_CA_INSTANCE_ID)), 'UNAVAILABLE');
    assert.equal(await unseal(world.sealVault('no-such-secret')), 'NOT_FOUND');
    const withOtherKey = world.sign({ ...payload, provider_settings: world.settingsFor('kst-nocafile') });
    assert.equal(await unseal(withOtherKey), 'FAILED_PRECONDITION');
  });

  test('sts_token and ecs_ram_role: successes and failures', async () => {
    const vault = (settings: Record<string, unknown>, name = 'sts-secret'): string =>
      world.sign({
        version: '0.1.0',
        type: 'vault',
        provider: 'aliyun',
        provider_settings: settings,
        annotations: {},
        name,
      });
    assert.equal(await unseal(vault(fixture.stsSettings())), 'OK');
    const wrongSecret = await fixture.writeFile(
      'wrong-sk',
      `${STS_CREDENTIAL.accessKeyId}:wrong-${STS_CREDENTIAL.accessKeySecret}:${STS_CREDENTIAL.securityToken}`,
    );
    assert.equal(await unseal(vault(fixture.stsSettings(wrongSecret))), 'PERMISSION_DENIED');
    fixture.openapi.injectFaults(10, 503);
    assert.equal(await unseal(vault(fixture.stsSettings())), 'UNAVAILABLE');
    fixture.openapi.injectFaults(0, 503);
    assert.equal(await unseal(vault({ client_type: 'ecs_ram_role' })), 'OK');
    fixture.metadata.failNext(1, 500);
    assert.equal(await unseal(vault({ client_type: 'ecs_ram_role' })), 'UNAVAILABLE');
    assert.equal(await unseal(vault({ client_type: 'ecs_ram_role' }, 'missing')), 'NOT_FOUND');
  });

  test('no secret in any log line or status message', async () => {
    // Let the daemon write its last lines.
    await new Promise((resolve) => setTimeout(resolve, 200));
    const logs = `${daemon.logLines.join('\n')}\n${daemon.stderr()}`;
    const everything = `${logs}\n${statusMessages.join('\n')}`;
    const everythingBytes = Buffer.from(everything, 'utf8');
    assert.ok(daemon.logLines.length > 20, 'the daemon logged');
    assert.match(logs, /"level":"debug"/, 'debug lines are there at trace level');
    assert.ok(statusMessages.length >= 10, `${statusMessages.length} status messages`);
    assert.ok(plaintextsReturned.includes(VAULT_VALUE) && plaintextsReturned.includes(STS_VALUE));

    const clientKeyFile = JSON.parse(readFileSync(world.credentials.paths.clientKey, 'utf8')) as {
      PrivateKeyData: string;
    };
    const forbidden: Forbidden[] = [
      ...envelopes.map((e, i) => ({ what: `plaintext ${i}`, text: e.plaintext })),
      ...envelopes.flatMap((e, i) => dataKeyForms(`data key ${i}`, e.dataKey)),
      { what: 'vault value', text: VAULT_VALUE },
      { what: 'sts vault value', text: STS_VALUE },
      { what: 'PKCS#12 password', text: world.pkcs12Password },
      ...fragments('private key PEM', world.privateKeyPem),
      ...fragments('PKCS#12', clientKeyFile.PrivateKeyData),
      { what: 'STS AccessKeySecret', text: STS_CREDENTIAL.accessKeySecret },
      { what: 'STS SecurityToken', text: STS_CREDENTIAL.securityToken },
      ...fixture.metadata.issued.flatMap((c) => [
        { what: 'role AccessKeySecret', text: c.accessKeySecret },
        { what: 'role SecurityToken', text: c.securityToken },
      ]),
    ];
    assert.ok(fixture.metadata.issued.length > 0, 'role credentials were issued');
    for (const item of forbidden) {
      if (item.text !== undefined) assert.ok(!everything.includes(item.text), `${item.what} leaked`);
      if (item.bytes !== undefined)
        assert.equal(everythingBytes.indexOf(item.bytes), -1, `${item.what} leaked`);
    }
  });
});
