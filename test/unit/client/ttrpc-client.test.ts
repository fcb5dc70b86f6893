import assert from 'node:assert/strict';
import * as net from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { AA_SERVICE, AttestationAgentClient } from '../../../src/client/aa-client';
import {
  ExtendRuntimeMeasurementRequestSchema,
  ExtendRuntimeMeasurementResponseSchema,
  GetAdditionalTeesResponseSchema,
  GetEvidenceRequestSchema,
  GetEvidenceResponseSchema,
  GetTeeTypeResponseSchema,
  GetTokenRequestSchema,
  GetTokenResponseSchema,
  RuntimeMeasurementResult,
} from '../../../src/gen/attestation-agent_pb';
import { TtrpcCallError, TtrpcClient, ttrpcSocketPath } from '../../../src/client/ttrpc-client';
import { encodeFrame, FrameDecoder, MessageType } from '../../../src/server/ttrpc/frame';
import {
  decodeRequestEnvelope,
  encodeResponseEnvelope,
  type TtrpcRequest,
} from '../../../src/server/ttrpc/messages';
import { tempDir } from '../../../src/devtools/daemon';

type Handler = (
  request: TtrpcRequest,
) => { code: number; message?: string; payload?: Uint8Array } | 'hang' | 'close';

/** A ttrpc server speaking the frames by hand, so the client is checked against the protocol, not itself. */
function startServer(
  socketPath: string,
  handler: Handler,
): Promise<{ server: net.Server; requests: TtrpcRequest[] }> {
  const requests: TtrpcRequest[] = [];
  const server = net.createServer((socket) => {
    const decoder = new FrameDecoder();
    socket.on('error', () => undefined);
    socket.on('data', (chunk: Buffer) =>
      decoder.push(chunk, (frame) => {
        const request = decodeRequestEnvelope(frame.data);
        requests.push(request);
        const answer = handler(request);
        if (answer === 'hang') return;
        if (answer === 'close') return void socket.destroy();
        const envelope = encodeResponseEnvelope({
          status: { code: answer.code, message: answer.message ?? '' },
          payload: answer.payload ?? new Uint8Array(),
        });
        socket.write(
          encodeFrame({ streamId: frame.streamId, type: MessageType.Response, flags: 0 }, envelope),
        );
      }),
    );
  });
  return new Promise((resolve) => server.listen(socketPath, () => resolve({ server, requests })));
}

describe('ttrpc client', () => {
  const dir = tempDir('cdh-ttrpc-client-');
  const socketPath = join(dir.path, 'peer.sock');
  let peer: { server: net.Server; requests: TtrpcRequest[] };

  before(async () => {
    peer = await startServer(socketPath, (request) => {
      const text = request.payload.toString();
      if (text === 'hang') return 'hang';
      if (text === 'close') return 'close';
      if (text === 'fail') return { code: 5, message: 'no such thing' };
      return { code: 0, payload: Buffer.from(`echo:${text}`) };
    });
  });
  after(() => {
    peer.server.close();
    dir.cleanup();
  });

  test('accepts unix:/// URIs and absolute paths, refuses relative ones', () => {
    assert.equal(ttrpcSocketPath('unix:///run/x.sock'), '/run/x.sock');
    assert.equal(ttrpcSocketPath('unix:/run/x.sock'), '/run/x.sock');
    assert.equal(ttrpcSocketPath('/run/x.sock'), '/run/x.sock');
    assert.throws(() => ttrpcSocketPath('x.sock'), /not unix:\/\/\/absolute\/path/);
  });

  test('multiplexes concurrent calls on one connection and sends the timeout as timeout_nano', async () => {
    const client = new TtrpcClient(`unix://${socketPath}`);
    const before = peer.requests.length;
    const answers = await Promise.all(
      ['a', 'b', 'c'].map((text) => client.call('svc.S', 'M', Buffer.from(text), { timeoutMs: 1500 })),
    );
    assert.deepEqual(answers.map(String), ['echo:a', 'echo:b', 'echo:c']);
    const sent = peer.requests.slice(before);
    assert.deepEqual(
      sent.map((r) => `${r.service}/${r.method}`),
      ['svc.S/M', 'svc.S/M', 'svc.S/M'],
    );
    assert.ok(sent.every((r) => r.timeoutNano === 1500 * 1_000_000));
    client.close();
  });

  test('a non-zero status is a status error carrying the peer code and message', async () => {
    const client = new TtrpcClient(socketPath);
    await assert.rejects(client.call('svc.S', 'M', Buffer.from('fail')), (error: TtrpcCallError) => {
      assert.equal(error.kind, 'status');
      assert.equal(error.code, 5);
      assert.equal(error.peerMessage, 'no such thing');
      return true;
    });
    client.close();
  });

  test('a peer that never answers fails the call at its timeout and the connection stays usable', async () => {
    const client = new TtrpcClient(socketPath);
    const started = Date.now();
    await assert.rejects(
      client.call('svc.S', 'M', Buffer.from('hang'), { timeoutMs: 150 }),
      (error: TtrpcCallError) => {
        assert.equal(error.kind, 'deadline');
        assert.equal(error.code, 4);
        return true;
      },
    );
    assert.ok(Date.now() - started < 5000);
    assert.equal(String(await client.call('svc.S', 'M', Buffer.from('after'))), 'echo:after');
    client.close();
  });

  test('an aborted signal fails the call as aborted', async () => {
    const client = new TtrpcClient(socketPath);
    const controller = new AbortController();
    const call = client.call('svc.S', 'M', Buffer.from('hang'), { signal: controller.signal });
    setTimeout(() => controller.abort(), 50);
    await assert.rejects(call, (error: TtrpcCallError) => error.kind === 'aborted' && error.code === 1);
    client.close();
  });

  test('a connection closed before the answer fails the call, and the next call reconnects', async () => {
    const client = new TtrpcClient(socketPath);
    await assert.rejects(
      client.call('svc.S', 'M', Buffer.from('close'), { timeoutMs: 5000 }),
      (error: TtrpcCallError) => {
        assert.equal(error.kind, 'closed');
        assert.equal(error.code, 14);
        return true;
      },
    );
    assert.equal(
      String(await client.call('svc.S', 'M', Buffer.from('again'), { timeoutMs: 5000 })),
      'echo:again',
    );
    client.close();
  });

  test('no socket is unreachable (UNAVAILABLE) naming the address', async () => {
    const client = new TtrpcClient(`unix://${join(dir.path, 'absent.sock')}`);
    await assert.rejects(
      client.call('svc.S', 'M', Buffer.alloc(0), { timeoutMs: 2000 }),
      (error: TtrpcCallError) => {
        assert.equal(error.kind, 'unreachable');
        assert.equal(error.code, 14);
        assert.match(error.message, /absent\.sock: ENOENT/);
        return true;
      },
    );
  });
});

