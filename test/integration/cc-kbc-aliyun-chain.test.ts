import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { after, before, test } from 'node:test';
import { createClientKeyProvider } from '../../src/providers/aliyun/client-key';
import type { ProviderInstance } from '../../src/providers/types';
import { generateSigningJwkPair, sealEnvelope, sealVault, signSealedSecret } from '../../src/secret';
import { clientKeyConfig, providerContext } from '../support/aliyun-credentials';
import {
  writeClientKeyCredentials,
  type ClientKeyCredentials,
} from '../../src/emulators/aliyun/client-key-files';
import { clientKeyDaemonConfig } from '../../src/emulators/aliyun/scenario';
import { spawnDaemon, tempDir, type DaemonProcess } from '../../src/devtools/daemon';
import { DkmsEmulator } from '../../src/emulators/aliyun/dkms-gateway';
import { ccKbcConfig, ccKbcEnv, startKbsWorld, type KbsWorld } from '../support/kbs-world';

/**
 * The real guest path end to end: the aliyun client key, its password and the instance CA
 * exist only as KBS resources; [[credentials]] fetches them through cc_kbc (AA token, HTTPS
 * KBS, JWE) at start-up; an envelope secret signed under a kbs:/// kid (the signing key is a KBS
 * resource too) then unseals against the dkms gateway emulator; a `provider: kbs` vault secret
 * reads its value from the KBS.
 */

const INSTANCE_ID = 'kst-cckbcchain00000001';
const PLAINTEXT = 'envelope-plaintext-marker-61f0';
const VAULT_VALUE = 'kbs-vault-value-marker-0c3d';
const SIGNING_KID = 'kbs:///default/signing-key/sealed-secret';

let dir: { path: string; cleanup(): void };
let sealerDir: { path: string; cleanup(): void };
let world: KbsWorld;
let sealedEnvelope: string;
let sealedVault: string;
let emulator: DkmsEmulator;
let sealer: ProviderInstance;
let creds: ClientKeyCredentials;
let daemon: DaemonProcess;
let credentialDir: string;

before(async () => {
  dir = tempDir('cdh-cckbc-chain-');
  sealerDir = tempDir('cdh-cckbc-chain-sealer-');
  emulator = await DkmsEmulator.start({ instanceId: INSTANCE_ID });
  const keyId = emulator.addKey();
  creds = await writeClientKeyCredentials({
    dir: sealerDir.path,
    caPem: emulator.caPem,
    kmsInstanceId: INSTANCE_ID,
  });
  emulator.addClientKey(creds.clientKeyId, creds.certificatePem);
  sealer = await createClientKeyProvider(
    creds.providerSettings,
    providerContext(clientKeyConfig(emulator, creds.dir)),
  );
  assert.ok(sealer.encrypter);
  const signing = generateSigningJwkPair('sealed-secret');
  const envelope = await sealEnvelope({
    encrypter: sealer.encrypter,
    provider: 'aliyun',
    providerSettings: creds.providerSettings,
    keyId,
    plaintext: Buffer.from(PLAINTEXT),
  });
  sealedEnvelope = signSealedSecret(envelope, signing.privateJwk, SIGNING_KID);
  sealedVault = signSealedSecret(
    sealVault({ provider: 'kbs', name: 'kbs:///default/vault/db-password' }),
    signing.privateJwk,
    SIGNING_KID,
  );

  const resources: Record<string, Buffer | string> = {
    'default/signing-key/sealed-secret': JSON.stringify(signing.publicJwk),
    'default/vault/db-password': VAULT_VALUE,
  };
  for (const file of Object.values(creds.paths))
    resources[`default/aliyun/${basename(file)}`] = readFileSync(file);
  world = await startKbsWorld({ tlsHost: 'kbs.chain.test', resources });

  const credentialsRoot = join(dir.path, 'cdh');
  credentialDir = join(credentialsRoot, 'kbs/kms-credential/aliyun');
  daemon = await spawnDaemon({
    dir: dir.path,
    config: {
      ...ccKbcConfig(world),
      credentials_root: credentialsRoot,
      sealed_secret: { signing_key_dir: join(credentialsRoot, 'sealed-secret') },
      credentials: Object.values(creds.paths).map((file) => ({
        resource_uri: `kbs:///default/aliyun/${basename(file)}`,
        path: join(credentialDir, basename(file)),
      })),
      ...clientKeyDaemonConfig(emulator, credentialDir),
    },
    env: ccKbcEnv(world),
  });
});

after(async () => {
  await daemon?.stop();
  await sealer?.close?.();
  await emulator?.close();
  await world?.close();
  dir?.cleanup();
  sealerDir?.cleanup();
});

test('[[credentials]] wrote the client key files from the KBS at start-up, mode 0600', () => {
  for (const file of Object.values(creds.paths)) {
    const provisioned = join(credentialDir, basename(file));
    assert.deepEqual(readFileSync(provisioned), readFileSync(file));
    assert.equal(statSync(provisioned).mode & 0o777, 0o600);
  }
  assert.ok(world.kbs.counters.attest >= 1, 'the AA attested');
});

test('an envelope secret signed under a kbs:/// kid unseals through the gateway emulator', async () => {
  const plaintext = await daemon.client().unsealSecret(Buffer.from(sealedEnvelope));
  assert.equal(plaintext.toString(), PLAINTEXT);
  assert.ok((emulator.stats.succeeded['Decrypt'] ?? 0) >= 1);
  assert.ok(world.kbs.counters.lastResourcePath !== '');
});

test('a provider: kbs vault secret reads its value from the KBS, every time', async () => {
  const requests = world.kbs.counters.resourceRequests;
  for (let i = 0; i < 2; i++) {
    assert.equal((await daemon.client().unsealSecret(Buffer.from(sealedVault))).toString(), VAULT_VALUE);
  }
  assert.ok(world.kbs.counters.resourceRequests - requests >= 2, 'vault values are not cached');
});
