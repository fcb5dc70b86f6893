import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { createClientKeyProvider } from '../../src/providers/aliyun/client-key';
import type { ProviderInstance } from '../../src/providers/types';
import { generateSigningJwkPair, sealEnvelope, signSealedSecret } from '../../src/secret';
import {
  writeClientKeyCredentials,
  type ClientKeyCredentials,
} from '../../src/emulators/aliyun/client-key-files';
import { DkmsEmulator } from '../../src/emulators/aliyun/dkms-gateway';
import { tempDir } from '../../src/devtools/daemon';
import { clientKeyConfig, providerContext } from './aliyun-credentials';

/**
 * The user side of the "credentials only in the KBS" chains: a dkms gateway emulator, a client
 * key in the user's own directory (to seal with), an envelope secret signed under a kbs:/// kid,
 * and what the guest side needs from it: the KBS resources holding the three credential files
 * and the signing key, and the `[[credentials]]` entries that provision them.
 */
export interface AliyunChain {
  readonly emulator: DkmsEmulator;
  readonly creds: ClientKeyCredentials;
  /** The public JWK of the signing key (a KBS resource on the guest side). */
  readonly publicJwk: string;
  /** Signs a payload with the chain's signing key under `kid`. */
  sign(payload: Parameters<typeof signSealedSecret>[0], kid: string): string;
  /** An envelope secret of `plaintext`, sealed through the gateway and signed under `kid`. */
  sealEnvelope(plaintext: string, kid: string): Promise<string>;
  /** `default/aliyun/<file name>` → content, for each credential file. */
  credentialResources(): Record<string, Buffer>;
  /** The `[[credentials]]` config entries that write each file into `credentialDir`. */
  credentialsConfig(credentialDir: string): Array<{ resource_uri: string; path: string }>;
  /** Each file provisioned into `credentialDir` has the user's content and mode 0600. */
  assertProvisioned(credentialDir: string): void;
  close(): Promise<void>;
}

export async function startAliyunChain(instanceId: string, signingName: string): Promise<AliyunChain> {
  const sealerDir = tempDir('cdh-chain-sealer-');
  const emulator = await DkmsEmulator.start({ instanceId });
  const keyId = emulator.addKey();
  const creds = await writeClientKeyCredentials({
    dir: sealerDir.path,
    caPem: emulator.caPem,
    kmsInstanceId: instanceId,
  });
  emulator.addClientKey(creds.clientKeyId, creds.certificatePem);
  const sealer: ProviderInstance = await createClientKeyProvider(
    creds.providerSettings,
    providerContext(clientKeyConfig(emulator, creds.dir)),
  );
  const encrypter = sealer.encrypter;
  assert.ok(encrypter);
  const signing = generateSigningJwkPair(signingName);
  const files = Object.values(creds.paths);
  return {
    emulator,
    creds,
    publicJwk: JSON.stringify(signing.publicJwk),
    sign: (payload, kid) => signSealedSecret(payload, signing.privateJwk, kid),
    async sealEnvelope(plaintext, kid) {
      const envelope = await sealEnvelope({
        encrypter,
        provider: 'aliyun',
        providerSettings: creds.providerSettings,
        keyId,
        plaintext: Buffer.from(plaintext),
      });
      return signSealedSecret(envelope, signing.privateJwk, kid);
    },
    credentialResources: () =>
      Object.fromEntries(files.map((file) => [`default/aliyun/${basename(file)}`, readFileSync(file)])),
    credentialsConfig: (credentialDir) =>
      files.map((file) => ({
        resource_uri: `kbs:///default/aliyun/${basename(file)}`,
        path: join(credentialDir, basename(file)),
      })),
    assertProvisioned(credentialDir) {
      for (const file of files) {
        const provisioned = join(credentialDir, basename(file));
        assert.deepEqual(readFileSync(provisioned), readFileSync(file));
        assert.equal(statSync(provisioned).mode & 0o777, 0o600);
      }
    },
    async close() {
      await sealer.close?.();
      await emulator.close();
      sealerDir.cleanup();
    },
  };
}
