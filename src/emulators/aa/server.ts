import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { chmodSync, rmSync } from 'node:fs';
import * as net from 'node:net';
import { create, fromBinary, toBinary, type DescMessage, type MessageInitShape } from '@bufbuild/protobuf';
import { AA_SERVICE } from '../../client/aa-client';
import {
  ExtendRuntimeMeasurementResponseSchema,
  GetEvidenceRequestSchema,
  GetEvidenceResponseSchema,
  GetTeeTypeResponseSchema,
  GetTokenRequestSchema,
  GetTokenResponseSchema,
  RuntimeMeasurementResult,
} from '../../gen/attestation-agent_pb';
import { ttrpcSocketPath } from '../../client/ttrpc-client';
import { KbsHttpClient } from '../../kbc/kbs-http';
import { encodeFrame, FrameDecoder, MessageType } from '../../server/ttrpc/frame';
import { decodeRequestEnvelope, encodeResponseEnvelope } from '../../server/ttrpc/messages';
import {
  KBS_PROTOCOL_VERSION,
  SAMPLE_TEE,
  reportData,
  runtimeData,
  sampleEvidence,
  type PublicJwk,
} from '../kbs/protocol';

/**
 * An attestation agent emulator: a ttrpc server on a Unix socket with upstream's
 * `attestation_agent.AttestationAgentService`. GetToken("kbs") really attests to a KBS with
 * the `sample` TEE (auth → nonce; a fresh TEE key bound by SHA-384 of the JCS runtime data in
 * the sample evidence; attest → token) and answers `{"token", "tee_keypair"}`. The TEE key
 * type is selectable (EC P-256 as upstream's default, P-521, RSA with OAEP-256, RSA with the
 * legacy RSA1_5). Never used by the daemon.
 */

export type TeeKeyType = 'ec-p256' | 'ec-p521' | 'rsa' | 'rsa1_5';
export const TEE_KEY_TYPES: readonly TeeKeyType[] = ['ec-p256', 'ec-p521', 'rsa', 'rsa1_5'];

export interface AaEmulatorOptions {
  /** `unix:///path` or a path. */
  readonly socket: string;
  /** The KBS base URL. */
  readonly kbsUrl: string;
  /** PEM trusted for an https KBS. */
  readonly kbsCert?: string;
  /** Dial this host:port for the KBS (keeps the URL's host name for TLS). */
  readonly kbsConnectTo?: string;
  keyType?: TeeKeyType;
}

export interface AaCounters {
  getToken: number;
  getTokenFailed: number;
  otherCalls: number;
}

export class AaEmulator {
  readonly counters: AaCounters = { getToken: 0, getTokenFailed: 0, otherCalls: 0 };
  /** Answer the next N GetToken calls with this ttrpc status instead (fault injection). */
  failNext: { count: number; code: number; message: string } | undefined;
  /** What GetToken handed out, newest last (at most 64): tests check that none of it leaks. */
  readonly issued: Array<{ readonly token: string; readonly teeKeyPem: string }> = [];
  /** Delay GetToken answers by this many ms (a slow attestation). */
  delayMs = 0;
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();
  private readonly path: string;
  private readonly kbs: KbsHttpClient;

  constructor(readonly options: AaEmulatorOptions) {
    this.path = ttrpcSocketPath(options.socket);
    this.kbs = new KbsHttpClient(options.kbsUrl, {
      maxBodyBytes: 1024 * 1024,
      ...(options.kbsCert ? { extraCa: options.kbsCert } : {}),
      ...(options.kbsConnectTo ? { connectTo: options.kbsConnectTo } : {}),
    });
    this.server = net.createServer((socket) => this.serve(socket));
  }

