import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CdhError } from '../../../src/errors';
import { MAX_PAYLOAD_DEPTH, parsePayload, validatePayload } from '../../../src/secret/payload';
import { upstreamVector } from '../../support/sealed-fixtures';
import { cdhError } from '../../support/secret-helpers';

function bytes(text: string): Buffer {
  return Buffer.from(text, 'utf8');
}

const validEnvelope = {
  version: '0.1.0',
  type: 'envelope',
  key_id: 'key-1',
  encrypted_key: 'AAAA',
  encrypted_data: 'AAAA',
  wrap_type: 'A256GCM',
  iv: 'AAAA',
  provider: 'aliyun',
  provider_settings: {},
  annotations: {},
};

test('the upstream envelope sample parses into an envelope secret', () => {
  assert.deepEqual(parsePayload(bytes(upstreamVector('envelope-1.json'))), {
    version: '0.1.0',
    type: 'envelope',
    key_id: 'xxx',
    encrypted_key: 'yyy',
    encrypted_data: 'zzz',
    wrap_type: 'A256GCM',
    iv: 'www',
    provider: 'aliyun',
    provider_settings: {},
    annotations: {},
  });
});

test('the upstream vault samples parse into vault secrets', () => {
  assert.deepEqual(parsePayload(bytes(upstreamVector('vault-1.json'))), {
    version: '0.1.0',
    type: 'vault',
    name: 'xxx',
    provider: 'aliyun',
    provider_settings: {},
    annotations: {},
  });
  assert.deepEqual(parsePayload(bytes(upstreamVector('vault-2.json'))), {
    version: '0.1.0',
    type: 'vault',
    name: 'kbs:///one/2/trois',
    provider: 'kbs',
    provider_settings: {},
    annotations: {},
  });
});

test('annotations default to {} and unknown extra fields are ignored', () => {
  const { annotations: _dropped, ...withoutAnnotations } = validEnvelope;
  const parsed = validatePayload({ ...withoutAnnotations, comment: 'made by hand', extra: { a: 1 } });
  assert.deepEqual(parsed.annotations, {});
  assert.equal('comment' in parsed, false);
  assert.equal('extra' in parsed, false);
});

test('provider_settings and annotations are kept as given', () => {
  const parsed = validatePayload({
    ...validEnvelope,
    provider: 'AliYun',
    provider_settings: { client_type: 'client_key', nested: { n: [1, 2] } },
    annotations: { iv: 'AAAA', version_stage: 'ACSCurrent' },
  });
  assert.equal(parsed.provider, 'AliYun');
  assert.deepEqual(parsed.provider_settings, { client_type: 'client_key', nested: { n: [1, 2] } });
  assert.deepEqual(parsed.annotations, { iv: 'AAAA', version_stage: 'ACSCurrent' });
});

test('bad JSON and invalid UTF-8 are SEALED_SECRET_MALFORMED', () => {
  assert.throws(
    () => parsePayload(bytes('{"version": "0.1.0",')),
    cdhError('SEALED_SECRET_MALFORMED', 'JSON'),
  );
  assert.throws(() => parsePayload(bytes('')), cdhError('SEALED_SECRET_MALFORMED'));
  assert.throws(
    () => parsePayload(Buffer.from([0x7b, 0xff, 0x7d])),
    cdhError('SEALED_SECRET_MALFORMED', 'UTF-8'),
  );
});

test('a member name twice in one object is PAYLOAD_INVALID, at any depth (JSON.parse would keep the last)', () => {
  const valid = JSON.stringify(validEnvelope);
  for (const [text, name] of [
    [`{"type":"vault",${valid.slice(1)}`, 'type'],
    [`{"version":"0.1.0",${valid.slice(1)}`, 'version'],
    [valid.replace('"provider_settings":{}', '"provider_settings":{"a":1,"a":2}'), 'a'],
    [valid.replace('"annotations":{}', '"annotations":{"iv":"x","\\u0069v":"y"}'), 'iv'],
  ] as const) {
    assert.throws(
      () => parsePayload(bytes(text)),
      cdhError('PAYLOAD_INVALID', `member name ${name} appears twice`),
    );
  }
  // The same name in different objects is fine.
  const nested = valid.replace('"provider_settings":{}', '"provider_settings":{"type":"x","o":{"type":"y"}}');
  assert.equal(parsePayload(bytes(nested)).type, 'envelope');
});

test('a byte order mark before the payload JSON is SEALED_SECRET_MALFORMED', () => {
  const withBom = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), bytes(JSON.stringify(validEnvelope))]);
  assert.throws(() => parsePayload(withBom), cdhError('SEALED_SECRET_MALFORMED', 'JSON'));
});

test('a payload that is not an object is PAYLOAD_INVALID', () => {
  for (const json of ['[]', '"text"', '42', 'null', 'true']) {
    assert.throws(() => parsePayload(bytes(json)), cdhError('PAYLOAD_INVALID', 'the payload'), json);
  }
});

test('version, type and wrap_type must have supported values', () => {
  assert.throws(
    () => validatePayload({ ...validEnvelope, version: '0.2.0' }),
    cdhError('PAYLOAD_INVALID', 'version', '"0.1.0"'),
  );
  assert.throws(
    () => validatePayload({ ...validEnvelope, version: 1 }),
    cdhError('PAYLOAD_INVALID', 'version'),
  );
  assert.throws(
    () => validatePayload({ ...validEnvelope, type: 'kms' }),
    cdhError('PAYLOAD_INVALID', 'type', '"envelope"', '"vault"'),
  );
  assert.throws(
    () => validatePayload({ ...validEnvelope, wrap_type: 'A128GCM' }),
    cdhError('PAYLOAD_INVALID', 'wrap_type', '"A256GCM"', '"A256CTR"'),
  );
});

