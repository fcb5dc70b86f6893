import assert from 'node:assert/strict';
import { createCipheriv, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CdhTtrpcClient } from '../../src/client/cdh-ttrpc-client';
import { buildKeyUnwrapRequest, parseKeyUnwrapResults } from '../../src/keyprovider/protocol';
import { PACKAGE_ROOT } from '../../src/package-info';
import { CDH_TOOL_BIN, spawnDaemon, tempDir, type DaemonProcess } from '../support/daemon';
import { writeResourceFile } from '../support/kbs';
import { runCli } from '../support/cli';
import { ccKbcConfig, ccKbcEnv, startKbsWorld, type KbsWorld } from '../support/kbs-world';

/**
 * KeyProviderService.UnWrapKey on the daemon's socket (gRPC and ttrpc), KEKs from offline_fs.
 */

const INVALID_ARGUMENT = 3;
const DATA_LOSS = 15;
const UNIMPLEMENTED = 12;

/** The sample KBC's hard-coded KEK (upstream attestation-agent sample_kbc / coco_keyprovider). */
const SAMPLE_KEK = Buffer.from([
  217, 155, 119, 5, 176, 186, 122, 22, 130, 149, 179, 163, 54, 114, 112, 176, 221, 155, 55, 27, 245, 20, 202,
  139, 155, 167, 240, 163, 55, 17, 218, 234,
]);
/** The options upstream's decryptable sample packet documents. */
const SAMPLE_OPTIONS =
  '{"symkey":"1jL2jJV0Oyz2nmPkLtqulW6cKcpIUN5FpILcVnP5Uqs=","digest":"sha256:18be1897f9402f27c8c0eba7c86e0c00f5656db62961b5949d55f9565c42c6e7","cipheroptions":{"nonce":"r10F9oaCu+nWFXfod3l83g=="}}';
const OTHER_KEK = randomBytes(32);
/** Upstream ocicrypt-rs's own packet file (data/sample_kbc_annotation.json), byte for byte. */
const UPSTREAM_SAMPLE_PACKET = readFileSync(
  join(PACKAGE_ROOT, 'test/fixtures/vectors/sample_kbc_annotation.json'),
);

function v1Packet(
  kek: Buffer,
  options: string,
  wrapType: 'A256GCM' | 'A256CTR' = 'A256GCM',
  kid = 'kbs:///default/key/1',
): Record<string, string> {
  const iv = randomBytes(wrapType === 'A256GCM' ? 12 : 16);
  const cipher =
    wrapType === 'A256GCM' ? createCipheriv('aes-256-gcm', kek, iv) : createCipheriv('aes-256-ctr', kek, iv);
  const body = Buffer.concat([cipher.update(options), cipher.final()]);
  const wrapped =
    wrapType === 'A256GCM'
      ? Buffer.concat([
          body,
          (cipher as ReturnType<typeof createCipheriv> & { getAuthTag(): Buffer }).getAuthTag(),
        ])
      : body;
  return { kid, wrapped_data: wrapped.toString('base64'), iv: iv.toString('base64'), wrap_type: wrapType };
}

function packetBytes(packet: object): Buffer {
  return Buffer.from(JSON.stringify(packet));
}

interface Failure {
  code: number;
  details?: string;
  peerMessage?: string;
}

