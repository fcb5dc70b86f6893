import { createPublicKey, randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import * as https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { encodeDkms } from '../../providers/aliyun/client-key/dkms-messages';
import { checkDkmsRequest, CONTENT_TYPE, type ClientKeyEntry } from './dkms-request-checks';
import {
  emptyStats,
  seededRandom,
  sendProtobuf,
  type DkmsEmulatorStats,
  type DkmsFault,
  type EmulatorAnswer,
} from './dkms-stats';
import { delay, flattenHeaders, readBody } from '../http';
import { DkmsKeyStore, GatewayError, refuse, type ClientKeyPolicy, type ErrorAnswer } from './dkms-kms';
import { createTestCa, type TestCa } from '../pki';
import { listenOnLoopback } from '../listen';

export type { DkmsEmulatorStats, DkmsFault, EmulatorAnswer } from './dkms-stats';
export { DKMS_EMULATOR_API_NAMES, type ClientKeyPolicy, type DkmsEmulatorApiName } from './dkms-kms';

/**
 * An emulator of an Alibaba Cloud KMS instance's dedicated gateway (API dkms-gcs-0.2), for tests.
 *
 * A real HTTPS server on 127.0.0.1 (port 0) whose certificate, issued by a throw-away CA, is for
 * `<instance>.cryptoservice.kms.aliyuncs.com`. It checks what the gateway checks (Host, API
 * version and name, signature method, date and its skew, Content-Sha256, the client key id and the
 * RSA-SHA256 signature made with that client key), then serves Encrypt / Decrypt with AES-256-GCM
 * under per-key master keys and GetSecretValue from versioned, staged secrets. Failures are
 * protobuf `Error` bodies with the gateway's codes and a RequestId. Faults can be injected.
 */

export interface DkmsEmulatorOptions {
  readonly instanceId: string;
  /** Issues the server certificate (default: a fresh test CA). */
  readonly ca?: TestCa;
  /** DNS names in the server certificate (default: the instance host name only). */
  readonly serverHostNames?: readonly string[];
  /** Largest accepted difference between the request date and now (default 15 min, as the gateway). */
  readonly maxClockSkewMs?: number;
}

const MAX_BODY_BYTES = 1024 * 1024;

export class DkmsEmulator {
  readonly instanceId: string;
  readonly hostName: string;
  readonly ca: TestCa;
  readonly stats: DkmsEmulatorStats = emptyStats();
  /** Headers of the last request that arrived (lower-case names). */
  lastRequestHeaders: Readonly<Record<string, string>> = {};
  /** The last answer sent (injected faults included). */
  lastAnswer: EmulatorAnswer | undefined;

  private readonly server: https.Server;
  private readonly sockets = new Set<Socket>();
  private readonly clientKeys = new Map<string, ClientKeyEntry>();
  private readonly store = new DkmsKeyStore();
  private readonly faults: DkmsFault[] = [];
  private readonly maxClockSkewMs: number;
  private port = 0;
  private ratioFault: { ratio: number; random: () => number; status: number } | undefined;
  /** Set while the emulator itself drops connections (offline, close): not the client's doing. */
  private dropping = false;

  private constructor(options: DkmsEmulatorOptions) {
    this.instanceId = options.instanceId;
    this.hostName = `${options.instanceId}.cryptoservice.kms.aliyuncs.com`;
    this.ca = options.ca ?? createTestCa('Private KMS Root CA (test)');
    this.maxClockSkewMs = options.maxClockSkewMs ?? 15 * 60 * 1000;
    const serverCert = this.ca.issueServerCert(options.serverHostNames ?? [this.hostName]);
    this.server = https.createServer({ key: serverCert.keyPem, cert: serverCert.chainPem }, (req, res) => {
      void this.handle(req, res);
    });
    this.server.keepAliveTimeout = 30_000;
    this.server.on('connection', (socket: Socket) => {
      this.stats.tcpConnections++;
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
    });
    this.server.on('secureConnection', () => {
      this.stats.tlsConnections++;
    });
    this.server.on('tlsClientError', () => {
      this.stats.tlsFailures++;
    });
  }

  static async start(options: DkmsEmulatorOptions): Promise<DkmsEmulator> {
    const emulator = new DkmsEmulator(options);
    await listenOnLoopback(emulator.server);
    emulator.port = (emulator.server.address() as AddressInfo).port;
    return emulator;
  }

  /** `127.0.0.1:<port>`: what `dkms_connect_to` must be. */
  get connectTo(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** The CA certificate that issued the server certificate (the `PrivateKmsCA_<instance>.pem`). */
  get caPem(): string {
    return this.ca.certPem;
  }

  /** Registers a client key by id with the public key of its certificate (PEM certificate or key). */
  addClientKey(clientKeyId: string, certificateOrPublicKeyPem: string, policy: ClientKeyPolicy = {}): void {
    this.clientKeys.set(clientKeyId, { publicKey: createPublicKey(certificateOrPublicKeyPem), policy });
  }

  removeClientKey(clientKeyId: string): void {
    this.clientKeys.delete(clientKeyId);
  }

  /** Creates a symmetric key (AES-256 master key held only here); returns its id. */
  addKey(keyId?: string): string {
    return this.store.addKey(keyId);
  }

  /**
   * Adds a version of a secret (created if new). A version marked ACSCurrent takes that stage
   * from the previous current version, which becomes ACSPrevious (as a rotation does).
   */
  putSecretVersion(name: string, versionId: string, data: string, stages?: readonly string[]): void {
    this.store.putSecretVersion(name, versionId, data, stages);
  }

  /** Queues faults applied to the next requests, one per request, in order. */
  injectFaults(fault: DkmsFault, count = 1): void {
    for (let i = 0; i < count; i++) this.faults.push(fault);
  }

  /** The next `count` requests get HTTP `status` (default 503) with a protobuf Error. */
  failNext(count: number, status = 503, errorCode = status === 429 ? 'Throttling' : 'InternalFailure'): void {
    this.injectFaults({ kind: 'error', status, errorCode, errorMessage: 'injected failure' }, count);
  }

  hangNext(count = 1): void {
    this.injectFaults({ kind: 'hang' }, count);
  }

  resetNext(count = 1): void {
    this.injectFaults({ kind: 'reset' }, count);
  }

  slowNext(delayMs: number, count = 1): void {
    this.injectFaults({ kind: 'slow', delayMs }, count);
  }

  /** The next `count` requests get the headers and half the body of their answer, then a reset. */
  truncateNext(count = 1): void {
    this.injectFaults({ kind: 'truncate' }, count);
  }

  /**
   * From now on, each request (after the queued faults) fails with HTTP `status` with
   * probability `ratio`, drawn from a PRNG seeded with `seed` (reproducible runs). 0 turns it off.
   */
  failRatio(ratio: number, seed = 1, status = 503): void {
    this.ratioFault = ratio > 0 ? { ratio, random: seededRandom(seed), status } : undefined;
  }

  clearFaults(): void {
    this.faults.length = 0;
    this.ratioFault = undefined;
  }

  /** Stops listening and drops every connection, keeping keys and secrets: dials are refused. */
  async goOffline(): Promise<void> {
    this.dropping = true;
    try {
      const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
      this.server.closeAllConnections();
      for (const socket of this.sockets) socket.destroy();
      await closed;
    } finally {
      this.dropping = false;
    }
  }

  /** Listens again on the same port (after goOffline, or to come up where a daemon already dials). */
  async goOnline(): Promise<void> {
    await listenOnLoopback(this.server, this.port);
  }

  resetStats(): void {
    Object.assign(this.stats, emptyStats());
  }

  /** The queued fault for this request, else one drawn by failRatio, else none. */
  private nextFault(): DkmsFault | undefined {
    const queued = this.faults.shift();
    if (queued !== undefined || this.ratioFault === undefined) return queued;
    const { ratio, random, status } = this.ratioFault;
    if (random() >= ratio) return undefined;
    this.stats.ratioFailures++;
    return { kind: 'error', status, errorCode: 'InternalFailure', errorMessage: 'injected failure' };
  }

  /** A protobuf Error answer: the gateway's refusal, or InternalFailure for anything else. */
  private sendError(res: ServerResponse, error: unknown, apiName: string, requestId: string): void {
    const answer: ErrorAnswer =
      error instanceof GatewayError
        ? error.answer
        : { status: 500, errorCode: 'InternalFailure', errorMessage: 'internal error' };
    this.stats.errors[answer.errorCode] = (this.stats.errors[answer.errorCode] ?? 0) + 1;
    this.lastAnswer = { apiName, status: answer.status, errorCode: answer.errorCode, requestId };
    const errorBody = encodeDkms('Error', {
      StatusCode: answer.status,
      ErrorCode: answer.errorCode,
      ErrorMessage: answer.errorMessage,
      RequestId: requestId,
    });
    sendProtobuf(res, answer.status, errorBody, requestId);
  }

  /** Stops listening and drops every connection (hung requests included). */
  async close(): Promise<void> {
    this.faults.length = 0;
    this.dropping = true;
    if (!this.server.listening) {
      for (const socket of this.sockets) socket.destroy();
      return;
    }
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    for (const socket of this.sockets) socket.destroy();
    await closed;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const requestId = randomUUID();
    const headers = flattenHeaders(req);
    this.lastRequestHeaders = headers;
    const apiName = headers['x-kms-apiname'] ?? '';
    this.stats.requests[apiName] = (this.stats.requests[apiName] ?? 0) + 1;

    let body: Buffer;
    try {
      body = await readBody(req, MAX_BODY_BYTES);
    } catch {
      req.socket.destroy();
      return;
    }

    // The client gave up before the answer went out (its deadline passed, it was cancelled).
    let droppedHere = false;
    res.on('close', () => {
      if (!res.writableEnded && !droppedHere && !this.dropping) this.stats.abandoned++;
    });

    const fault = this.nextFault();
    if (fault?.kind === 'hang') return;
    if (fault?.kind === 'reset') {
      droppedHere = true;
      req.socket.destroy();
      return;
    }
    if (fault?.kind === 'slow') await delay(fault.delayMs);
    if (res.destroyed) return;

    try {
      if (fault?.kind === 'error') refuse(fault.status, fault.errorCode, fault.errorMessage);
      const { apiName: checked, clientKey } = checkDkmsRequest(req, headers, body, {
        hostName: this.hostName,
        maxClockSkewMs: this.maxClockSkewMs,
        clientKeys: this.clientKeys,
      });
      const answer = this.store.answer(checked, body, clientKey.policy, requestId);
      this.stats.succeeded[apiName] = (this.stats.succeeded[apiName] ?? 0) + 1;
      this.lastAnswer = { apiName, status: 200, errorCode: '', requestId };
      if (fault?.kind === 'truncate') {
        res.writeHead(200, {
          'Content-Type': CONTENT_TYPE,
          'Content-Length': String(answer.length),
          'x-kms-requestid': requestId,
        });
        droppedHere = true;
        res.write(answer.subarray(0, Math.floor(answer.length / 2)), () => req.socket.destroy());
        return;
      }
      sendProtobuf(res, 200, answer, requestId);
    } catch (error) {
      this.sendError(res, error, apiName, requestId);
    }
  }

  /** Everything the gateway checks, in its order, then the API itself. */
}