describe('attestation agent client', () => {
  const dir = tempDir('cdh-aa-client-');
  const socketPath = join(dir.path, 'aa.sock');
  let peer: { server: net.Server; requests: TtrpcRequest[] };

  before(async () => {
    peer = await startServer(socketPath, (request) => {
      if (request.service !== AA_SERVICE) return { code: 12, message: 'unknown service' };
      switch (request.method) {
        case 'GetToken': {
          const { TokenType } = fromBinary(GetTokenRequestSchema, request.payload);
          const token = Buffer.from(`token-for-${TokenType}`);
          return {
            code: 0,
            payload: toBinary(GetTokenResponseSchema, create(GetTokenResponseSchema, { Token: token })),
          };
        }
        case 'GetEvidence':
        case 'GetAdditionalEvidence': {
          // GetAdditionalEvidenceRequest has the same one field (RuntimeData = 1).
          const { RuntimeData } = fromBinary(GetEvidenceRequestSchema, request.payload);
          const evidence = Buffer.concat([Buffer.from(`${request.method}:`), RuntimeData]);
          return {
            code: 0,
            payload: toBinary(
              GetEvidenceResponseSchema,
              create(GetEvidenceResponseSchema, { Evidence: evidence }),
            ),
          };
        }
        case 'GetTeeType':
          return {
            code: 0,
            payload: toBinary(GetTeeTypeResponseSchema, create(GetTeeTypeResponseSchema, { tee: 'sample' })),
          };
        case 'GetAdditionalTees':
          return {
            code: 0,
            payload: toBinary(
              GetAdditionalTeesResponseSchema,
              create(GetAdditionalTeesResponseSchema, { additionalTees: ['tdx', 'cca'] }),
            ),
          };
        case 'ExtendRuntimeMeasurement': {
          const event = fromBinary(ExtendRuntimeMeasurementRequestSchema, request.payload);
          const Result =
            event.Domain === 'unsupported'
              ? RuntimeMeasurementResult.NOT_SUPPORTED
              : RuntimeMeasurementResult.OK;
          const answer = create(ExtendRuntimeMeasurementResponseSchema, { Result });
          return { code: 0, payload: toBinary(ExtendRuntimeMeasurementResponseSchema, answer) };
        }
        default:
          return { code: 12, message: `unknown method ${request.method}` };
      }
    });
  });
  after(() => {
    peer.server.close();
    dir.cleanup();
  });

  test('every method round-trips its fields by their wire names', async () => {
    const aa = new AttestationAgentClient(`unix://${socketPath}`);
    assert.equal(String(await aa.getToken('kbs')), 'token-for-kbs');
    assert.equal(String(await aa.getEvidence(Buffer.from('rd1'))), 'GetEvidence:rd1');
    assert.equal(String(await aa.getAdditionalEvidence(Buffer.from('rd2'))), 'GetAdditionalEvidence:rd2');
    assert.equal(await aa.getTeeType(), 'sample');
    assert.deepEqual(await aa.getAdditionalTees(), ['tdx', 'cca']);
    assert.equal(
      await aa.extendRuntimeMeasurement({
        domain: 'github.com/confidential-containers',
        operation: 'PullImage',
        content: '{}',
      }),
      'OK',
    );
    assert.equal(
      await aa.extendRuntimeMeasurement({
        domain: 'unsupported',
        operation: 'x',
        content: 'y',
        registerIndex: 17,
      }),
      'NOT_SUPPORTED',
    );
    const extend = peer.requests.filter((r) => r.method === 'ExtendRuntimeMeasurement').at(-1);
    assert.ok(extend);
    assert.equal(fromBinary(ExtendRuntimeMeasurementRequestSchema, extend.payload).RegisterIndex, 17n);
    aa.close();
  });
});
