import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConfigError, parseListenAddress, resolveConfig } from '../../../src/config/load';
import { defaultConfig } from '../../../src/config/types';

test('no file: the documented defaults', () => {
  const { config } = resolveConfig({}, {});
  assert.deepEqual(config, defaultConfig());
  assert.equal(config.socket, 'unix:///run/confidential-containers/cdh.sock');
  assert.equal(config.aliyun.metadataEndpoint, 'http://100.100.100.200');
});

test('upstream keys and our own keys are read', () => {
  const { config } = resolveConfig(
    {
      socket: 'unix:/tmp/x.sock',
      kbc: { name: 'offline_fs_kbc', url: '', offline_fs: { resource_files: ['/etc/r.json'] } },
      credentials: [{ resource_uri: 'kbs:///default/aliyun/clientKey_x.json', path: '/run/cc/x.json' }],
      socket_mode: '0660',
      cache: { ttl_seconds: 0 },
      aliyun: { dkms_connect_to: '127.0.0.1:8443', request_timeout_ms: 500 },
    },
    {},
  );
  assert.equal(config.socketMode, 0o660);
  assert.equal(config.cache.ttlSeconds, 0);
  assert.equal(config.cache.maxEntries, 1024);
  assert.equal(config.aliyun.dkmsConnectTo, '127.0.0.1:8443');
  assert.equal(config.aliyun.requestTimeoutMs, 500);
  assert.deepEqual(config.credentials, [
    { resourceUri: 'kbs:///default/aliyun/clientKey_x.json', path: '/run/cc/x.json' },
  ]);
  assert.deepEqual(config.kbc.offlineFs.resourceFiles, ['/etc/r.json']);
});

test('environment overrides the file and flags override both', () => {
  const { config } = resolveConfig(
    { aliyun: { credential_dir: '/from/file' }, log: { level: 'warn' } },
    {
      ALIYUN_IN_GUEST_KEY_PATH: '/from/env',
      ALIYUN_METADATA_ENDPOINT: 'http://127.0.0.1:9999',
      SKIP_SEALED_SECRET_VERIFICATION: 'true',
    },
    { logLevel: 'debug', socket: '127.0.0.1:50000' },
  );
  assert.equal(config.aliyun.credentialDir, '/from/env');
  assert.equal(config.aliyun.metadataEndpoint, 'http://127.0.0.1:9999');
  assert.equal(config.skipSealedSecretVerification, true);
  assert.equal(config.log.level, 'debug');
  assert.equal(config.socket, '127.0.0.1:50000');
});

test('SKIP_SEALED_SECRET_VERIFICATION other than "true" leaves verification on', () => {
  assert.equal(
    resolveConfig({}, { SKIP_SEALED_SECRET_VERIFICATION: '1' }).config.skipSealedSecretVerification,
    false,
  );
});

test('the upstream [image] section is read: work_dir, concurrency, URIs, inline registry config, proxies', () => {
  const { config, warnings } = resolveConfig(
    {
      image: {
        work_dir: '/var/lib/cdh-image',
        max_concurrent_layer_downloads_per_image: 5,
        image_security_policy_uri: 'kbs:///default/security-policy/test',
        registry_config: { 'unqualified-search-registries': ['quay.io'] },
        image_pull_proxy: { https_proxy: 'http://127.0.0.1:3128', no_proxy: 'localhost' },
      },
    },
    {},
  );
  assert.deepEqual(warnings, []);
  assert.equal(config.image.workDir, '/var/lib/cdh-image');
  assert.equal(config.image.maxConcurrentLayerDownloadsPerImage, 5);
  assert.equal(config.image.imageSecurityPolicyUri, 'kbs:///default/security-policy/test');
  assert.deepEqual(config.image.registryConfig, { 'unqualified-search-registries': ['quay.io'] });
  assert.deepEqual(config.image.imagePullProxy, {
    httpsProxy: 'http://127.0.0.1:3128',
    httpProxy: '',
    noProxy: 'localhost',
  });
  assert.equal(resolveConfig({}, {}).config.image.workDir, '/run/kata-containers/image');
});

test('[image] defaults come from the schema; the inline registry config keeps its keys as written', () => {
  assert.deepEqual(defaultConfig().image, {
    workDir: '/run/kata-containers/image',
    maxConcurrentLayerDownloadsPerImage: 3,
    imageSecurityPolicyUri: '',
    imageSecurityPolicy: '',
    sigstoreConfigUri: '',
    sigstoreConfig: '',
    authenticatedRegistryCredentialsUri: '',
    registryConfigurationUri: '',
    extraRootCertificates: [],
    imagePullProxy: { httpsProxy: '', httpProxy: '', noProxy: '' },
  });
  const registryConfig = {
    registry: [{ location: 'r.example', pull_from_mirror: 'all' }],
    short_name_mode: 'x',
  };
  const { config } = resolveConfig({ image: { registry_config: registryConfig } }, {});
  assert.deepEqual(config.image.registryConfig, registryConfig);
});

const refused: Array<[string, unknown, Record<string, string>, string]> = [
  ['unknown top-level key', { sokcet: 'x' }, {}, 'sokcet'],
  ['unknown nested key', { cache: { ttl: 1 } }, {}, 'cache.ttl'],
  [
    'zero layer downloads',
    { image: { max_concurrent_layer_downloads_per_image: 0 } },
    {},
    'image.max_concurrent_layer_downloads_per_image',
  ],
  ['relative image work_dir', { image: { work_dir: 'img' } }, {}, 'image.work_dir'],
  ['wrong type', { skip_sealed_secret_verification: 'yes' }, {}, 'skip_sealed_secret_verification'],
  ['relative path', { credentials_root: 'run/cdh' }, {}, 'credentials_root'],
  ['bad socket', { socket: '/no/scheme.sock' }, {}, 'socket'],
  ['bad connect_to', { aliyun: { dkms_connect_to: 'nohost' } }, {}, 'aliyun.dkms_connect_to'],
  ['bad credentials entry', { credentials: [{ resource_uri: 'kbs:///a/b/c' }] }, {}, 'credentials.0.path'],
  ['bad env value', {}, { ALIYUN_DKMS_CONNECT_TO: 'not an address' }, 'ALIYUN_DKMS_CONNECT_TO'],
];
for (const [what, raw, env, key] of refused) {
  test(`refused: ${what}, naming ${key}`, () => {
    assert.throws(
      () => resolveConfig(raw, env),
      (error: unknown) =>
        error instanceof ConfigError && error.key === key && error.message.includes(`"${key}"`),
    );
  });
}

test('listen addresses: unix:///abs, unix:/abs, host:port', () => {
  assert.deepEqual(parseListenAddress('unix:///run/a.sock'), { kind: 'unix', path: '/run/a.sock' });
  assert.deepEqual(parseListenAddress('unix:/run/a.sock'), { kind: 'unix', path: '/run/a.sock' });
  assert.deepEqual(parseListenAddress('127.0.0.1:50000'), { kind: 'tcp', host: '127.0.0.1', port: 50000 });
  assert.equal(parseListenAddress('unix://relative'), undefined);
  assert.equal(parseListenAddress('127.0.0.1:0'), undefined);
});

test('defaults are fresh for each configuration: credentials added from the kernel command line stay in theirs', () => {
  const first = resolveConfig({}, {}, {}, { kernelCmdline: 'cdh.kbs_resources=kbs:///a/b/c::/run/x' });
  assert.equal(first.config.credentials.length, 1);
  assert.deepEqual(resolveConfig({}, {}).config.credentials, []);
  assert.deepEqual(defaultConfig().credentials, []);
});
