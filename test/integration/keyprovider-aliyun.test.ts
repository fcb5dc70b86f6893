import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { CdhTtrpcClient } from '../../src/client/cdh-ttrpc-client';
import { spawnDaemon, type DaemonProcess } from '../../src/devtools/daemon';
import { startAliyunScenario, type AliyunScenario } from '../../src/emulators/aliyun/scenario';
import { buildKeyUnwrapRequest, parseKeyUnwrapResults } from '../../src/keyprovider/protocol';
import { createClientKeyProvider } from '../../src/providers/aliyun/client-key';
import type { ProviderInstance } from '../../src/providers/types';
import { clientKeyConfig, providerContext } from '../support/aliyun-credentials';

/** UnWrapKey of v2 packets with provider aliyun: the client_key Decrypter through the dkms gateway emulator. */

const OPTIONS =
  '{"symkey":"YWxpeXVuLWxheWVyLWtleS0zMi1ieXRlcy1sb25nISE=","cipheroptions":{"nonce":"AAECAwQFBgcICQoLDA0ODw=="}}';

let kms: AliyunScenario;
let daemon: DaemonProcess;
let sealing: ProviderInstance;
let packet: Record<string, unknown>;

before(async () => {
  kms = await startAliyunScenario();
  daemon = await spawnDaemon({ config: { log: { level: 'trace' }, ...kms.daemonConfig } });
  sealing = await createClientKeyProvider(
    kms.credentials.providerSettings,
    providerContext(clientKeyConfig(kms.emulator, kms.credentials.dir)),
  );
  assert.ok(sealing.encrypter);
  const { ciphertext, annotations } = await sealing.encrypter.encrypt(Buffer.from(OPTIONS), kms.keyId, {
    signal: new AbortController().signal,
  });
  packet = {
    version: '0.1.0',
    kid: kms.keyId,
    wrapped_data: ciphertext.toString('base64'),
    provider: 'aliyun',
    provider_settings: kms.credentials.providerSettings,
    annotations,
  };
});

after(async () => {
  await daemon?.stop();
  const logs = daemon?.logLines.join('\n') ?? '';
  daemon?.cleanup();
  await sealing?.close?.();
  await kms?.close();
  assert.ok(!logs.includes('YWxpeXVuLWxheWVyLWtleS'), 'the layer key reached the log');
});

test('a v2 aliyun packet unwraps through the KMS over gRPC and ttrpc', async () => {
  const request = buildKeyUnwrapRequest(Buffer.from(JSON.stringify(packet)));
  const grpcAnswer = await daemon.client().keyProviderCall('UnWrapKey', request);
  assert.equal(parseKeyUnwrapResults(grpcAnswer).toString(), OPTIONS);
  const ttrpc = new CdhTtrpcClient(daemon.target);
  try {
    assert.equal(
      parseKeyUnwrapResults(await ttrpc.keyProviderCall('UnWrapKey', request)).toString(),
      OPTIONS,
    );
  } finally {
    ttrpc.close();
  }
});

test('a v2 aliyun packet without its iv annotation is refused naming the annotation, daemon still serving', async () => {
  const request = buildKeyUnwrapRequest(Buffer.from(JSON.stringify({ ...packet, annotations: {} })));
  await assert.rejects(
    daemon.client().keyProviderCall('UnWrapKey', request),
    (error: { code: number; details: string }) => {
      assert.equal(error.code, 3, error.details);
      assert.match(error.details, /iv/);
      assert.ok(!error.details.includes('YWxpeXVuLWxheWVyLWtleS'));
      return true;
    },
  );
  assert.equal(await daemon.client().check(), 'SERVING');
});
