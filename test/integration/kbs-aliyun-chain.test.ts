import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { clientKeyDaemonConfig } from '../../src/emulators/aliyun/scenario';
import { spawnDaemon, tempDir, type DaemonProcess } from '../../src/devtools/daemon';
import { startAliyunChain, type AliyunChain } from '../support/aliyun-chain';
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
let chain: AliyunChain;
let sealedSecret: string;
let daemon: DaemonProcess;
let credentialDir: string;

before(async () => {
  dir = tempDir('cdh-kbs-chain-');
  chain = await startAliyunChain(INSTANCE_ID, 'chain');
  sealedSecret = await chain.sealEnvelope(PLAINTEXT, 'kbs:///default/signing-key/chain');

  // The guest side: the three credential files exist only as KBS resources.
  const resourceFile = join(dir.path, 'aa-offline_fs_kbc-resources.json');
  writeResourceFile(resourceFile, {
    'default/signing-key/chain': chain.publicJwk,
    ...chain.credentialResources(),
  });

  const credentialsRoot = join(dir.path, 'cdh');
  credentialDir = join(credentialsRoot, 'kms-credential/aliyun');
  daemon = await spawnDaemon({
    dir: dir.path,
    socketPath: join(dir.path, 'cdh.sock'),
    config: {
      credentials_root: credentialsRoot,
      sealed_secret: { signing_key_dir: join(credentialsRoot, 'sealed-secret') },
      kbc: { name: 'offline_fs_kbc', offline_fs: { resource_files: [resourceFile] } },
      credentials: chain.credentialsConfig(credentialDir),
      ...clientKeyDaemonConfig(chain.emulator, credentialDir),
    },
  });
});

after(async () => {
  await daemon?.stop();
  await chain?.close();
  dir?.cleanup();
});

test('the credential files were provisioned from the KBC at start-up, mode 0600', () => {
  chain.assertProvisioned(credentialDir);
});

test('an envelope secret signed under a kbs:/// kid unseals against the gateway emulator', async () => {
  const plaintext = await daemon.client().unsealSecret(Buffer.from(sealedSecret));
  assert.equal(plaintext.toString(), PLAINTEXT);
  assert.ok((chain.emulator.stats.succeeded['Decrypt'] ?? 0) >= 1, 'the daemon asked the gateway');
});