describe('UnWrapKey with KEKs from offline_fs', () => {
  let daemon: DaemonProcess;
  let dir: { path: string; cleanup(): void };
  let ttrpc: CdhTtrpcClient;

  before(async () => {
    dir = tempDir('cdh-keyprovider-');
    const resources = join(dir.path, 'resources.json');
    writeResourceFile(resources, {
      'default/key/1': SAMPLE_KEK,
      'default/key/other': OTHER_KEK,
      'default/key/short': Buffer.alloc(16, 1),
    });
    daemon = await spawnDaemon({
      config: {
        log: { level: 'trace' },
        kbc: { name: 'offline_fs_kbc', offline_fs: { resource_files: [resources] } },
      },
    });
    ttrpc = new CdhTtrpcClient(daemon.target);
  });
  after(async () => {
    ttrpc?.close();
    await daemon?.stop();
    dir?.cleanup();
  });

  const transports = {
    grpc: (request: Buffer) => daemon.client().keyProviderCall('UnWrapKey', request),
    ttrpc: (request: Buffer) => ttrpc.keyProviderCall('UnWrapKey', request),
  } as const;

  for (const [name, call] of Object.entries(transports)) {
    test(`${name}: a v1 A256GCM packet under the sample KEK gives the documented options as an integer array`, async () => {
      const answer = await call(buildKeyUnwrapRequest(packetBytes(v1Packet(SAMPLE_KEK, SAMPLE_OPTIONS))));
      const json = JSON.parse(answer.toString()) as { keyunwrapresults: { optsdata: number[] } };
      assert.ok(Array.isArray(json.keyunwrapresults.optsdata));
      assert.equal(Buffer.from(json.keyunwrapresults.optsdata).toString(), SAMPLE_OPTIONS);
    });

    test(`${name}: upstream's decryptable sample packet file gives the options upstream documents`, async () => {
      const answer = await call(buildKeyUnwrapRequest(UPSTREAM_SAMPLE_PACKET));
      assert.equal(parseKeyUnwrapResults(answer).toString(), SAMPLE_OPTIONS);
    });

    test(`${name}: a v1 A256CTR packet and a v2 kbs packet unwrap too`, async () => {
      const ctr = await call(
        buildKeyUnwrapRequest(
          packetBytes(v1Packet(OTHER_KEK, SAMPLE_OPTIONS, 'A256CTR', 'kbs:///default/key/other')),
        ),
      );
      assert.equal(parseKeyUnwrapResults(ctr).toString(), SAMPLE_OPTIONS);
      const v2 = {
        version: '0.1.0',
        provider: 'kbs',
        provider_settings: {},
        annotations: {},
        ...v1Packet(SAMPLE_KEK, SAMPLE_OPTIONS),
      };
      assert.equal(
        parseKeyUnwrapResults(await call(buildKeyUnwrapRequest(packetBytes(v2)))).toString(),
        SAMPLE_OPTIONS,
      );
    });

    const good = v1Packet(SAMPLE_KEK, SAMPLE_OPTIONS);
    const { wrap_type: _w, ...noWrapType } = good;
    const cases: Array<[string, Buffer, number, RegExp]> = [
      [
        'a missing wrap_type',
        buildKeyUnwrapRequest(packetBytes(noWrapType)),
        INVALID_ARGUMENT,
        /"wrap_type" is missing/,
      ],
      [
        'bad base64 in wrapped_data',
        buildKeyUnwrapRequest(packetBytes({ ...good, wrapped_data: '!!x' })),
        INVALID_ARGUMENT,
        /"wrapped_data" is not valid standard base64/,
      ],
      [
        'a 16-byte iv with A256GCM',
        buildKeyUnwrapRequest(packetBytes({ ...good, iv: randomBytes(16).toString('base64') })),
        INVALID_ARGUMENT,
        /iv is 16 bytes; wrap_type A256GCM needs a 12-byte iv/,
      ],
      [
        'an unknown provider',
        buildKeyUnwrapRequest(packetBytes({ ...good, provider: 'nosuchkms' })),
        INVALID_ARGUMENT,
        /nosuchkms/,
      ],
      [
        'the wrong KEK',
        buildKeyUnwrapRequest(packetBytes({ ...good, kid: 'kbs:///default/key/other' })),
        DATA_LOSS,
        /A256GCM authentication of wrapped_data failed with the KEK "kbs:\/\/\/default\/key\/other"/,
      ],
      [
        'a KEK of 16 bytes',
        buildKeyUnwrapRequest(packetBytes({ ...good, kid: 'kbs:///default/key/short' })),
        INVALID_ARGUMENT,
        /16 bytes/,
      ],
      [
        'an unsupported version',
        buildKeyUnwrapRequest(packetBytes({ ...good, version: '0.2.0' })),
        INVALID_ARGUMENT,
        /version "0.2.0" is not supported/,
      ],
      [
        'a request with no annotation',
        Buffer.from('{"op":"keyunwrap","keywrapparams":{},"keyunwrapparams":{"dc":null}}'),
        INVALID_ARGUMENT,
        /no annotation packet given/,
      ],
      [
        'a request that is not JSON',
        Buffer.from('{"op":'),
        INVALID_ARGUMENT,
        /key-provider request is not valid JSON/,
      ],
      [
        'a request without keywrapparams',
        Buffer.from('{"op":"keyunwrap","keyunwrapparams":{"annotation":"e30="}}'),
        INVALID_ARGUMENT,
        /"keywrapparams" is missing/,
      ],
    ];
    for (const [what, request, code, pattern] of cases) {
      test(`${name}: ${what} is refused with the right status, naming the field`, async () => {
        await assert.rejects(call(request), (error: Failure) => {
          const message = error.details ?? error.peerMessage ?? '';
          assert.equal(error.code, code, message);
          assert.match(message, pattern);
          return true;
        });
      });
    }

    test(`${name}: WrapKey is UNIMPLEMENTED in the daemon`, async () => {
      const request = Buffer.from(
        '{"op":"keywrap","keywrapparams":{"ec":null,"optsdata":"e30="},"keyunwrapparams":null}',
      );
      const wrap =
        name === 'grpc'
          ? daemon.client().keyProviderCall('WrapKey', request)
          : ttrpc.keyProviderCall('WrapKey', request);
      await assert.rejects(wrap, (error: Failure) => error.code === UNIMPLEMENTED);
    });
  }

  test('cdh-tool unwrap-key prints the options base64, over gRPC and ttrpc', async () => {
    const file = join(dir.path, 'packet.json');
    writeFileSync(file, JSON.stringify(v1Packet(SAMPLE_KEK, SAMPLE_OPTIONS)));
    for (const extra of [[], ['--ttrpc']]) {
      const result = await runCli(CDH_TOOL_BIN, [
        '--socket',
        daemon.target,
        ...extra,
        'unwrap-key',
        '--annotation-path',
        file,
      ]);
      assert.equal(result.code, 0, result.stderr);
      assert.equal(Buffer.from(result.stdout.trim(), 'base64').toString(), SAMPLE_OPTIONS);
    }
  });

  test('the daemon still serves, and no key material reached its log at trace level', async () => {
    assert.equal(await daemon.client().check(), 'SERVING');
    const log = daemon.logLines.join('\n') + daemon.stderr();
    assert.ok(log.includes('unwrapping a layer key'), 'the unwraps were logged');
    for (const secret of [
      '1jL2jJV0Oyz2nmPkLtqulW6cKcpIUN5FpILcVnP5Uqs=',
      SAMPLE_KEK.toString('base64'),
      OTHER_KEK.toString('base64'),
      'symkey',
    ])
      assert.ok(!log.includes(secret), `log holds ${secret.slice(0, 6)}…`);
  });
});

