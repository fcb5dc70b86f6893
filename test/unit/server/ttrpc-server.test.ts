import assert from 'node:assert/strict';
import { once } from 'node:events';
import * as net from 'node:net';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import {
  encodeFrame,
  FrameDecoder,
  MAX_FRAME_DATA_BYTES,
  MessageType,
} from '../../../src/server/ttrpc/frame';
import {
  decodeResponseEnvelope,
  encodeRequestEnvelope,
  type TtrpcResponse,
} from '../../../src/server/ttrpc/messages';
import {
  connectTtrpc,
  decodeApi,
  encodeApi,
  TtrpcConnectionClosedError,
  ttrpcGetResource,
  ttrpcUnsealSecret,
  type TtrpcClient,
} from '../../support/ttrpc-client';
import { startTtrpcFixture, type TtrpcFixture } from '../../support/ttrpc-fixture';

const UNSEAL = ['api.SealedSecretService', 'UnsealSecret'] as const;

function secret(text: string): Buffer {
  return Buffer.from(text);
}

function requestFrame(streamId: number, service: string, method: string, payload: Uint8Array): Buffer {
  return encodeFrame(
    { streamId, type: MessageType.Request, flags: 0 },
    encodeRequestEnvelope({ service, method, payload: Buffer.from(payload) }),
  );
}

/** Collects log lines to check what a protocol error logs (and that no payload is in it). */
function capturingLogger(): { logger: pino.Logger; lines: string[] } {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(chunk.toString('utf8'));
      done();
    },
  });
  return { logger: pino({ level: 'debug' }, sink), lines };
}

