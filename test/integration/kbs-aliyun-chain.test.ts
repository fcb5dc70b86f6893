import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { after, before, test } from 'node:test';
import { createClientKeyProvider } from '../../src/providers/aliyun/client-key';
import type { ProviderInstance } from '../../src/providers/types';
import { generateSigningJwkPair, sealEnvelope, signSealedSecret } from '../../src/secret';
import { clientKeyConfig, providerContext } from '../support/aliyun-credentials';
import {
  writeClientKeyCredentials,
  type ClientKeyCredentials,
} from '../../src/emulators/aliyun/client-key-files';
import { clientKeyDaemonConfig } from '../../src/emulators/aliyun/scenario';
import { spawnDaemon, tempDir, type DaemonProcess } from '../../src/devtools/daemon';
import { DkmsEmulator } from '../../src/emulators/aliyun/dkms-gateway';
import { writeResourceFile } from '../support/kbs';

/**
 * Credentials provisioned from KBS resources, end to end: the Aliyun client key, its password and the
 * instance CA live only in an offline_fs resource file; `[[credentials]]` provisions them into
 * the credential dir at start-up; an envelope secret (signed under a kbs:/// kid) then unseals
 * against the dkms gateway emulator. No credential file is placed by hand.
 */

const INSTANCE_ID = 'kst-kbschain0000000001';
const PLAINTEXT = 'envelope-plaintext-marker-9c41';

let dir: { path: string; cleanup(): void };
let sealerDir: { path: string; cleanup(): void };
let sealedSecret: string;
let emulator: DkmsEmulator;
let sealer: ProviderInstance;
let creds: ClientKeyCredentials;
let daemon: DaemonProcess;
let credentialDir: string;

before(async () => {
  dir = tempDir('cdh-kbs-chain-');
  sealerDir = tempDir('cdh-kbs-chain-sealer-');
  emulator = await DkmsEmulator.start({ instanceId: INSTANCE_ID });
  const keyId = emulator.addKey();

  // The user side: credentials in a directory of their own, used to seal.
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
  const signing = generateSigningJwkPair('chain');
  const envelope = await sealEnvelope({
    encrypter: sealer.encrypter,
    provider: 'aliyun',
    providerSettings: creds.providerSettings,
    keyId,
    plaintext: Buffer.from(PLAINTEXT),
  });
  sealedSecret = signSealedSecret(envelope, signing.privateJwk, 'kbs:///default/signing-key/chain');

  // The guest side: the three credential files exist only as KBS resources.
  const resourceFile = join(dir.path, 'aa-offline_fs_kbc-resources.json');
  const resources: Record<string, Buffer | string> = {
    'default/signing-key/chain': JSON.stringify(signing.publicJwk),
  };
  for (const file of Object.values(creds.paths))
    resources[`default/aliyun/${basename(file)}`] = readFileSync(file);
  writeResourceFile(resourceFile, resources);

  const credentialsRoot = join(dir.path, 'cdh');
  credentialDir = join(credentialsRoot, 'kms-credential/aliyun');
  daemon = await spawnDaemon({
    dir: dir.path,
    socketPath: join(dir.path, 'cdh.sock'),
    config: {
      credentials_root: credentialsRoot,
      sealed_secret: { signing_key_dir: join(credentialsRoot, 'sealed-secret') },
      kbc: { name: 'offline_fs_kbc', offline_fs: { resource_files: [resourceFile] } },
      credentials: Object.values(creds.paths).map((file) => ({
        resource_uri: `kbs:///default/aliyun/${basename(file)}`,
        path: join(credentialDir, basename(file)),
      })),
      ...clientKeyDaemonConfig(emulator, credentialDir),
    },
  });
});

after(async () => {
  await daemon?.stop();
  await sealer?.close?.();
  await emulator?.close();
  dir?.cleanup();
  sealerDir?.cleanup();
});

test('the credential files were provisioned from the KBC at start-up, mode 0600', () => {
  for (const file of Object.values(creds.paths)) {
    const provisioned = join(credentialDir, basename(file));
    assert.deepEqual(readFileSync(provisioned), readFileSync(file));
    assert.equal(statSync(provisioned).mode & 0o777, 0o600);
  }
});

test('an envelope secret signed under a kbs:/// kid unseals against the gateway emulator', async () => {
  const plaintext = await daemon.client().unsealSecret(Buffer.from(sealedSecret));
  assert.equal(plaintext.toString(), PLAINTEXT);
  assert.ok((emulator.stats.succeeded['Decrypt'] ?? 0) >= 1, 'the daemon asked the gateway');
});
