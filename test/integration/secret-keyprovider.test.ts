import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startAliyunScenario, type AliyunScenario } from '../../src/emulators/aliyun/scenario';
import { buildKeyUnwrapRequest, parseKeyUnwrapResults } from '../../src/keyprovider/protocol';
import { runCli, singleLineFailure, singleLineOutput, type CliResult } from '../support/cli';
import { CDH_TOOL_BIN, SECRET_BIN, tempDir, type DaemonProcess } from '../support/daemon';
import { keyproviderAliFlags, startKekDaemon } from '../support/keyprovider-world';

/*
 * `secret keyprovider` as ocicrypt's `cmd` key provider: a process given one keywrap request on
 * stdin (as Go ocicrypt and ocicrypt-rs write it) answers the packet on stdout; the daemon, a
 * process on its own socket (offline_fs holding the KEK, the dkms gateway emulator for aliyun),
 * unwraps that packet back to the very options.
 */

const SYMKEY = randomBytes(32).toString('base64');
const NONCE = randomBytes(16).toString('base64');
/** ocicrypt's private layer options, as skopeo writes them. */
const OPTIONS = JSON.stringify({
  symkey: SYMKEY,
  digest: `sha256:${randomBytes(32).toString('hex')}`,
  cipheroptions: { nonce: NONCE },
});
const KEK = randomBytes(32);
const KID = 'kbs:///default/image-kek/layers';

let work: { path: string; cleanup(): void };
let kms: AliyunScenario;
let daemon: DaemonProcess;
let kekFile: string;
const outputs: CliResult[] = [];

/** The keywrap request Go ocicrypt sends: optsdata base64 (its []byte), ec with a DecryptConfig. */
function goRequest(options = OPTIONS): string {
  return JSON.stringify({
    op: 'keywrap',
    keywrapparams: {
      ec: {
        Parameters: { 'attestation-agent': [Buffer.from('any value').toString('base64')] },
        DecryptConfig: { Parameters: {} },
      },
      optsdata: Buffer.from(options).toString('base64'),
    },
    keyunwrapparams: { dc: null, annotation: null },
  });
}

/** The keywrap request ocicrypt-rs sends: optsdata is the options JSON text itself. */
function rustRequest(options = OPTIONS): string {
  return JSON.stringify({
    op: 'keywrap',
    keywrapparams: {
      ec: { Parameters: { 'attestation-agent': [] }, DecryptConfig: { Parameters: {} } },
      optsdata: options,
    },
    keyunwrapparams: { dc: null, annotation: null },
  });
}

function kbsFlags(): string[] {
  return ['kbs', '--kid', KID, '--kek-file', kekFile];
}

function aliFlags(keyId = kms.keyId): string[] {
  return keyproviderAliFlags(kms, keyId);
}

async function keyprovider(flags: readonly string[], input: string | Buffer): Promise<CliResult> {
  const result = await runCli(SECRET_BIN, ['keyprovider', ...flags], { env: kms.env, input });
  outputs.push(result);
  return result;
}

/** The packet of a keywrapresults answer: `annotation` as a JSON integer array, as ocicrypt-rs needs. */
function packetOf(result: CliResult): Buffer {
  const line = singleLineOutput(result, 'secret keyprovider');
  const answer = JSON.parse(line) as { keywrapresults: { annotation: unknown } };
  const annotation = answer.keywrapresults.annotation;
  assert.ok(
    Array.isArray(annotation) && annotation.every((b) => Number.isInteger(b)),
    'annotation is not bytes',
  );
  return Buffer.from(annotation as number[]);
}

let fileCounter = 0;
async function unwrapWithCdhTool(packet: Buffer): Promise<string> {
  const file = join(work.path, `packet-${++fileCounter}.json`);
  writeFileSync(file, packet);
  const result = await runCli(CDH_TOOL_BIN, [
    '--socket',
    daemon.target,
    'unwrap-key',
    '--annotation-path',
    file,
  ]);
  return Buffer.from(singleLineOutput(result, 'cdh-tool unwrap-key'), 'base64').toString('utf8');
}

