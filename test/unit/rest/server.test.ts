import assert from 'node:assert/strict';
import * as http from 'node:http';
import * as net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { silentLogger } from '../../../src/log';
import { RestRouter, type ResourceSource } from '../../../src/rest/router';
import { RestServer } from '../../../src/rest/server';

// The HTTP server in-process on loopback, with short limits; the daemon is a fake whose answers
// the test releases (the integration tests run the program against the real daemon).
describe('REST server limits', () => {
  const held: Array<() => void> = [];
  const cdh: ResourceSource = {
    getResource: (uri) =>
      uri.endsWith('/hold')
        ? new Promise((resolve) => held.push(() => resolve(Buffer.from('late'))))
        : Promise.resolve(Buffer.from('now')),
  };
  let server: RestServer;
  let port: number;

  before(async () => {
    server = new RestServer({
      router: new RestRouter({ version: '0', feature: 'all', cdh, callTimeoutMs: 10_000, aa: undefined }),
      logger: silentLogger(),
      limits: { maxConnections: 3, headersTimeoutMs: 300, keepAliveTimeoutMs: 300, requestTimeoutMs: 300 },
    });
    ({ port } = await server.listen('127.0.0.1', 0));
  });
  after(async () => {
    for (const release of held.splice(0)) release();
    await server.close(1_000);
  });

  /** Connects, writes `bytes`, resolves with everything read until the server closes, and how long that took. */
  function exchange(bytes: string): Promise<{ text: string; ms: number }> {
    return new Promise((resolve) => {
      const started = Date.now();
      const socket = net.connect(port, '127.0.0.1', () => socket.write(bytes));
      let text = '';
      socket.setEncoding('latin1').on('data', (chunk: string) => (text += chunk));
      socket.on('error', () => undefined);
      socket.on('close', () => resolve({ text, ms: Date.now() - started }));
    });
  }

  test('a connection that sends nothing is answered 408 and closed after the header timeout', async () => {
    const { text, ms } = await exchange('');
    assert.match(text, /^HTTP\/1\.1 408 /);
    assert.ok(ms >= 250 && ms < 3_000, `closed after ${ms} ms`);
  });

  test('headers that never complete are answered 408 and closed', async () => {
    const { text } = await exchange('GET /info HTTP/1.1\r\nHost: x\r\n');
    assert.match(text, /^HTTP\/1\.1 408 /);
  });

  test('a kept-alive connection closes once idle past the keep-alive timeout', async () => {
    const { text, ms } = await exchange('GET /info HTTP/1.1\r\nHost: x\r\n\r\n');
    assert.match(text, /^HTTP\/1\.1 200 /);
    assert.ok(!text.includes('408'), 'no unsolicited answer after a served request');
    assert.ok(ms < 3_000);
  });

  test('an AAEL body that stops arriving is answered 408', async () => {
    const agentServer = new RestServer({
      router: new RestRouter({
        version: '0',
        feature: 'attestation',
        callTimeoutMs: 1_000,
        aa: {
          getToken: async () => Buffer.alloc(0),
          getEvidence: async () => Buffer.alloc(0),
          getAdditionalEvidence: async () => Buffer.alloc(0),
          getTeeType: async () => '',
          getAdditionalTees: async () => [],
          extendRuntimeMeasurement: async () => 'OK',
        },
      }),
      logger: silentLogger(),
      limits: { requestTimeoutMs: 300 },
    });
    const address = await agentServer.listen('127.0.0.1', 0);
    try {
      const answer = await new Promise<{ text: string }>((resolve) => {
        const socket = net.connect(address.port, '127.0.0.1', () =>
          socket.write('POST /aa/aael HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"domain":'),
        );
        let text = '';
        socket.setEncoding('latin1').on('data', (chunk: string) => (text += chunk));
        socket.on('close', () => resolve({ text }));
      });
      assert.match(answer.text, /^HTTP\/1\.1 408 /);
    } finally {
      await agentServer.close(500);
    }
  });

  test('when every connection slot holds a request in progress, a new connection gets 503', async () => {
    const agent = new http.Agent({ keepAlive: false });
    const pending = [1, 2, 3].map(
      () =>
        new Promise<number>((resolve, reject) =>
          http
            .get({ port, host: '127.0.0.1', path: '/cdh/resource/a/b/hold', agent }, (res) => {
              res.resume();
              resolve(res.statusCode ?? 0);
            })
            .on('error', reject),
        ),
    );
    while (held.length < 3) await new Promise((r) => setTimeout(r, 10));
    const { text } = await exchange('GET /info HTTP/1.1\r\nHost: x\r\n\r\n');
    assert.match(text, /^HTTP\/1\.1 503 /);
    assert.match(text, /too many connections/);
    for (const release of held.splice(0)) release();
    assert.deepEqual(await Promise.all(pending), [200, 200, 200]);
    agent.destroy();
  });
});
