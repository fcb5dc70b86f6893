import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { CdhError } from '../../../src/errors';
import { listenOnLoopback } from '../../../src/emulators/listen';
import { createTestCa, type TestCa } from '../../../src/emulators/pki';
import { LOOPBACK_ONLY_ENV } from '../../../src/net-guard';
import {
  HttpClient,
  HttpRequestError,
  retryAfterMs,
  type HttpClientOptions,
} from '../../../src/net/http-client';

let ca: TestCa;
let server: Server;
let port: number;

before(async () => {
  ca = createTestCa('http-client test CA');
  const cert = ca.issueServerCert(['kms.example.test']);
  server = createServer({ key: cert.keyPem, cert: cert.chainPem }, (req, res) => {
    if (req.url === '/hang') return;
    if (req.url === '/big') return void res.end(Buffer.alloc(2048, 1));
    res.setHeader('retry-after', '3');
    res.end(`${req.method} ${req.url} ${req.headers['x-test'] ?? ''}`);
  });
  await listenOnLoopback(server);
  port = (server.address() as AddressInfo).port;
});
after(() => {
  server.closeAllConnections();
  server.close();
});

function client(overrides: Partial<HttpClientOptions> = {}): HttpClient {
  return new HttpClient({
    protocol: 'https:',
    host: '127.0.0.1',
    port,
    purpose: 'test remote',
    caPem: ca.certPem,
    serverName: 'kms.example.test',
    maxResponseBytes: 1024,
    ...overrides,
  });
}

const get = (path: string, signal = new AbortController().signal, timeoutMs = 2000) => ({
  method: 'GET',
  path,
  headers: { 'x-test': 'yes' },
  signal,
  timeoutMs,
});

async function failure(promise: Promise<unknown>): Promise<HttpRequestError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof HttpRequestError, String(error));
    return error;
  }
  assert.fail('the request succeeded');
}

test('http client: pinned CA and server name, whatever address is dialled; answer and headers', async () => {
  const http = client();
  try {
    const answer = await http.request(get('/hello'));
    assert.equal(answer.status, 200);
    assert.equal(answer.body.toString(), 'GET /hello yes');
    assert.equal(retryAfterMs(answer.headers['retry-after']), 3000);
    assert.equal(http.dialAddress, `127.0.0.1:${port}`);
  } finally {
    http.close();
  }
});

test('http client: another CA or another server name is a TLS failure, classified as such', async () => {
  const otherCa = client({ caPem: createTestCa('other').certPem });
  const otherName = client({ serverName: 'other.example.test' });
  try {
    const untrusted = await failure(otherCa.request(get('/')));
    assert.equal(untrusted.kind, 'network');
    assert.equal(untrusted.networkKind, 'tls');
    const misnamed = await failure(otherName.request(get('/')));
    assert.equal(misnamed.networkKind, 'tls');
    assert.equal(misnamed.code, 'ERR_TLS_CERT_ALTNAME_INVALID');
  } finally {
    otherCa.close();
    otherName.close();
  }
});

test('http client: the response byte limit, the timeout and the caller abort each end the request', async () => {
  const http = client();
  try {
    assert.equal((await failure(http.request(get('/big')))).kind, 'too-large');
    assert.equal((await failure(http.request(get('/hang', undefined, 50)))).kind, 'timeout');
    const controller = new AbortController();
    const pending = http.request(get('/hang', controller.signal));
    setTimeout(() => controller.abort(), 20);
    assert.equal((await failure(pending)).kind, 'aborted');
  } finally {
    http.close();
  }
});

test('http client: a refused connection is a retryable network failure', async () => {
  const closed = client({ port: 1 });
  assert.equal((await failure(closed.request(get('/')))).networkKind, 'retryable');
});

test('http client: in loopback-only mode a non-loopback host is refused before dialling', async () => {
  const saved = process.env[LOOPBACK_ONLY_ENV];
  process.env[LOOPBACK_ONLY_ENV] = '1';
  try {
    const remote = client({ host: '192.0.2.1' });
    assert.throws(
      () => remote.request(get('/')),
      (error: unknown) =>
        error instanceof CdhError && /test remote: refusing to contact 192\.0\.2\.1/.test(error.message),
    );
  } finally {
    if (saved === undefined) delete process.env[LOOPBACK_ONLY_ENV];
    else process.env[LOOPBACK_ONLY_ENV] = saved;
  }
});
