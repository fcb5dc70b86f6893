import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { silentLogger } from '../../../../../src/log';
import { aliyunProvider } from '../../../../../src/providers/aliyun';
import { OpenApiFixture } from '../../../../../src/emulators/aliyun/openapi-scenario';

process.env['CDH_LOOPBACK_ONLY'] = '1';

let fixture: OpenApiFixture;

before(async () => {
  fixture = await OpenApiFixture.start();
  fixture.openapi.putSecret('lazy', [{ versionId: 'v1', data: 'loaded when needed' }]);
});

after(() => fixture.close());

function sdkLoaded(): boolean {
  return Object.keys(require.cache).some((path) => path.includes('@alicloud'));
}

test('the KMS SDK is loaded on the first OpenAPI call, not at import or provider construction', async () => {
  assert.equal(sdkLoaded(), false, 'importing the provider must not load the SDK');
  const provider = await aliyunProvider.create(fixture.stsSettings(), {
    config: fixture.config(),
    logger: silentLogger(),
  });
  try {
    assert.equal(sdkLoaded(), false, 'building the provider must not load the SDK');
    const value = await provider.getter!.getSecret('lazy', {}, { signal: new AbortController().signal });
    assert.equal(value.toString('utf8'), 'loaded when needed');
    assert.equal(sdkLoaded(), true);
  } finally {
    await provider.close?.();
  }
});
