import assert from 'node:assert/strict';
import { after, before, beforeEach, test } from 'node:test';
import { CdhError } from '../../../../../src/errors';
import {
  EcsMetadataClient,
  type EcsMetadataClientOptions,
} from '../../../../../src/providers/aliyun/metadata/client';
import { MetadataEmulator } from '../../../../../src/emulators/aliyun/metadata';

process.env['CDH_LOOPBACK_ONLY'] = '1';

let emulator: MetadataEmulator;

before(async () => {
  emulator = await MetadataEmulator.start({ roles: { EcsRamRoleTest: 'Success', FailingRole: 'Failed' } });
});

after(() => emulator.close());

beforeEach(() => {
  emulator.mode = 'hardened';
  emulator.tokenEndpointStatus = undefined;
  emulator.answerDelayMs = 0;
  emulator.credentialLifetimeMs = 60 * 60 * 1000;
  emulator.clearFaults();
  emulator.resetCounters();
});

function client(options: Partial<EcsMetadataClientOptions> = {}): EcsMetadataClient {
  return new EcsMetadataClient({
    endpoint: emulator.endpoint,
    roleName: 'EcsRamRoleTest',
    timeoutMs: 2000,
    ...options,
  });
}

test('hardened mode: a session token is requested and sent with the credentials GET', async () => {
  const credentials = await client().credentials();
  const issued = emulator.issued.at(-1);
  assert.ok(issued);
  assert.equal(credentials.accessKeyId, issued.accessKeyId);
  assert.equal(credentials.accessKeySecret, issued.accessKeySecret);
  assert.equal(credentials.securityToken, issued.securityToken);
  assert.equal(credentials.expiresAt, issued.expiresAt);
  assert.equal(emulator.counters.tokenRequests, 1);
  assert.equal(emulator.counters.credentialRequests, 1);
  assert.equal(emulator.counters.rejected, 0, 'the GET carried a valid token');
  assert.equal(emulator.requestedTokenTtls.at(-1), '21600');
});

test('plain mode: the token endpoint answers 404, so the plain GET is used', async () => {
  emulator.mode = 'plain';
  const credentials = await client().credentials();
  assert.equal(credentials.accessKeyId, emulator.issued.at(-1)?.accessKeyId);
  assert.equal(emulator.counters.tokenRequests, 1);
  assert.equal(emulator.counters.credentialRequests, 1);
});

test('a token endpoint answering 405 also falls back to the plain GET', async () => {
  emulator.mode = 'plain';
  emulator.tokenEndpointStatus = 405;
  await client().credentials();
  assert.equal(emulator.counters.credentialRequests, 1);
});

test('a token endpoint refusing otherwise does not fall back', async () => {
  emulator.tokenEndpointStatus = 403;
  await assert.rejects(client().credentials(), { code: 'KMS_ACCESS_DENIED', message: /HTTP 403/ });
  emulator.tokenEndpointStatus = 500;
  await assert.rejects(client().credentials(), { code: 'KMS_UNAVAILABLE', message: /HTTP 500/ });
  assert.equal(emulator.counters.credentialRequests, 0);
});

test('credentials are reused until the margin before Expiration, then refreshed', async () => {
  let now = Date.now();
  const metadata = client({ refreshMarginMs: 5 * 60 * 1000, now: () => now });
  const first = await metadata.credentials();
  assert.equal(await metadata.credentials(), first);
  now = first.expiresAt - 5 * 60 * 1000 - 1000;
  assert.equal(await metadata.credentials(), first, 'still outside the margin');
  assert.equal(emulator.counters.credentialRequests, 1);
  now = first.expiresAt - 5 * 60 * 1000 + 1;
  const second = await metadata.credentials();
  assert.notEqual(second.accessKeyId, first.accessKeyId);
  assert.equal(emulator.counters.credentialRequests, 2);
  assert.equal(emulator.counters.tokenRequests, 1, 'the session token is reused too');
});

test('concurrent callers share one refresh', async () => {
  emulator.answerDelayMs = 100;
  const metadata = client();
  const all = await Promise.all(Array.from({ length: 8 }, () => metadata.credentials()));
  assert.equal(emulator.counters.credentialRequests, 1);
  assert.equal(emulator.counters.tokenRequests, 1);
  assert.ok(all.every((credentials) => credentials === all[0]));
});

