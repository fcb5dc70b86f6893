/**
 * `npm run demo`: the whole job offline, each step printed.
 *   1. `cdh-emulator aliyun`: a KMS gateway emulator (HTTPS on 127.0.0.1, its own test CA) and a
 *      client-key credential dir
 *   2. a signing key pair made with `secret keygen`
 *   3. the daemon on a temp socket, configured to trust that key and reach the emulator
 *   4. a secret sealed with `secret seal ... envelope ... ali ...`
 *   5. unsealed through the socket with `cdh-tool unseal-secret`
 * `npm run demo -- --kbs`: the guest path through a KBS and an attestation agent instead
 * (scripts/demo-kbs.ts). The steps both share live in scripts/demo-steps.ts.
 */
import { copyFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { SECRET_BIN, spawnDaemon, tempDir } from '../src/devtools/daemon';
import { runKbsDemo } from './demo-kbs';
import { keygen, run, sealWithAliyun, startAliyunEmulator, unsealThroughSocket } from './demo-steps';

async function main(): Promise<void> {
  const work = tempDir('cdh-demo-');
  console.log(`Working in ${work.path}\n`);
  console.log('1. Alibaba Cloud KMS gateway emulator and a client-key credential dir');
  const credentialDir = join(work.path, 'kms-credential/aliyun');
  const { emulator, kms } = await startAliyunEmulator(credentialDir);
  console.log(`   gateway ${kms.endpoints.dkms_host} served at https://${kms.endpoints.dkms_gateway}`);
  console.log(`   KMS key ${kms.key_id}, client key ${kms.client_key_id}`);
  console.log(`   credentials in ${credentialDir}: clientKey_*.json, password_*.json, PrivateKmsCA_*.pem\n`);

  let daemon: Awaited<ReturnType<typeof spawnDaemon>> | undefined;
  try {
    console.log('2. A signing key for sealed secrets');
    const sealerDir = join(work.path, 'sealer');
    const kid = await keygen('demo-signing-key', sealerDir);
    // The guest looks a JWS kid up as a file name in signing_key_dir: install the public half there.
    const keyDir = join(work.path, 'guest/sealed-secret');
    mkdirSync(keyDir, { recursive: true });
    copyFileSync(join(sealerDir, `${kid}-public.json`), join(keyDir, kid));
    console.log(`   ${kid}-private.json stays with whoever seals; the public key is installed in the guest`);
    console.log(`   as ${join(keyDir, kid)} (signing_key_dir/<kid>)\n`);

    console.log('3. The daemon on a temp socket');
    daemon = await spawnDaemon({
      dir: work.path,
      config: { ...kms.daemon_config, sealed_secret: { signing_key_dir: keyDir } },
    });
    console.log(`   serving on ${daemon.target}\n`);

    console.log("4. Seal a secret (upstream's command line, pointed at the emulator)");
    const sealedFile = join(work.path, 'sealed_secret.txt');
    const privateJwk = join(sealerDir, `${kid}-private.json`);
    await sealWithAliyun(kms, { kid, privateJwk }, join(work.path, 'plaintext'), sealedFile);
    const payload = JSON.parse(await run(SECRET_BIN, ['inspect', '--file-path', sealedFile])) as Record<
      string,
      unknown
    >;
    console.log(
      `   type ${String(payload['type'])}, provider ${String(payload['provider'])}, wrap_type ${String(payload['wrap_type'])}\n`,
    );

    console.log('5. Unseal through the socket');
    await unsealThroughSocket(daemon.target, sealedFile);
    const stats = (await emulator.stats())['dkms_gateway'] as { requests: Record<string, number> };
    console.log(`   KMS calls seen by the emulator (kill -USR2): ${JSON.stringify(stats.requests)}\n`);
  } finally {
    console.log('6. Clean up: stop the daemon (SIGTERM), the emulator, remove the temp dir');
    if (daemon) console.log(`   daemon exit code ${await daemon.stop()}`);
    console.log(`   emulator exit code ${await emulator.close()}`);
    work.cleanup();
  }
  console.log('\nDemo complete.');
}

(process.argv.includes('--kbs') ? runKbsDemo() : main()).catch((error: unknown) => {
  console.error(`demo failed: ${(error as Error).message}`);
  process.exit(1);
});