  async start(): Promise<string> {
    rmSync(this.path, { force: true });
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.path, () => resolve());
    });
    chmodSync(this.path, 0o600);
    return `unix://${this.path}`;
  }

  /** Stops listening and drops every connection (the AA going away). */
  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    rmSync(this.path, { force: true });
  }

  /** Releases the KBS connections too (after the last close). */
  dispose(): void {
    this.kbs.close();
  }

  /** Performs the attestation handshake; answers the GetToken JSON. */
  async attest(keyType: TeeKeyType = this.options.keyType ?? 'ec-p256'): Promise<Buffer> {
    const signal = AbortSignal.timeout(30_000);
    const json = { 'content-type': 'application/json' };
    const auth = await this.kbs.request(
      'POST',
      '/kbs/v0/auth',
      json,
      signal,
      Buffer.from(JSON.stringify({ version: KBS_PROTOCOL_VERSION, tee: SAMPLE_TEE, 'extra-params': {} })),
    );
    if (auth.status !== 200) throw new Error(`KBS auth answered ${auth.status}: ${auth.body.toString()}`);
    const cookie = String(auth.headers['set-cookie']?.[0] ?? '').split(';')[0] ?? '';
    const { nonce } = JSON.parse(auth.body.toString('utf8')) as { nonce: string };
    const { privateKey, jwk, pem } = teeKeyPair(keyType);
    const report = reportData(runtimeData(jwk, nonce, ''));
    const attest = await this.kbs.request(
      'POST',
      '/kbs/v0/attest',
      { ...json, cookie },
      signal,
      Buffer.from(
        JSON.stringify({
          'runtime-data': { nonce, 'tee-pubkey': jwk },
          'tee-evidence': { primary_evidence: sampleEvidence(report), additional_evidence: '' },
          'init-data': null,
        }),
      ),
    );
    if (attest.status !== 200)
      throw new Error(`KBS attest answered ${attest.status}: ${attest.body.toString()}`);
    const { token } = JSON.parse(attest.body.toString('utf8')) as { token: string };
    void privateKey;
    this.issued.push({ token, teeKeyPem: pem });
    if (this.issued.length > 64) this.issued.shift();
    return Buffer.from(JSON.stringify({ token, tee_keypair: pem }));
  }

  private serve(socket: net.Socket): void {
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    const decoder = new FrameDecoder();
    socket.on('data', (chunk: Buffer) => {
      try {
        decoder.push(chunk, (frame) => {
          if (frame.type !== MessageType.Request) return;
          void this.answer(frame.data).then((envelope) => {
            if (!socket.destroyed)
              socket.write(
                encodeFrame({ streamId: frame.streamId, type: MessageType.Response, flags: 0 }, envelope),
              );
          });
        });
      } catch {
        socket.destroy();
      }
    });
  }

  private async answer(data: Buffer): Promise<Uint8Array> {
    const fail = (code: number, message: string): Uint8Array =>
      encodeResponseEnvelope({ status: { code, message }, payload: new Uint8Array() });
    let request;
    try {
      request = decodeRequestEnvelope(data);
    } catch {
      return fail(3, 'not a ttrpc Request');
    }
    if (request.service !== AA_SERVICE) return fail(12, `unknown service ${request.service}`);
    const reply = <S extends DescMessage>(schema: S, message: MessageInitShape<S>): Uint8Array =>
      encodeResponseEnvelope({
        status: { code: 0, message: '' },
        payload: toBinary(schema, create(schema, message)),
      });
    switch (request.method) {
      case 'GetToken': {
        this.counters.getToken++;
        const { TokenType } = fromBinary(GetTokenRequestSchema, request.payload);
        if (this.delayMs > 0) await new Promise((resolve) => setTimeout(resolve, this.delayMs));
        if (this.failNext && this.failNext.count > 0) {
          this.failNext.count--;
          this.counters.getTokenFailed++;
          return fail(this.failNext.code, this.failNext.message);
        }
        if (TokenType !== 'kbs') return fail(3, `token type ${TokenType} is not supported (kbs only)`);
        try {
          return reply(GetTokenResponseSchema, { Token: await this.attest() });
        } catch (error) {
          this.counters.getTokenFailed++;
          return fail(13, `attestation failed: ${(error as Error).message}`);
        }
      }
      case 'GetTeeType':
        this.counters.otherCalls++;
        return reply(GetTeeTypeResponseSchema, { tee: SAMPLE_TEE });
      case 'GetEvidence': {
        this.counters.otherCalls++;
        const { RuntimeData } = fromBinary(GetEvidenceRequestSchema, request.payload);
        const evidence = { svn: '1', report_data: Buffer.from(RuntimeData).toString('base64') };
        return reply(GetEvidenceResponseSchema, { Evidence: Buffer.from(JSON.stringify(evidence)) });
      }
      case 'ExtendRuntimeMeasurement':
        this.counters.otherCalls++;
        return reply(ExtendRuntimeMeasurementResponseSchema, {
          Result: RuntimeMeasurementResult.NOT_SUPPORTED,
        });
      default:
        return fail(12, `method ${request.method} is not implemented by the emulator`);
    }
  }
}

/** A TEE key pair: the private key PEM (as upstream's AA hands it out) and the public JWK. */
export function teeKeyPair(keyType: TeeKeyType): { privateKey: KeyObject; jwk: PublicJwk; pem: string } {
  if (keyType === 'rsa' || keyType === 'rsa1_5') {
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const { n, e } = publicKey.export({ format: 'jwk' });
    // PKCS#1 ("BEGIN RSA PRIVATE KEY"), as upstream's AA writes RSA keys.
    const pem = privateKey.export({ type: 'pkcs1', format: 'pem' }).toString();
    return {
      privateKey,
      jwk: { kty: 'RSA', alg: keyType === 'rsa' ? 'RSA-OAEP-256' : 'RSA1_5', n: n as string, e: e as string },
      pem,
    };
  }
  const namedCurve = keyType === 'ec-p256' ? 'P-256' : 'P-521';
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve });
  const { x, y, crv } = publicKey.export({ format: 'jwk' });
  const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  return {
    privateKey,
    jwk: { kty: 'EC', crv: crv as string, alg: 'ECDH-ES+A256KW', x: x as string, y: y as string },
    pem,
  };
}
