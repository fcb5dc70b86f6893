import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { RuntimeMeasurementResult } from '../../../src/client/aa-client';
import { TtrpcCallError } from '../../../src/client/ttrpc-client';
import { httpStatusForPeerCode, oneLine, peerFailure, MAX_REASON_CHARS } from '../../../src/rest/answers';
import { parseBind, parseFeature, RestOptionError } from '../../../src/rest/options';
import {
  decodeRuntimeData,
  originForm,
  RestRouter,
  splitAtSlash,
  splitTarget,
  type AttestationSource,
  type ResourceSource,
  type RouterOptions,
} from '../../../src/rest/router';

// Unit tests: the agent and the daemon are fakes here; the integration tests use real ones.
function fakeAgent(overrides: Partial<AttestationSource> = {}): AttestationSource {
  return {
    getToken: async () => Buffer.from('token'),
    getEvidence: async (data) => Buffer.from(data),
    getAdditionalEvidence: async (data) => Buffer.from(data),
    getTeeType: async () => 'tdx',
    getAdditionalTees: async () => [],
    extendRuntimeMeasurement: async () => 'OK',
    ...overrides,
  };
}

function router(options: Partial<RouterOptions> = {}): RestRouter {
  return new RestRouter({ version: '1.2.3', feature: 'all', callTimeoutMs: 1000, ...options });
}

function get(r: RestRouter, target: string, method = 'GET', body = '') {
  return r.route({
    method,
    target,
    readBody: async () => Buffer.from(body),
    signal: new AbortController().signal,
  });
}

