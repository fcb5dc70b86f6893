/**
 * `npm run demo`: the whole job offline, each step printed.
 *   1. `cdh-emulator aliyun`: a KMS gateway emulator (HTTPS on 127.0.0.1, its own test CA) and a
 *      client-key credential dir
 *   2. a signing key pair made with `secret keygen`
 *   3. the daemon on a temp socket, configured to trust that key and reach the emulator
 *   4. a secret sealed with `secret seal ... envelope ... ali ...`
 *   5. unsealed through the socket with `cdh-tool unseal-secret`
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CDH_TOOL_BIN, childEnv, SECRET_BIN, spawnDaemon, tempDir } from '../src/devtools/daemon';
import { EmulatorProcess } from '../src/devtools/emulator-process';
import { runKbsDemo } from './demo-kbs';

/** What the demo reads from `cdh-emulator aliyun`'s description line. */
interface AliyunDescription {
  readonly endpoints: { readonly dkms_gateway: string; readonly dkms_host: string };
  readonly key_id: string;
  readonly client_key_id: string;
  readonly kms_instance_id: string;
  readonly credential_files: {
    readonly clientKey: string;
    readonly password: string;
    readonly instanceCa: string;
  };
  readonly daemon_config: Record<string, unknown>;
  readonly env: Record<string, string>;
}

const PLAINTEXT = 'db-password: correct horse battery staple';

const execFileAsync = promisify(execFile);

/** Runs one of our programs as a user would (asynchronously: the emulator lives in this process). */
async function run(bin: string, args: string[], env: Record<string, string> = {}): Promise<string> {
  const shown = args.map((a) => (a.includes(' ') ? JSON.stringify(a) : a)).join(' ');
  console.log(`   $ ${bin.split('/').pop()?.replace(/\.js$/, '')} ${shown}`);
  const { stdout } = await execFileAsync(process.execPath, [bin, ...args], {
    encoding: 'utf8',
    env: childEnv(env),
  });
  return stdout;
}

async function main(): Promise<void> {
  const work = tempDir('cdh-demo-');
  console.log(`Working in ${work.path}\n`);
  console.log('1. Alibaba Cloud KMS gateway emulator and a client-key credential dir');
  const credentialDir = join(work.path, 'kms-credential/aliyun');
  console.log(`   $ cdh-emulator aliyun --credential-dir ${credentialDir}`);
  const emulator = await EmulatorProcess.start('aliyun', ['--credential-dir', credentialDir]);
  const kms = emulator.description as unknown as AliyunDescription;
  console.log(`   gateway ${kms.endpoints.dkms_host} served at https://${kms.endpoints.dkms_gateway}`);
  console.log(`   KMS key ${kms.key_id}, client key ${kms.client_key_id}`);
  console.log(`   credentials in ${credentialDir}: clientKey_*.json, password_*.json, PrivateKmsCA_*.pem\n`);

  let daemon: Awaited<ReturnType<typeof spawnDaemon>> | undefined;
  try {
    console.log('2. A signing key for sealed secrets');
    const sealerDir = join(work.path, 'sealer');
    const kid = (
      await run(SECRET_BIN, ['keygen', '--kid', 'demo-signing-key', '--output-dir', sealerDir])
    ).trim();
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
    const plaintextFile = join(work.path, 'plaintext');
    writeFileSync(plaintextFile, PLAINTEXT);
    const paths = kms.credential_files;
    const sealed = (
      await run(
        SECRET_BIN,
        [
          'seal',
          '--signing-kid',
          kid,
          '--signing-jwk-path',
          join(sealerDir, `${kid}-private.json`),
          '--file-path',
          plaintextFile,
          'envelope',
          '--key-id',
          kms.key_id,
          'ali',
          '--password-file-path',
          paths.password,
          '--cert-path',
          paths.instanceCa,
          '--kms-instance-id',
          kms.kms_instance_id,
          '--client-key-file-path',
          paths.clientKey,
        ],
        { ALIYUN_DKMS_CONNECT_TO: kms.endpoints.dkms_gateway },
      )
    ).trim();
    const sealedFile = join(work.path, 'sealed_secret.txt');
    writeFileSync(sealedFile, sealed);
    console.log(`   ${sealed.slice(0, 72)}… (${sealed.length} characters)`);
    const payload = JSON.parse(await run(SECRET_BIN, ['inspect', '--file-path', sealedFile])) as Record<
      string,
      unknown
    >;
    console.log(
      `   type ${String(payload['type'])}, provider ${String(payload['provider'])}, wrap_type ${String(payload['wrap_type'])}\n`,
    );

    console.log('5. Unseal through the socket');
    const base64 = (
      await run(CDH_TOOL_BIN, ['--socket', daemon.target, 'unseal-secret', '--secret-path', sealedFile])
    ).trim();
    const recovered = Buffer.from(base64, 'base64').toString('utf8');
    console.log(`   plaintext: ${recovered}`);
    if (recovered !== PLAINTEXT) throw new Error('the recovered plaintext differs from what was sealed');
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
