#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import {
  answeredHelpOrVersion,
  optionalFlag,
  readLevel,
  requireFlag,
  UsageError,
  type LevelArgs,
} from '../cli/args';
import type { SigningOptions } from '../cli/secret-commands';
import { CommandFailure, parseKeyproviderArgs, readAliLevel } from '../cli/keyprovider-args';
import { CdhError } from '../errors';
import { errnoCode } from '../lib/errno';

const USAGE = `Usage: secret <command> [options]

The user-side tool for sealed secrets (seal on a trusted machine; the daemon unseals in the guest).

  secret seal [--signing-kid KID --signing-jwk-path JWK] envelope --key-id KEY --file-path PLAIN \\
         ali --password-file-path P --cert-path CA --kms-instance-id ID --client-key-file-path CK
      Encrypt PLAIN under a fresh data key wrapped by the Alibaba Cloud KMS key KEY (client key
      access to instance ID). --file-path may also come right after "seal" (older upstream form).
  secret seal [--signing-kid KID --signing-jwk-path JWK] vault --resource-uri NAME --provider P \\
         [--provider-settings JSON] [--annotations JSON]
      A vault secret: a reference to NAME at provider P (e.g. aliyun secrets manager, kbs).
      With the signing flags the output is an ES256-signed JWS (header alg + kid); without them
      it is the unsigned form sealed.fakejwsheader.<payload>.fakesignature, which only a daemon
      that skips verification accepts. One line on stdout.
  secret unseal --file-path SEALED [--key-path DIR] [--skip-verification]
      Unseal locally; writes SEALED.unsealed (never overwrites). --file-path - reads stdin and
      writes the plaintext to stdout. DIR holds the provider credential files (for aliyun the
      clientKey_/password_/PrivateKmsCA_ files) and the signing key named by the JWS kid.
  secret inspect --file-path SEALED
      Print the payload JSON (nothing is decrypted; the signature is not checked).
  secret keygen [--kid KID] [--output-dir DIR]
      A P-256 signing pair: DIR/KID-private.json (mode 0600) and DIR/KID-public.json.
  secret keyprovider [--listen ADDR] PROVIDER-FLAGS
      An ocicrypt key provider for encrypting images: wraps each layer's options into an
      annotation packet the guest's confidential-data-hub unwraps. Without --listen, ocicrypt's
      "cmd" provider: one keywrap request JSON on stdin, the answer on stdout. With --listen
      (unix:///abs/path or host:port), keyprovider.KeyProviderService/WrapKey over gRPC until
      SIGTERM (UnWrapKey is UNIMPLEMENTED: unwrapping happens in the guest). PROVIDER-FLAGS:
        ali --kms-instance-id ID --key-id KEY --client-key-file-path CK \
            --password-file-path P --cert-path CA
            a v2 packet, provider aliyun: the options encrypted by the KMS key KEY (Encrypt).
        kbs --kid kbs:///REPO/TYPE/TAG --kek-file FILE
            a v1 packet, A256GCM under the KEK in FILE (32 raw bytes, as the KBS resource KID).

Environment: ALIYUN_DKMS_CONNECT_TO (dial host:port instead of the instance's gateway host),
ALIYUN_IN_GUEST_KEY_PATH, ALIYUN_OPENAPI_ENDPOINT, ALIYUN_OPENAPI_CA_FILE, ALIYUN_METADATA_ENDPOINT.
Exit 0 on success; otherwise non-zero with a one-line error on stderr.
`;

/**
 * The commands pull in the config loader, the providers and the crypto: loaded only once the
 * arguments are known to be good, so --help, --version and usage errors answer at once.
 */
function commands(): Promise<typeof import('../cli/secret-commands.js')> {
  return import('../cli/secret-commands.js');
}

const SIGNING_FLAGS = {
  'signing-kid': 'string',
  'signing-jwk-path': 'string',
  'file-path': 'string',
} as const;

async function main(argv: string[]): Promise<void> {
  // `secret seal --help` too: no option takes "--help" as its value, so it can only mean help.
  if (argv.includes('--help')) return void process.stdout.write(USAGE);
  const top = readLevel(argv, { help: 'boolean', h: 'boolean', version: 'boolean', V: 'boolean' }, 'secret');
  const asked = {
    help: top.flags['help'] === true || top.flags['h'] === true,
    version: top.flags['version'] === true || top.flags['V'] === true,
  };
  if (answeredHelpOrVersion('secret', USAGE, asked)) return;
  switch (top.next) {
    case 'seal':
      return seal(top.rest);
    case 'unseal': {
      const level = readLevel(
        top.rest,
        { 'file-path': 'string', 'key-path': 'string', 'skip-verification': 'boolean' },
        'unseal',
      );
      noMore(level.next, 'unseal');
      const request = {
        filePath: requireFlag(level.flags, 'file-path', 'unseal'),
        keyPath: optionalFlag(level.flags, 'key-path'),
        skipVerification: level.flags['skip-verification'] === true,
      };
      return (await commands()).runUnseal(request);
    }
    case 'inspect': {
      const level = readLevel(top.rest, { 'file-path': 'string' }, 'inspect');
      noMore(level.next, 'inspect');
      const filePath = requireFlag(level.flags, 'file-path', 'inspect');
      return (await commands()).runInspect(filePath);
    }
    case 'keygen': {
      const level = readLevel(top.rest, { kid: 'string', 'output-dir': 'string' }, 'keygen');
      noMore(level.next, 'keygen');
      return (await commands()).runKeygen(
        optionalFlag(level.flags, 'kid'),
        optionalFlag(level.flags, 'output-dir') ?? '.',
      );
    }
    case 'keyprovider': {
      const request = parseKeyproviderArgs(top.rest);
      return (await import('../cli/keyprovider.js')).runKeyprovider(request);
    }
    case undefined:
      throw new UsageError(
        'a command is required: seal, unseal, inspect, keygen or keyprovider (see --help)',
      );
    default:
      throw new UsageError(`unknown command "${top.next}" (see --help)`);
  }
}

