import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { sealVault } from '../../src/secret';
import { clientKeyDaemonConfig } from '../../src/emulators/aliyun/scenario';
import { spawnDaemon, tempDir, type DaemonProcess } from '../../src/devtools/daemon';
import { startAliyunChain, type AliyunChain } from '../support/aliyun-chain';
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
let world: KbsWorld;
let chain: AliyunChain;
let sealedEnvelope: string;
let sealedVault: string;
let daemon: DaemonProcess;
let credentialDir: string;

before(async () => {
  dir = tempDir('cdh-cckbc-chain-');
  chain = await startAliyunChain(INSTANCE_ID, 'sealed-secret');
  sealedEnvelope = await chain.sealEnvelope(PLAINTEXT, SIGNING_KID);
  sealedVault = chain.sign(
    sealVault({ provider: 'kbs', name: 'kbs:///default/vault/db-password' }),
    SIGNING_KID,
  );

  const resources: Record<string, Buffer | string> = {
    'default/signing-key/sealed-secret': chain.publicJwk,
    'default/vault/db-password': VAULT_VALUE,
    ...chain.credentialResources(),
  };
  world = await startKbsWorld({ tlsHost: 'kbs.chain.test', resources });

  const credentialsRoot = join(dir.path, 'cdh');
  credentialDir = join(credentialsRoot, 'kbs/kms-credential/aliyun');
  daemon = await spawnDaemon({
    dir: dir.path,
    config: {
      ...ccKbcConfig(world),
      credentials_root: credentialsRoot,
      sealed_secret: { signing_key_dir: join(credentialsRoot, 'sealed-secret') },
      credentials: chain.credentialsConfig(credentialDir),
      ...clientKeyDaemonConfig(chain.emulator, credentialDir),
    },
    env: ccKbcEnv(world),
  });
});

after(async () => {
  await daemon?.stop();
  await chain?.close();
  await world?.close();
  dir?.cleanup();
});

test('[[credentials]] wrote the client key files from the KBS at start-up, mode 0600', () => {
  chain.assertProvisioned(credentialDir);
  assert.ok(world.kbs.counters.attest >= 1, 'the AA attested');
});

test('an envelope secret signed under a kbs:/// kid unseals through the gateway emulator', async () => {
  const plaintext = await daemon.client().unsealSecret(Buffer.from(sealedEnvelope));
  assert.equal(plaintext.toString(), PLAINTEXT);
  assert.ok((chain.emulator.stats.succeeded['Decrypt'] ?? 0) >= 1);
  assert.ok(world.kbs.counters.lastResourcePath !== '');
});

test('a provider: kbs vault secret reads its value from the KBS, every time', async () => {
  const requests = world.kbs.counters.resourceRequests;
  for (let i = 0; i < 2; i++) {
    assert.equal((await daemon.client().unsealSecret(Buffer.from(sealedVault))).toString(), VAULT_VALUE);
  }
  assert.ok(world.kbs.counters.resourceRequests - requests >= 2, 'vault values are not cached');
});