async function unwrapWithGrpc(packet: Buffer): Promise<string> {
  const answer = await daemon.client().keyProviderCall('UnWrapKey', buildKeyUnwrapRequest(packet));
  return parseKeyUnwrapResults(answer).toString('utf8');
}

before(async () => {
  work = tempDir('cdh-keyprovider-cli-');
  const credentialDir = join(work.path, 'kms-credential');
  mkdirSync(credentialDir);
  kms = await startAliyunScenario({ credentialDir });
  ({ daemon, kekFile } = await startKekDaemon(work.path, kms, 'default/image-kek/layers', KEK));
});

after(async () => {
  const code = await daemon?.stop();
  const logs = daemon?.logLines.join('\n') ?? '';
  daemon?.cleanup();
  await kms?.close();
  work?.cleanup();
  for (const secret of [SYMKEY, NONCE, KEK.toString('base64'), KEK.toString('hex')])
    assert.ok(!logs.includes(secret), 'key material in a daemon log line');
  assert.equal(code, 0);
});

function assertNoKeyMaterial(result: CliResult): void {
  for (const secret of [SYMKEY, NONCE, OPTIONS, KEK.toString('base64'), KEK.toString('hex')]) {
    assert.ok(!result.stdout.includes(secret), 'key material on stdout');
    assert.ok(!result.stderr.includes(secret), 'key material on stderr');
  }
}

describe('secret keyprovider kbs (cmd): a v1 packet under the KEK file', { concurrency: 2 }, () => {
  test('a Go-style request (optsdata base64) gives a v1 A256GCM packet that the daemon unwraps', async () => {
    const result = await keyprovider(kbsFlags(), goRequest());
    const packet = packetOf(result);
    const fields = JSON.parse(packet.toString('utf8')) as Record<string, string>;
    assert.deepEqual(Object.keys(fields).sort(), ['iv', 'kid', 'wrap_type', 'wrapped_data']);
    assert.equal(fields['kid'], KID);
    assert.equal(fields['wrap_type'], 'A256GCM');
    assert.equal(Buffer.from(fields['iv'] as string, 'base64').length, 12);
    // The options plus the 16-byte GCM tag.
    assert.equal(
      Buffer.from(fields['wrapped_data'] as string, 'base64').length,
      Buffer.byteLength(OPTIONS) + 16,
    );
    assert.equal(await unwrapWithCdhTool(packet), OPTIONS);
    assertNoKeyMaterial(result);
  });

  test('a Rust-style request (optsdata as raw JSON text) unwraps to the same options', async () => {
    const result = await keyprovider(kbsFlags(), rustRequest());
    assert.equal(await unwrapWithGrpc(packetOf(result)), OPTIONS);
    assertNoKeyMaterial(result);
  });

  test('two wraps of the same options use fresh IVs', async () => {
    const [first, second] = await Promise.all([
      keyprovider(kbsFlags(), goRequest()),
      keyprovider(kbsFlags(), goRequest()),
    ]);
    const iv = (result: CliResult): string => (JSON.parse(packetOf(result).toString()) as { iv: string }).iv;
    assert.notEqual(iv(first as CliResult), iv(second as CliResult));
  });
});