async function seal(tokens: string[]): Promise<void> {
  const outer = readLevel(tokens, SIGNING_FLAGS, 'seal');
  const kid = optionalFlag(outer.flags, 'signing-kid');
  const jwkPath = optionalFlag(outer.flags, 'signing-jwk-path');
  if ((kid === undefined) !== (jwkPath === undefined))
    throw new UsageError('--signing-kid and --signing-jwk-path go together');
  const signing: SigningOptions | undefined =
    kid && jwkPath ? { kid, jwk: readJson(jwkPath, '--signing-jwk-path') } : undefined;

  if (outer.next === 'envelope') return sealEnvelope(outer, signing);
  if (outer.next === 'vault') {
    if (outer.flags['file-path'] !== undefined) throw new UsageError('seal vault takes no --file-path');
    const vault = readLevel(
      outer.rest,
      { 'resource-uri': 'string', provider: 'string', 'provider-settings': 'string', annotations: 'string' },
      'seal vault',
    );
    noMore(vault.next, 'seal vault');
    const request = {
      name: requireFlag(vault.flags, 'resource-uri', 'seal vault'),
      provider: requireFlag(vault.flags, 'provider', 'seal vault'),
      providerSettings: jsonObjectFlag(vault.flags, 'provider-settings'),
      annotations: stringMapFlag(vault.flags, 'annotations'),
      signing,
    };
    return (await commands()).runSealVault(request);
  }
  throw new UsageError(
    outer.next === undefined
      ? 'seal needs a type: envelope or vault'
      : `unknown secret type "${outer.next}" (envelope or vault)`,
  );
}

async function sealEnvelope(outer: LevelArgs, signing: SigningOptions | undefined): Promise<void> {
  const envelope = readLevel(outer.rest, { 'key-id': 'string', 'file-path': 'string' }, 'seal envelope');
  const filePath = eitherPlace(outer.flags['file-path'], envelope.flags['file-path']);
  if (envelope.next !== 'ali')
    throw new UsageError(
      envelope.next === undefined
        ? 'seal envelope needs a KMS: "ali ..."'
        : `unknown KMS "${envelope.next}" (supported: ali)`,
    );
  const { access } = readAliLevel(envelope.rest, 'seal envelope ali');
  const request = {
    keyId: requireFlag(envelope.flags, 'key-id', 'seal envelope'),
    plaintextPath: filePath,
    ...access,
    signing,
  };
  return (await commands()).runSealEnvelopeAli(request);
}

function eitherPlace(outer: string | boolean | undefined, inner: string | boolean | undefined): string {
  if (typeof outer === 'string' && typeof inner === 'string') throw new UsageError('--file-path given twice');
  const value = typeof inner === 'string' ? inner : outer;
  if (typeof value !== 'string') throw new UsageError('seal envelope needs --file-path');
  return value;
}

function noMore(next: string | undefined, where: string): void {
  if (next !== undefined) throw new UsageError(`unexpected argument "${next}" after ${where}`);
}

function readJson(path: string, flag: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new UsageError(`${flag}: cannot read ${path} (${errnoCode(error)})`);
  }
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new UsageError(`${flag}: ${path} is not JSON`);
  }
}

function jsonObjectFlag(flags: Record<string, string | boolean>, name: string): Record<string, unknown> {
  const text = optionalFlag(flags, name);
  if (text === undefined) return {};
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new UsageError(`--${name} is not JSON`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value))
    throw new UsageError(`--${name} must be a JSON object`);
  return value as Record<string, unknown>;
}

function stringMapFlag(flags: Record<string, string | boolean>, name: string): Record<string, string> {
  const object = jsonObjectFlag(flags, name);
  for (const [key, value] of Object.entries(object))
    if (typeof value !== 'string') throw new UsageError(`--${name}: the value of "${key}" must be a string`);
  return object as Record<string, string>;
}

main(process.argv.slice(2)).catch((error: unknown) => {
  const message =
    error instanceof UsageError || error instanceof CdhError || error instanceof CommandFailure
      ? error instanceof CdhError
        ? `${error.code}: ${error.message}`
        : error.message
      : `unexpected failure: ${(error as Error)?.message ?? String(error)}`;
  process.stderr.write(`secret: ${message.split('\n')[0]}\n`);
  process.exitCode = error instanceof UsageError ? 2 : 1;
});
