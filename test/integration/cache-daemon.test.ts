import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { defaultConfig } from '../../src/config/types';
import { silentLogger } from '../../src/log';
import { createClientKeyProvider } from '../../src/providers/aliyun/client-key';
import type { Encrypter } from '../../src/providers/types';
import { generateSigningJwkPair, sealEnvelope, signSealedSecret } from '../../src/secret';
import { startAliyunScenario, type AliyunScenario } from '../../src/emulators/aliyun/scenario';
import { spawnDaemon, tempDir, type DaemonProcess } from '../../src/devtools/daemon';

/**
 * The data-key cache and single-flight, seen from outside: the daemon as a process on a temp
 * socket, unsealing client_key envelope secrets against the gateway emulator, whose request
 * counter tells how many Decrypt calls reached the KMS.
 */

const KID = 'cache-test-key';
const signing = generateSigningJwkPair(KID);

let kms: AliyunScenario;
let work: { path: string; cleanup(): void };
let keyDir: string;
let encrypter: Encrypter;
let closeEncrypter: () => Promise<void>;
let sealedCount = 0;
const daemons: DaemonProcess[] = [];

before(async () => {
  kms = await startAliyunScenario();
  work = tempDir('cdh-cache-');
  keyDir = join(work.path, 'sealed-secret');
  mkdirSync(keyDir);
  writeFileSync(join(keyDir, KID), JSON.stringify(signing.publicJwk));
  const config = defaultConfig();
  config.aliyun.credentialDir = kms.credentials.dir;
  config.aliyun.dkmsConnectTo = kms.emulator.connectTo;
  const provider = await createClientKeyProvider(kms.credentials.providerSettings, {
    config,
    logger: silentLogger(),
  });
  assert.ok(provider.encrypter);
  encrypter = provider.encrypter;
  closeEncrypter = async () => provider.close?.();
});

after(async () => {
  await Promise.allSettled(daemons.map((daemon) => daemon.stop()));
  for (const daemon of daemons) daemon.cleanup();
  await closeEncrypter?.();
  await kms?.close();
  work?.cleanup();
});

/** A fresh secret (its own data key), sealed through the emulator and signed. */
async function seal(): Promise<{ secret: Buffer; plaintext: string }> {
  const plaintext = `cache test secret #${++sealedCount}`;
  const payload = await sealEnvelope({
    encrypter,
    provider: 'aliyun',
    providerSettings: kms.credentials.providerSettings,
    keyId: kms.keyId,
    plaintext: Buffer.from(plaintext),
  });
  return { secret: Buffer.from(signSealedSecret(payload, signing.privateJwk, KID)), plaintext };
}

async function daemonWithTtl(ttlSeconds: number): Promise<DaemonProcess> {
  const daemon = await spawnDaemon({
    config: {
      ...kms.daemonConfig,
      sealed_secret: { signing_key_dir: keyDir },
      cache: { ttl_seconds: ttlSeconds },
    },
  });
  daemons.push(daemon);
  return daemon;
}

function decryptCalls(): number {
  return kms.emulator.stats.requests['Decrypt'] ?? 0;
}

test('ttl 0: 50 concurrent identical unseals share one KMS Decrypt (single-flight); later ones ask again', async () => {
  const daemon = await daemonWithTtl(0);
  const client = daemon.client();
  // Build the provider instance first, so the 50 calls below meet at the KMS call itself.
  const warm = await seal();
  assert.equal((await client.unsealSecret(warm.secret)).toString(), warm.plaintext);

  const { secret, plaintext } = await seal();
  const before = decryptCalls();
  // Hold the KMS answer back until every call has arrived and joined the flight (long enough for
  // 50 calls to arrive on a loaded CI machine: 500 ms was not, at a load average of 18).
  kms.emulator.slowNext(3000);
  const answers = await Promise.all(Array.from({ length: 50 }, () => client.unsealSecret(secret)));
  assert.equal(decryptCalls() - before, 1, 'one Decrypt for 50 concurrent identical unseals');
  for (const answer of answers) assert.equal(answer.toString(), plaintext);

  // Nothing is kept with ttl 0: the next unseal of the same secret reaches the KMS again.
  assert.equal((await client.unsealSecret(secret)).toString(), plaintext);
  assert.equal((await client.unsealSecret(secret)).toString(), plaintext);
  assert.equal(decryptCalls() - before, 3, 'ttl 0 disables the cache');
});

test('ttl 300: a second unseal of the same secret is a cache hit and does not reach the KMS', async () => {
  const daemon = await daemonWithTtl(300);
  const client = daemon.client();
  const { secret, plaintext } = await seal();
  const before = decryptCalls();
  assert.equal((await client.unsealSecret(secret)).toString(), plaintext);
  assert.equal(decryptCalls() - before, 1);
  for (let i = 0; i < 5; i++) assert.equal((await client.unsealSecret(secret)).toString(), plaintext);
  assert.equal(decryptCalls() - before, 1, 'cache hits');

  // Another secret (another data key) is its own entry.
  const other = await seal();
  assert.equal((await client.unsealSecret(other.secret)).toString(), other.plaintext);
  assert.equal(decryptCalls() - before, 2);
});

test('ttl 1: once the entry has expired, the next unseal asks the KMS again', async () => {
  const daemon = await daemonWithTtl(1);
  const client = daemon.client();
  const { secret, plaintext } = await seal();
  const before = decryptCalls();
  assert.equal((await client.unsealSecret(secret)).toString(), plaintext);
  assert.equal((await client.unsealSecret(secret)).toString(), plaintext);
  assert.equal(decryptCalls() - before, 1, 'hit within the TTL');
  await new Promise((resolve) => setTimeout(resolve, 1300));
  assert.equal((await client.unsealSecret(secret)).toString(), plaintext);
  assert.equal(decryptCalls() - before, 2, 'refetched after the TTL');
});