describe('UnWrapKey with the KEK from the KBS through cc_kbc', () => {
  let world: KbsWorld;
  let daemon: DaemonProcess;
  const kek = randomBytes(32);

  before(async () => {
    world = await startKbsWorld({ tlsHost: 'kbs.cdh.test', resources: { 'default/key/image': kek } });
    daemon = await spawnDaemon({ config: ccKbcConfig(world), env: ccKbcEnv(world) });
  });
  after(async () => {
    await daemon?.stop();
    await world?.close();
  });

  test('a v1 packet whose KEK is a KBS resource unwraps over gRPC and ttrpc', async () => {
    const request = buildKeyUnwrapRequest(
      packetBytes(v1Packet(kek, SAMPLE_OPTIONS, 'A256GCM', 'kbs:///default/key/image')),
    );
    assert.equal(
      parseKeyUnwrapResults(await daemon.client().keyProviderCall('UnWrapKey', request)).toString(),
      SAMPLE_OPTIONS,
    );
    const ttrpc = new CdhTtrpcClient(daemon.target);
    try {
      assert.equal(
        parseKeyUnwrapResults(await ttrpc.keyProviderCall('UnWrapKey', request)).toString(),
        SAMPLE_OPTIONS,
      );
    } finally {
      ttrpc.close();
    }
  });

  test('a kid the KBS does not have is NOT_FOUND naming it', async () => {
    const request = buildKeyUnwrapRequest(
      packetBytes(v1Packet(kek, SAMPLE_OPTIONS, 'A256GCM', 'kbs:///default/key/missing')),
    );
    await assert.rejects(daemon.client().keyProviderCall('UnWrapKey', request), (error: Failure) => {
      assert.equal(error.code, 5, error.details);
      assert.match(error.details ?? '', /kbs:\/\/\/default\/key\/missing/);
      return true;
    });
  });
});