describe('secret keyprovider ali (cmd): a v2 aliyun packet through KMS Encrypt', { concurrency: 2 }, () => {
  test('a Go-style request gives a v2 packet that the daemon unwraps with the KMS', async () => {
    const result = await keyprovider(aliFlags(), goRequest());
    const packet = packetOf(result);
    const fields = JSON.parse(packet.toString('utf8')) as Record<string, unknown>;
    assert.equal(fields['version'], '0.1.0');
    assert.equal(fields['provider'], 'aliyun');
    assert.equal(fields['kid'], kms.keyId);
    assert.deepEqual(fields['provider_settings'], {
      client_type: 'client_key',
      client_key_id: kms.credentials.clientKeyId,
      kms_instance_id: kms.credentials.kmsInstanceId,
    });
    const annotations = fields['annotations'] as Record<string, string>;
    assert.equal(Buffer.from(annotations['iv'] as string, 'base64').length, 12);
    assert.equal(await unwrapWithCdhTool(packet), OPTIONS);
    assertNoKeyMaterial(result);
  });

  test('a Rust-style request unwraps to the same options', async () => {
    const result = await keyprovider(aliFlags(), rustRequest());
    assert.equal(await unwrapWithGrpc(packetOf(result)), OPTIONS);
    assertNoKeyMaterial(result);
  });

  test('a KMS key that does not exist: the KMS error on one line, exit non-zero', async () => {
    const result = await keyprovider(aliFlags('key-does-not-exist-0000'), goRequest());
    const line = singleLineFailure(result, 'secret', 'unknown KMS key');
    assert.match(line, /key-does-not-exist-0000/);
    assert.match(line, /KMS_NOT_FOUND/);
    assertNoKeyMaterial(result);
  });
});

describe(
  'secret keyprovider (cmd): bad requests and flags are refused on one line',
  { concurrency: 3 },
  () => {
    const requests: Array<[string, string | Buffer, RegExp]> = [
      ['a request that is not JSON', `{"op":"keywrap", ${OPTIONS}`, /key-provider request is not valid JSON/],
      ['an empty stdin', '', /request on stdin is empty/],
      [
        'a keyunwrap request',
        goRequest().replace('"op":"keywrap"', '"op":"keyunwrap"'),
        /op "keyunwrap" is not "keywrap"/,
      ],
      [
        'no optsdata',
        '{"op":"keywrap","keywrapparams":{"ec":null},"keyunwrapparams":null}',
        /"keywrapparams.optsdata" is missing/,
      ],
      [
        'optsdata that is not base64',
        goRequest().replace(/"optsdata":"[^"]*"/, '"optsdata":"not base64!"'),
        /"keywrapparams.optsdata" is not valid standard base64/,
      ],
      [
        'optsdata that is base64 of something other than JSON',
        goRequest(`${SYMKEY} is not JSON`),
        /"keywrapparams.optsdata" is not layer options JSON/,
      ],
      ['optsdata that is a JSON array', rustRequest(`[${JSON.stringify(SYMKEY)}]`), /an array in JSON/],
      ['a request over 1 MiB', Buffer.alloc(1024 * 1024 + 10, 0x20), /more than the 1048576 bytes accepted/],
    ];
    for (const [what, input, pattern] of requests) {
      test(`${what}: KEYPROVIDER_REQUEST_INVALID naming the problem, no key material`, async () => {
        const result = await keyprovider(kbsFlags(), input);
        const line = singleLineFailure(result, 'secret', what);
        assert.match(line, /KEYPROVIDER_REQUEST_INVALID/);
        assert.match(line, pattern);
        assertNoKeyMaterial(result);
      });
    }

    test('a KEK file that is not 32 bytes, a kid that is no resource URI, an unknown provider', async () => {
      const shortKek = join(work.path, 'short-kek.bin');
      writeFileSync(shortKek, KEK.subarray(0, 16));
      const cases: Array<[string[], RegExp, number]> = [
        [['kbs', '--kid', KID, '--kek-file', shortKek], /holds 16 bytes; a KEK is 32 raw bytes/, 2],
        [['kbs', '--kid', KID, '--kek-file', join(work.path, 'missing')], /cannot read .*ENOENT/, 2],
        [['kbs', '--kid', 'default/key/1', '--kek-file', kekFile], /RESOURCE_URI_INVALID/, 1],
        [['kbs', '--kek-file', kekFile], /keyprovider kbs needs --kid/, 2],
        [['vault', '--kid', KID], /unknown key provider "vault"/, 2],
        [[], /needs PROVIDER-FLAGS/, 2],
      ];
      for (const [flags, pattern, code] of cases) {
        const result = await keyprovider(flags, goRequest());
        assert.match(singleLineFailure(result, 'secret', flags.join(' ')), pattern);
        assert.equal(result.code, code, flags.join(' '));
        assertNoKeyMaterial(result);
      }
    });
  },
);
