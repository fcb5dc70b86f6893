/**
 * The steps both demos share (`npm run demo` and `npm run demo -- --kbs`): running our
 * programs as a user would, printing each command; the KMS gateway emulator; a signing key;
 * sealing with upstream's command line; unsealing through the socket.
 */
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { CDH_TOOL_BIN, childEnv, SECRET_BIN } from '../src/devtools/daemon';
import { EmulatorProcess } from '../src/devtools/emulator-process';

export const PLAINTEXT = 'db-password: correct horse battery staple';

/** What the demos read from `cdh-emulator aliyun`'s description line. */
export interface AliyunDescription {
  readonly endpoints: { readonly dkms_gateway: string; readonly dkms_host: string };
  readonly key_id: string;
  readonly client_key_id: string;
  readonly kms_instance_id: string;
  readonly credential_files: {
    readonly clientKey: string;
    readonly password: string;
    readonly instanceCa: string;
  };
  readonly daemon_config: { aliyun: Record<string, unknown> };
}

const execFileAsync = promisify(execFile);

/** Runs one of our programs as a user would (asynchronously: emulators may live in this process). */
export async function run(bin: string, args: string[], env: Record<string, string> = {}): Promise<string> {
  const shown = args.map((a) => (a.includes(' ') ? JSON.stringify(a) : a)).join(' ');
  console.log(`   $ ${bin.split('/').pop()?.replace(/\.js$/, '')} ${shown}`);
  const { stdout } = await execFileAsync(process.execPath, [bin, ...args], {
    encoding: 'utf8',
    env: childEnv(env),
  });
  return stdout;
}

/** `cdh-emulator aliyun --credential-dir DIR`: the gateway emulator and a client key in DIR. */
export async function startAliyunEmulator(
  credentialDir: string,
): Promise<{ emulator: EmulatorProcess; kms: AliyunDescription }> {
  console.log(`   $ cdh-emulator aliyun --credential-dir ${credentialDir}`);
  const emulator = await EmulatorProcess.start('aliyun', ['--credential-dir', credentialDir]);
  return { emulator, kms: emulator.description as unknown as AliyunDescription };
}

/** `secret keygen --kid KID --output-dir DIR`: the key's kid as printed. */
export async function keygen(kid: string, outputDir: string): Promise<string> {
  return (await run(SECRET_BIN, ['keygen', '--kid', kid, '--output-dir', outputDir])).trim();
}

/**
 * `secret seal ... envelope ... ali ...` (upstream's command line, pointed at the emulator),
 * signed with `privateJwk` under `kid`; the sealed secret is written to `sealedFile`.
 */
export async function sealWithAliyun(
  kms: AliyunDescription,
  signing: { readonly kid: string; readonly privateJwk: string },
  plaintextFile: string,
  sealedFile: string,
): Promise<string> {
  writeFileSync(plaintextFile, PLAINTEXT);
  const paths = kms.credential_files;
  const signingFlags = ['--signing-kid', signing.kid, '--signing-jwk-path', signing.privateJwk];
  const envelope = ['envelope', '--key-id', kms.key_id, 'ali', '--password-file-path', paths.password];
  const ali = ['--cert-path', paths.instanceCa, '--kms-instance-id', kms.kms_instance_id];
  const args = ['seal', ...signingFlags, '--file-path', plaintextFile, ...envelope, ...ali];
  args.push('--client-key-file-path', paths.clientKey);
  const sealed = (await run(SECRET_BIN, args, { ALIYUN_DKMS_CONNECT_TO: kms.endpoints.dkms_gateway })).trim();
  writeFileSync(sealedFile, sealed);
  console.log(`   ${sealed.slice(0, 72)}… (${sealed.length} characters)`);
  return sealed;
}

/** `cdh-tool unseal-secret` through the daemon's socket; throws unless the plaintext comes back. */
export async function unsealThroughSocket(target: string, sealedFile: string): Promise<void> {
  const base64 = (
    await run(CDH_TOOL_BIN, ['--socket', target, 'unseal-secret', '--secret-path', sealedFile])
  ).trim();
  const recovered = Buffer.from(base64, 'base64').toString('utf8');
  console.log(`   plaintext: ${recovered}`);
  if (recovered !== PLAINTEXT) throw new Error('the recovered plaintext differs from what was sealed');
}