test('a caller that gives up stops waiting; the shared refresh still completes for the others', async () => {
  emulator.answerDelayMs = 200;
  const metadata = client();
  const controller = new AbortController();
  const impatient = metadata.credentials(controller.signal);
  const patient = metadata.credentials();
  controller.abort();
  await assert.rejects(impatient, { code: 'CANCELLED' });
  const credentials = await patient;
  assert.equal(credentials.accessKeyId, emulator.issued.at(-1)?.accessKeyId);
  assert.equal(emulator.counters.credentialRequests, 1);
});

test('a refresh every caller has given up on is aborted; the next caller does not wait for it', async () => {
  const metadata = client({ timeoutMs: 5000 });
  emulator.hangNext(1);
  const first = new AbortController();
  const second = new AbortController();
  const impatient = [metadata.credentials(first.signal), metadata.credentials(second.signal)];
  await new Promise((resolve) => setTimeout(resolve, 50));
  first.abort();
  second.abort();
  for (const waiting of impatient) await assert.rejects(waiting, { code: 'CANCELLED' });
  const started = Date.now();
  const credentials = await metadata.credentials();
  assert.ok(Date.now() - started < 1000, 'a fresh request, not the hung one');
  assert.equal(credentials.accessKeyId, emulator.issued.at(-1)?.accessKeyId);
});

test('a revoked session token is replaced once', async () => {
  let now = Date.now();
  const metadata = client({ now: () => now });
  const first = await metadata.credentials();
  emulator.revokeTokens();
  now = first.expiresAt;
  await metadata.credentials();
  assert.equal(emulator.counters.tokenRequests, 2);
  assert.equal(emulator.counters.credentialRequests, 3, 'one refused with the old token, one accepted');
});

test('invalidate() forgets refused credentials', async () => {
  const metadata = client();
  const first = await metadata.credentials();
  metadata.invalidate(first);
  const second = await metadata.credentials();
  assert.notEqual(second, first);
  assert.equal(emulator.counters.credentialRequests, 2);
});

test('an unknown role or a Code other than Success is KMS_ACCESS_DENIED', async () => {
  await assert.rejects(client({ roleName: 'NoSuchRole' }).credentials(), (error: unknown) => {
    assert.ok(error instanceof CdhError);
    assert.equal(error.code, 'KMS_ACCESS_DENIED');
    assert.match(error.message, /no RAM role "NoSuchRole" \(HTTP 404\)/);
    return true;
  });
  await assert.rejects(client({ roleName: 'FailingRole' }).credentials(), {
    code: 'KMS_ACCESS_DENIED',
    message: /RAM role "FailingRole" \(Code "Failed"\)/,
  });
});

test('an unreachable or silent metadata service is KMS_UNAVAILABLE', async () => {
  const { createServer } = await import('node:net');
  const closed = createServer();
  await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
  const port = (closed.address() as { port: number }).port;
  await new Promise<void>((resolve) => closed.close(() => resolve()));
  await assert.rejects(client({ endpoint: `http://127.0.0.1:${port}` }).credentials(), {
    code: 'KMS_UNAVAILABLE',
    message: /unreachable \(PUT \/latest\/api\/token: ECONNREFUSED\)/,
  });
  emulator.answerDelayMs = 1000;
  await assert.rejects(client({ timeoutMs: 100 }).credentials(), {
    code: 'KMS_UNAVAILABLE',
    message: /no answer within 100 ms/,
  });
});

test('in loopback-only mode the production endpoint is refused before any request', () => {
  assert.throws(() => client({ endpoint: 'http://100.100.100.200' }), {
    code: 'PROVIDER_NOT_CONFIGURED',
    message: /refusing to contact 100\.100\.100\.200/,
  });
});

test('a malformed metadata_endpoint is PROVIDER_NOT_CONFIGURED', () => {
  for (const endpoint of ['ftp://127.0.0.1', 'http://127.0.0.1/some/path', 'http://']) {
    assert.throws(() => client({ endpoint }), { code: 'PROVIDER_NOT_CONFIGURED' }, endpoint);
  }
});