describe('ttrpc server', { timeout: 15_000 }, () => {
  let fixture: TtrpcFixture;
  let logLines: string[];
  const clients: TtrpcClient[] = [];

  async function connect(): Promise<TtrpcClient> {
    const client = await connectTtrpc(fixture.socketPath);
    clients.push(client);
    return client;
  }

  before(async () => {
    const { logger, lines } = capturingLogger();
    logLines = lines;
    fixture = await startTtrpcFixture({ maxMessageBytes: 4096, logger });
  });

  after(async () => {
    await Promise.all(clients.map((client) => client.close()));
    await fixture.close();
  });

  it('answers UnsealSecret with the plaintext', async () => {
    const client = await connect();
    const result = await ttrpcUnsealSecret(client, secret('echo:hello from ttrpc'));
    assert.deepEqual(result.status, { code: 0, message: '' });
    assert.equal(result.plaintext?.toString(), 'hello from ttrpc');
  });

  it('answers GetResource with the resource', async () => {
    const client = await connect();
    const result = await ttrpcGetResource(client, 'kbs:///default/key/1');
    assert.equal(result.status.code, 0);
    assert.equal(result.resource?.toString(), 'resource of kbs:///default/key/1');
  });

  it('answers an empty UnsealSecret request like an empty secret', async () => {
    const client = await connect();
    const result = await client.call(...UNSEAL, Buffer.alloc(0));
    assert.equal(result.status.code, 3);
    assert.match(result.status.message, /^SEALED_SECRET_MALFORMED: /);
  });

  it('maps a CdhError to its status code and message', async () => {
    const client = await connect();
    const denied = await ttrpcUnsealSecret(
      client,
      secret('fail:SIGNATURE_INVALID:the JWS signature does not verify'),
    );
    assert.deepEqual(denied.status, {
      code: 7,
      message: 'SIGNATURE_INVALID: the JWS signature does not verify',
    });
    assert.equal(denied.payload.length, 0);
    const missing = await ttrpcGetResource(client, 'kbs:///missing/x/y');
    assert.deepEqual(missing.status, {
      code: 5,
      message: 'RESOURCE_NOT_FOUND: no resource kbs:///missing/x/y',
    });
  });

  it('answers an unexpected failure INTERNAL without its details', async () => {
    const client = await connect();
    const result = await ttrpcUnsealSecret(client, secret('crash'));
    assert.deepEqual(result.status, { code: 13, message: 'INTERNAL: internal error' });
  });

  it('answers UNIMPLEMENTED for SecureMount, PullImage and unknown methods', async () => {
    const client = await connect();
    const secureMount = await client.call(
      'api.SecureMountService',
      'SecureMount',
      encodeApi('api.SecureMountRequest', { volumeType: 'BlockDevice', options: { a: 'b' }, flags: ['ro'] }),
    );
    assert.equal(secureMount.status.code, 12);
    assert.match(secureMount.status.message, /SecureMount is not part of this daemon/);
    const pullImage = await client.call(
      'api.ImagePullService',
      'PullImage',
      encodeApi('api.ImagePullRequest', { imageUrl: 'docker.io/library/busybox' }),
    );
    assert.equal(pullImage.status.code, 12);
    for (const [service, method] of [
      ['api.SealedSecretService', 'Unseal'],
      ['SealedSecretService', 'UnsealSecret'],
      ['grpc.health.v1.Health', 'Check'],
      ['', ''],
    ] as const) {
      const result = await client.call(service, method, Buffer.alloc(0));
      assert.equal(result.status.code, 12, `${service}/${method}`);
      assert.match(result.status.message, /^NOT_IMPLEMENTED: unknown service or method/);
    }
    // The connection is still fine.
    assert.equal(
      (await ttrpcUnsealSecret(client, secret('echo:still here'))).plaintext?.toString(),
      'still here',
    );
  });

  it('answers INVALID_ARGUMENT for a payload that is not the method input message', async () => {
    const client = await connect();
    const result = await client.call(...UNSEAL, Buffer.from([0x0a, 0x05, 0x61]));
    assert.equal(result.status.code, 3);
    assert.match(
      result.status.message,
      /^REQUEST_MALFORMED: the payload is not a valid api.UnsealSecretInput/,
    );
    // A string field running past the end of the message (protobufjs's Buffer reader would truncate it).
    const truncated = await client.call(
      'api.GetResourceService',
      'GetResource',
      Buffer.from([0x0a, 0x7f, 0x6b]),
    );
    assert.equal(truncated.status.code, 3);
    assert.match(truncated.status.message, /^REQUEST_MALFORMED: /);
    assert.equal((await ttrpcUnsealSecret(client, secret('echo:ok'))).status.code, 0);
  });

  it('runs concurrent calls on one connection and answers each on its stream as it finishes', async () => {
    const client = await connect();
    const finished: string[] = [];
    const calls = [
      ['slow:300:first', 'first'],
      ['slow:20:second', 'second'],
      ['slow:150:third', 'third'],
      ['echo:fourth', 'fourth'],
    ].map(async ([input, expected]) => {
      const result = await ttrpcUnsealSecret(client, secret(input as string));
      finished.push(result.plaintext?.toString() ?? '');
      assert.equal(result.plaintext?.toString(), expected);
    });
    await Promise.all(calls);
    assert.deepEqual(finished, ['fourth', 'second', 'third', 'first']);
  });

  it('honours timeout_nano as the deadline', async () => {
    const client = await connect();
    const started = Date.now();
    const late = await ttrpcUnsealSecret(client, secret('slow:5000:never'), { timeoutNs: 100_000_000 });
    assert.equal(late.status.code, 4);
    assert.match(late.status.message, /^DEADLINE_EXCEEDED: /);
    assert.ok(Date.now() - started < 2000, 'answered at the deadline, not when the backend finished');
    const inTime = await ttrpcUnsealSecret(client, secret('slow:10:in time'), { timeoutNs: 2_000_000_000 });
    assert.equal(inTime.plaintext?.toString(), 'in time');
    // A timeout far beyond what a timer can wait does not expire at once.
    const far = await ttrpcUnsealSecret(client, secret('echo:far'), { timeoutNs: Number.MAX_SAFE_INTEGER });
    assert.equal(far.plaintext?.toString(), 'far');
  });

  it('answers RESOURCE_EXHAUSTED for a payload over max_message_bytes and keeps serving the connection', async () => {
    const client = await connect();
    const before = fixture.backend.started;
    const result = await ttrpcUnsealSecret(client, Buffer.alloc(5000, 0x41));
    assert.equal(result.status.code, 8);
    assert.match(result.status.message, /^REQUEST_TOO_LARGE: request of \d+ bytes is larger than 4096 bytes/);
    assert.equal(fixture.backend.started, before, 'the backend never saw it');
    assert.equal((await ttrpcUnsealSecret(client, secret('echo:next'))).plaintext?.toString(), 'next');
  });

  it('answers RESOURCE_EXHAUSTED when the answer does not fit in a frame', async () => {
    const client = await connect();
    const result = await ttrpcGetResource(client, `size:${MAX_FRAME_DATA_BYTES}`);
    assert.equal(result.status.code, 8);
    assert.match(result.status.message, /^RESPONSE_TOO_LARGE: /);
    const fits = await ttrpcGetResource(client, `size:${MAX_FRAME_DATA_BYTES - 64}`);
    assert.equal(fits.resource?.length, MAX_FRAME_DATA_BYTES - 64);
  });

  it('aborts the calls in flight when the client goes away', async () => {
    const client = await connect();
    const abortedBefore = fixture.backend.aborted;
    const pending = ttrpcUnsealSecret(client, secret('slow:5000:abandoned'));
    await waitFor(() => fixture.dispatcher.callsInFlight > 0);
    client.writeRaw(Buffer.alloc(0));
    await client.close();
    await assert.rejects(pending, TtrpcConnectionClosedError);
    await waitFor(() => fixture.backend.aborted > abortedBefore);
  });

  describe('a malformed frame closes that connection only', () => {
    const malformed: Array<{ name: string; bytes: () => Buffer; reason: RegExp }> = [
      {
        name: 'data length over 4 MiB',
        bytes: () => Buffer.from([0, 0x40, 0, 1, 0, 0, 0, 1, MessageType.Request, 0]),
        reason: /more than 4194304/,
      },
      {
        name: 'an HTTP/1 request instead of a frame',
        bytes: () => Buffer.from('GET / HTTP/1.1\r\nHost: localhost\r\n\r\n'),
        reason: /frame announces/,
      },
      {
        name: 'an even stream id',
        bytes: () =>
          requestFrame(2, ...UNSEAL, encodeApi('api.UnsealSecretInput', { secret: secret('echo:x') })),
        reason: /stream id must be odd/,
      },
      {
        name: 'stream id 0',
        bytes: () =>
          requestFrame(0, ...UNSEAL, encodeApi('api.UnsealSecretInput', { secret: secret('echo:x') })),
        reason: /stream id must be odd/,
      },
      {
        name: 'an unknown message type',
        bytes: () => encodeFrame({ streamId: 1, type: 7, flags: 0 }, Buffer.from('?')),
        reason: /unknown message type/,
      },
      {
        name: 'a response frame from the client',
        bytes: () => encodeFrame({ streamId: 1, type: MessageType.Response, flags: 0 }, Buffer.alloc(0)),
        reason: /response frame from the client/,
      },
      {
        name: 'a data frame on the unary stream in flight',
        bytes: () =>
          encodeFrame({ streamId: 1001, type: MessageType.Data, flags: 1 }, Buffer.from('PAYLOAD-MARKER')),
        reason: /data frame on a unary stream/,
      },
      {
        name: 'a request on a stream id already in use',
        bytes: () =>
          requestFrame(1001, ...UNSEAL, encodeApi('api.UnsealSecretInput', { secret: secret('echo:x') })),
        reason: /stream id already in use/,
      },
      {
        name: 'garbage instead of a Request envelope',
        bytes: () =>
          encodeFrame({ streamId: 1, type: MessageType.Request, flags: 0 }, Buffer.from([0x0a, 0x7f, 1])),
        reason: /not a ttrpc Request message/,
      },
    ];

    for (const { name, bytes, reason } of malformed) {
      it(name, { timeout: 5000 }, async () => {
        const bystander = await connect();
        const victim = await connect();
        const bystanderCall = ttrpcUnsealSecret(bystander, secret('slow:200:bystander'));
        const abortedBefore = fixture.backend.aborted;
        // A call in flight on the victim's stream 1001: it must be aborted when the connection closes.
        const inFlight = ttrpcUnsealSecret(victim, secret('slow:5000:victim'), { streamId: 1001 });
        await waitFor(() => fixture.dispatcher.callsInFlight >= 2);
        logLines.length = 0;

        victim.writeRaw(bytes());
        await victim.closed;
        await assert.rejects(inFlight, TtrpcConnectionClosedError);
        await waitFor(() => fixture.backend.aborted > abortedBefore);

        const warning = logLines.find((line) => line.includes('protocol error'));
        assert.ok(warning, 'the protocol error is logged');
        assert.match(warning, reason);
        assert.doesNotMatch(warning, /echo:x|PAYLOAD-MARKER|GET \//);

        assert.equal((await bystanderCall).plaintext?.toString(), 'bystander');
        assert.equal(
          (await ttrpcUnsealSecret(bystander, secret('echo:after'))).plaintext?.toString(),
          'after',
        );
        const fresh = await connect();
        assert.equal((await ttrpcUnsealSecret(fresh, secret('echo:fresh'))).plaintext?.toString(), 'fresh');
      });
    }
  });

  it('reads requests whose frames arrive split and merged across writes', async () => {
    const frames = Buffer.concat([
      requestFrame(1, ...UNSEAL, encodeApi('api.UnsealSecretInput', { secret: secret('echo:one') })),
      requestFrame(3, ...UNSEAL, encodeApi('api.UnsealSecretInput', { secret: secret('echo:two') })),
      requestFrame(
        5,
        'api.GetResourceService',
        'GetResource',
        encodeApi('api.GetResourceRequest', { ResourcePath: 'r' }),
      ),
    ]);
    const answers = await rawAnswers(
      fixture.socketPath,
      [frames.subarray(0, 7), frames.subarray(7, 40), frames.subarray(40)],
      3,
    );
    const payloadOf = (streamId: number): Buffer => Buffer.from(answers.get(streamId)?.payload ?? []);
    assert.equal(decodeApi('api.UnsealSecretOutput', payloadOf(1)).plaintext?.toString(), 'one');
    assert.equal(decodeApi('api.UnsealSecretOutput', payloadOf(3)).plaintext?.toString(), 'two');
    assert.equal(decodeApi('api.GetResourceResponse', payloadOf(5)).Resource?.toString(), 'resource of r');
  });
});

describe('ttrpc server hand-over and shutdown', { timeout: 15_000 }, () => {
  it('processes the bytes the listener already read (initialBytes) before the rest', async () => {
    const fixture = await startTtrpcFixture({
      onConnection: (socket, ttrpc) =>
        socket.once('data', (first: Buffer) => {
          socket.pause();
          ttrpc.handleConnection(socket, first);
        }),
    });
    try {
      const client = await connectTtrpc(fixture.socketPath);
      const results = await Promise.all([
        ttrpcUnsealSecret(client, secret('echo:a')),
        ttrpcUnsealSecret(client, secret('echo:b')),
      ]);
      assert.deepEqual(
        results.map((result) => result.plaintext?.toString()),
        ['a', 'b'],
      );
      await client.close();
    } finally {
      await fixture.close();
    }
  });

  it('works with bytes the listener gave back with socket.unshift', async () => {
    const fixture = await startTtrpcFixture({
      onConnection: (socket, ttrpc) =>
        socket.once('readable', () => {
          const first = socket.read(4) as Buffer | null;
          if (first) socket.unshift(first);
          ttrpc.handleConnection(socket);
        }),
    });
    try {
      const client = await connectTtrpc(fixture.socketPath);
      assert.equal(
        (await ttrpcUnsealSecret(client, secret('echo:unshifted'))).plaintext?.toString(),
        'unshifted',
      );
      await client.close();
    } finally {
      await fixture.close();
    }
  });

  it('close() answers the calls in flight, reads no new requests, then closes the connections', async () => {
    const fixture = await startTtrpcFixture();
    try {
      const client = await connectTtrpc(fixture.socketPath);
      const idle = await connectTtrpc(fixture.socketPath);
      const inFlight = ttrpcUnsealSecret(client, secret('slow:200:finished'));
      await waitFor(() => fixture.dispatcher.callsInFlight === 1);
      const closing = fixture.ttrpc.close();
      const late = ttrpcUnsealSecret(client, secret('echo:late'));
      assert.equal((await inFlight).plaintext?.toString(), 'finished');
      await assert.rejects(late, TtrpcConnectionClosedError);
      await closing;
      await client.closed;
      await idle.closed;
      assert.equal(fixture.ttrpc.connectionCount, 0);
      // Connections handed over after close() are refused.
      const refused = await connectTtrpc(fixture.socketPath);
      await refused.closed;
    } finally {
      await fixture.close();
    }
  });

  it('stops reading requests while the client does not read its answers', async () => {
    const fixture = await startTtrpcFixture();
    const socket = net.connect(fixture.socketPath);
    try {
      await once(socket, 'connect');
      socket.pause();
      const count = 8;
      for (let streamId = 1; streamId < 2 * count; streamId += 2) {
        socket.write(
          requestFrame(
            streamId,
            'api.GetResourceService',
            'GetResource',
            encodeApi('api.GetResourceRequest', { ResourcePath: `size:${1 << 20}` }),
          ),
        );
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      assert.ok(fixture.backend.started < count, `only ${fixture.backend.started} of ${count} calls started`);
      const decoder = new FrameDecoder();
      let answered = 0;
      const allAnswered = new Promise<void>((resolve) =>
        socket.on('data', (chunk: Buffer) =>
          decoder.push(chunk, (frame) => {
            assert.equal(decodeResponseEnvelope(frame.data).payload.length > 1 << 20, true);
            if (++answered === count) resolve();
          }),
        ),
      );
      socket.resume();
      await allAnswered;
      assert.equal(fixture.backend.started, count);
    } finally {
      socket.destroy();
      await fixture.close();
    }
  });

  it('destroy() answers the calls in flight SHUTTING_DOWN, closes every connection and aborts the calls', async () => {
    const fixture = await startTtrpcFixture();
    try {
      const client = await connectTtrpc(fixture.socketPath);
      const inFlight = ttrpcUnsealSecret(client, secret('slow:5000:never'));
      await waitFor(() => fixture.dispatcher.callsInFlight === 1);
      fixture.ttrpc.destroy();
      const answer = await inFlight;
      assert.equal(answer.status.code, 14, 'UNAVAILABLE');
      assert.match(answer.status.message, /^SHUTTING_DOWN: .*grace period/);
      await client.closed;
      await waitFor(() => fixture.backend.aborted === 1);
      await fixture.dispatcher.whenIdle();
    } finally {
      await fixture.close();
    }
  });
});

async function waitFor(condition: () => boolean, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Writes chunks with pauses between them on a plain socket; collects the answers by stream id. */
async function rawAnswers(
  socketPath: string,
  chunks: Buffer[],
  count: number,
): Promise<Map<number, TtrpcResponse>> {
  const socket = net.connect(socketPath);
  await once(socket, 'connect');
  const answers = new Map<number, TtrpcResponse>();
  const decoder = new FrameDecoder();
  const done = new Promise<void>((resolve) =>
    socket.on('data', (chunk: Buffer) =>
      decoder.push(chunk, (frame) => {
        assert.equal(frame.type, MessageType.Response);
        answers.set(frame.streamId, decodeResponseEnvelope(frame.data));
        if (answers.size === count) resolve();
      }),
    ),
  );
  for (const chunk of chunks) {
    socket.write(chunk);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  await done;
  socket.destroy();
  return answers;
}