describe('REST router', () => {
  test('splitAtSlash splits before the n-th slash as upstream does', () => {
    assert.deepEqual(splitAtSlash('/cdh/resource/default/', 2), ['/cdh', '/resource/default/']);
    assert.deepEqual(splitAtSlash('/cdh/resource/default/', 1), ['', '/cdh/resource/default/']);
    assert.deepEqual(splitAtSlash('/cdh/resource/default/', 4), ['/cdh/resource/default', '/']);
    assert.equal(splitAtSlash('/cdh/resource/default/', 5), undefined);
    assert.equal(splitAtSlash('/info', 2), undefined);
  });

  test('splitTarget decodes the query as a form; the last of a repeated parameter wins', () => {
    const { path, query } = splitTarget('/aa/evidence?runtime_data=a+b%20c&x=1&x=2');
    assert.equal(path, '/aa/evidence');
    assert.equal(query.get('runtime_data'), 'a b c');
    assert.equal(query.get('x'), '2');
  });

  test('an absolute-form target is routed by its path; other forms are 400', async () => {
    assert.equal(originForm('http://127.0.0.1:8006/info?x=1'), '/info?x=1');
    assert.equal(originForm('http://127.0.0.1:8006'), '/');
    assert.equal(originForm('*'), undefined);
    assert.equal((await get(router(), 'http://127.0.0.1:8006/unknown')).status, 404);
    assert.equal((await get(router(), '*', 'OPTIONS')).status, 400);
  });

  test('runtime_data: text as UTF-8, base64 as unpadded base64url, other encodings refused', () => {
    assert.deepEqual(decodeRuntimeData('hello', undefined), { bytes: Buffer.from('hello') });
    assert.deepEqual(decodeRuntimeData('cmVwb3J0', 'base64'), { bytes: Buffer.from('report') });
    assert.deepEqual(decodeRuntimeData('-_8', 'base64'), { bytes: Buffer.from([0xfb, 0xff]) });
    for (const [value, encoding] of [
      ['data', 'hex'],
      ['!!!', 'base64'],
      ['cmVwb3J0PQ==', 'base64'],
      ['+/8', 'base64'],
      ['cmVwb3J0P', 'base64'], // a length no byte string encodes to
      ['YR', 'base64'], // non-zero trailing bits ("a" is YQ)
    ] as const) {
      assert.ok('problem' in decodeRuntimeData(value, encoding), `${value} ${encoding}`);
    }
  });

  test('feature gating comes before the method check, as upstream', async () => {
    const resourceOnly = router({ feature: 'resource', cdh: { getResource: async () => Buffer.alloc(0) } });
    const answer = await get(resourceOnly, '/aa/aael', 'PUT');
    assert.equal(answer.status, 404);
    assert.equal(answer.body, 'Attestation Feature Not Enabled');
    const attestationOnly = router({ feature: 'attestation', aa: fakeAgent() });
    assert.equal(
      (await get(attestationOnly, '/cdh/resource/a/b/c', 'POST')).body,
      'Resource Feature Not Enabled',
    );
  });

  test('/cdh/resource/<path> asks the daemon for kbs://<path> as sent', async () => {
    const asked: string[] = [];
    const cdh: ResourceSource = {
      getResource: async (uri) => {
        asked.push(uri);
        return Buffer.from('x');
      },
    };
    const r = router({ feature: 'resource', cdh });
    await get(r, '/cdh/resource/default/key/1?ignored=1');
    await get(r, '/cdh/resource/default/key/a%2Fb');
    assert.deepEqual(asked, ['kbs:///default/key/1', 'kbs:///default/key/a%2Fb']);
  });

  test('/info: tee from the agent; additional_tees only when there are some; an agent without the method has none', async () => {
    const plain = await get(router({ aa: fakeAgent() }), '/info');
    assert.deepEqual(JSON.parse(String(plain.body)), { version: '1.2.3', tee: 'tdx', feature: 'all' });
    const more = await get(router({ aa: fakeAgent({ getAdditionalTees: async () => ['nvidia'] }) }), '/info');
    assert.deepEqual(JSON.parse(String(more.body)).additional_tees, ['nvidia']);
    const old = fakeAgent({
      getAdditionalTees: async () => {
        throw new TtrpcCallError('status', 'unimplemented', 12, 'GetAdditionalTees is not implemented');
      },
    });
    assert.equal((await get(router({ aa: old }), '/info')).status, 200);
    const broken = fakeAgent({
      getTeeType: async () => {
        throw new TtrpcCallError('status', 'internal', 13, 'attester failed');
      },
    });
    const failed = await get(router({ aa: broken }), '/info');
    assert.equal(failed.status, 500);
    assert.equal(failed.body, 'attester failed');
  });

  test('POST /aa/aael answers upstream JSON for each measurement result', async () => {
    const expected: Record<RuntimeMeasurementResult, object> = {
      OK: { success: 'true' },
      NOT_SUPPORTED: { success: 'false', message: 'The platform does not support runtime measurement' },
      NOT_ENABLED: { success: 'false', message: 'Attestation Agent does not enable eventlog recording' },
    };
    for (const [result, body] of Object.entries(expected)) {
      const aa = fakeAgent({ extendRuntimeMeasurement: async () => result as RuntimeMeasurementResult });
      const answer = await get(
        router({ aa }),
        '/aa/aael',
        'POST',
        '{"domain":"d","operation":"o","content":"c","x":1}',
      );
      assert.equal(answer.status, 200);
      assert.deepEqual(JSON.parse(String(answer.body)), body);
    }
  });

  test('peer failures: NOT_FOUND 404, INVALID_ARGUMENT 400, unavailable or late 503, others 500', () => {
    assert.equal(httpStatusForPeerCode(5), 404);
    assert.equal(httpStatusForPeerCode(3), 400);
    assert.equal(httpStatusForPeerCode(14), 503);
    assert.equal(httpStatusForPeerCode(4), 503);
    assert.equal(httpStatusForPeerCode(7), 500);
    assert.equal(httpStatusForPeerCode(13), 500);
    const late = peerFailure('CDH', new TtrpcCallError('deadline', 'no answer within 5 ms', 4));
    assert.equal(late.status, 503);
    assert.equal(late.body, 'CDH unavailable: no answer within 5 ms');
    const missing = peerFailure('CDH', new TtrpcCallError('status', 'x', 5, 'RESOURCE_NOT_FOUND: a\nb'));
    assert.equal(missing.status, 404);
    assert.equal(missing.body, 'RESOURCE_NOT_FOUND: a b');
    assert.equal(peerFailure('AA', new Error('boom')).status, 500);
    assert.equal(oneLine('x'.repeat(5000)).length, MAX_REASON_CHARS);
  });

  test('--bind takes IPv4:port or [IPv6]:port; --features resource, attestation or all', () => {
    assert.deepEqual(parseBind('127.0.0.1:8006'), { host: '127.0.0.1', port: 8006 });
    assert.deepEqual(parseBind('[::1]:0'), { host: '::1', port: 0 });
    for (const bad of ['localhost:8006', '127.0.0.1', '::1:80', '127.0.0.1:70000', '[127.0.0.1]:80'])
      assert.throws(() => parseBind(bad), RestOptionError, bad);
    assert.equal(parseFeature('all'), 'all');
    assert.throws(() => parseFeature('ALL'), RestOptionError);
  });
});