test('every required envelope field is checked for presence and type, by name', () => {
  for (const field of [
    'key_id',
    'encrypted_key',
    'encrypted_data',
    'wrap_type',
    'iv',
    'provider',
    'provider_settings',
    'version',
    'type',
  ]) {
    const missing: Record<string, unknown> = { ...validEnvelope };
    delete missing[field];
    assert.throws(() => validatePayload(missing), cdhError('PAYLOAD_INVALID', field, 'missing'), field);
    assert.throws(
      () => validatePayload({ ...validEnvelope, [field]: 7 }),
      cdhError('PAYLOAD_INVALID', field),
      field,
    );
  }
});

test('a vault secret needs a string name', () => {
  const vault = { version: '0.1.0', type: 'vault', provider: 'kbs', provider_settings: {} };
  assert.throws(() => validatePayload(vault), cdhError('PAYLOAD_INVALID', 'name', 'missing'));
  assert.throws(
    () => validatePayload({ ...vault, name: ['x'] }),
    cdhError('PAYLOAD_INVALID', 'name', 'a string', 'an array'),
  );
});

test('provider_settings must be an object and annotations string to string', () => {
  assert.throws(
    () => validatePayload({ ...validEnvelope, provider_settings: [] }),
    cdhError('PAYLOAD_INVALID', 'provider_settings', 'an object'),
  );
  assert.throws(
    () => validatePayload({ ...validEnvelope, provider_settings: null }),
    cdhError('PAYLOAD_INVALID', 'provider_settings'),
  );
  assert.throws(
    () => validatePayload({ ...validEnvelope, annotations: { version_id: 3 } }),
    cdhError('PAYLOAD_INVALID', 'annotations.version_id', 'a string', 'a number'),
  );
});

test('messages never echo field values', () => {
  const secretish = 'S3CR3T-VALUE-0123456789';
  const attempts: unknown[] = [
    { ...validEnvelope, version: secretish },
    { ...validEnvelope, type: secretish },
    { ...validEnvelope, wrap_type: secretish },
    { ...validEnvelope, encrypted_key: [secretish] },
    { ...validEnvelope, annotations: { iv: [secretish] } },
  ];
  for (const attempt of attempts) {
    assert.throws(
      () => validatePayload(attempt),
      (error: unknown) => error instanceof CdhError && !error.message.includes(secretish),
    );
  }
});

test('__proto__, constructor and prototype keys are refused anywhere and pollute nothing', () => {
  const json = (inner: string): Buffer =>
    bytes(`{"version":"0.1.0","type":"vault","name":"n","provider":"p","provider_settings":${inner}}`);
  for (const inner of [
    '{"__proto__":{"polluted":1}}',
    '{"a":{"constructor":{"prototype":{}}}}',
    '{"prototype":1}',
  ]) {
    assert.throws(() => parsePayload(json(inner)), cdhError('PAYLOAD_INVALID', 'not allowed'), inner);
  }
  assert.throws(
    () => parsePayload(bytes(`{"__proto__":{"version":"0.1.0"},"type":"vault"}`)),
    cdhError('PAYLOAD_INVALID', '__proto__'),
  );
  assert.equal(({} as Record<string, unknown>)['polluted'], undefined);
});

test('deeply nested or huge JSON is refused or handled without crashing', () => {
  const deep = `{"version":"0.1.0","type":"vault","name":"n","provider":"p","provider_settings":{"a":${'['.repeat(100_000)}${']'.repeat(100_000)}}}`;
  assert.throws(() => parsePayload(bytes(deep)), cdhError('SEALED_SECRET_MALFORMED', `${MAX_PAYLOAD_DEPTH}`));
  const nestedOk = `{"version":"0.1.0","type":"vault","name":"n","provider":"p","provider_settings":{"a":${'['.repeat(20)}${']'.repeat(20)}}}`;
  assert.equal(parsePayload(bytes(nestedOk)).type, 'vault');
  const wide = {
    ...validEnvelope,
    provider_settings: Object.fromEntries(Array.from({ length: 50_000 }, (_, i) => [`k${i}`, i])),
  };
  assert.equal(Object.keys(validatePayload(wide).provider_settings).length, 50_000);
  const manyBadAnnotations = {
    ...validEnvelope,
    annotations: Object.fromEntries(Array.from({ length: 1000 }, (_, i) => [`k${i}`, i])),
  };
  assert.throws(() => validatePayload(manyBadAnnotations), cdhError('PAYLOAD_INVALID', 'and 995 more'));
});

test('provider, key_id and name have generous length bounds, since errors may echo them', () => {
  assert.throws(
    () => validatePayload({ ...validEnvelope, provider: 'p'.repeat(129) }),
    cdhError('PAYLOAD_INVALID', 'provider is longer than 128 characters'),
  );
  assert.throws(
    () => validatePayload({ ...validEnvelope, key_id: 'k'.repeat(1025) }),
    cdhError('PAYLOAD_INVALID', 'key_id is longer than 1024 characters'),
  );
  const vault = { version: '0.1.0', type: 'vault', provider: 'kbs', provider_settings: {} };
  assert.throws(
    () => validatePayload({ ...vault, name: 'n'.repeat(4097) }),
    cdhError('PAYLOAD_INVALID', 'name is longer than 4096 characters'),
  );
  assert.equal(validatePayload({ ...vault, name: 'n'.repeat(4096) }).type, 'vault');
});
