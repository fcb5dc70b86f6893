import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createPublicKey,
  randomBytes,
  randomUUID,
  verify,
  type KeyObject,
} from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import * as https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import {
  decodeDkms,
  encodeDkms,
  type DecryptRequest,
  type DkmsMessageName,
  type DkmsMessages,
  type EncryptRequest,
  type GetSecretValueRequest,
} from '../../providers/aliyun/client-key/dkms-messages';
import { createTestCa, type TestCa } from '../pki';
import { listenOnLoopback } from '../listen';

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

export const DKMS_EMULATOR_API_NAMES = ['Encrypt', 'Decrypt', 'GetSecretValue'] as const;
export type DkmsEmulatorApiName = (typeof DKMS_EMULATOR_API_NAMES)[number];

export interface DkmsEmulatorOptions {
  readonly instanceId: string;
  /** Issues the server certificate (default: a fresh test CA). */
  readonly ca?: TestCa;
  /** DNS names in the server certificate (default: the instance host name only). */
  readonly serverHostNames?: readonly string[];
  /** Largest accepted difference between the request date and now (default 15 min, as the gateway). */
  readonly maxClockSkewMs?: number;
}

export interface ClientKeyPolicy {
  /** Key ids this client key may use (default: all). */
  readonly allowedKeyIds?: readonly string[];
  /** Secret names this client key may read (default: all). */
  readonly allowedSecretNames?: readonly string[];
}

export type DkmsFault =
  | {
      readonly kind: 'error';
      readonly status: number;
      readonly errorCode: string;
      readonly errorMessage: string;
    }
  /** Read the request, never answer (until the emulator closes). */
  | { readonly kind: 'hang' }
  /** Destroy the connection once the request has arrived. */
  | { readonly kind: 'reset' }
  /** Answer normally after a delay. */
  | { readonly kind: 'slow'; readonly delayMs: number }
  /** Send the status line, headers and half the body of a normal answer, then destroy the connection. */
  | { readonly kind: 'truncate' };

export interface DkmsEmulatorStats {
  /** TCP connections accepted. */
  tcpConnections: number;
  /** TLS handshakes completed. */
  tlsConnections: number;
  /** TLS handshakes that failed (client refused the certificate, …). */
  tlsFailures: number;
  /** Requests received, by x-kms-apiname (unknown names under their own value). */
  requests: Record<string, number>;
  /** Successful answers, by API name. */
  succeeded: Record<string, number>;
  /** Error answers, by ErrorCode. */
  errors: Record<string, number>;
  /** Requests whose client went away (connection closed, request aborted) before the answer was sent. */
  abandoned: number;
  /** Requests failed by `failRatio` (not counted in `errors`' injected entries twice). */
  ratioFailures: number;
}

export interface EmulatorAnswer {
  readonly apiName: string;
  readonly status: number;
  /** '' on success. */
  readonly errorCode: string;
  readonly requestId: string;
}

interface SecretVersion {
  readonly versionId: string;
  readonly data: string;
  readonly stages: Set<string>;
  readonly createTime: string;
}

interface ClientKeyEntry {
  readonly publicKey: KeyObject;
  readonly policy: ClientKeyPolicy;
}

interface ErrorAnswer {
  readonly status: number;
  readonly errorCode: string;
  readonly errorMessage: string;
}

const API_VERSION = 'dkms-gcs-0.2';
const SIGNATURE_METHOD = 'RSA_PKCS1_SHA_256';
const CONTENT_TYPE = 'application/x-protobuf';
const GCM_IV_BYTES = 12;
const GCM_TAG_BYTES = 16;
/** The gateway's limit on Encrypt plaintext. */
const MAX_PLAINTEXT_BYTES = 6144;
const MAX_BODY_BYTES = 1024 * 1024;
const RFC1123 =
  /^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d{2}:\d{2}:\d{2} GMT$/;

class GatewayError extends Error {
  constructor(readonly answer: ErrorAnswer) {
    super(answer.errorMessage);
  }
}

function refuse(status: number, errorCode: string, errorMessage: string): never {
  throw new GatewayError({ status, errorCode, errorMessage });
}

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
  private readonly masterKeys = new Map<string, Buffer>();
  private readonly secrets = new Map<string, SecretVersion[]>();
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
  addKey(keyId = `key-${randomBytes(8).toString('hex')}`): string {
    this.masterKeys.set(keyId, randomBytes(32));
    return keyId;
  }

  /**
   * Adds a version of a secret (created if new). A version marked ACSCurrent takes that stage
   * from the previous current version, which becomes ACSPrevious (as a rotation does).
   */
  putSecretVersion(
    name: string,
    versionId: string,
    data: string,
    stages: readonly string[] = ['ACSCurrent'],
  ): void {
    const versions = this.secrets.get(name) ?? [];
    if (stages.includes('ACSCurrent')) {
      for (const version of versions) {
        if (version.stages.delete('ACSCurrent')) {
          for (const other of versions) other.stages.delete('ACSPrevious');
          version.stages.add('ACSPrevious');
        }
      }
    }
    for (const stage of stages) for (const version of versions) version.stages.delete(stage);
    versions.push({ versionId, data, stages: new Set(stages), createTime: new Date().toISOString() });
    this.secrets.set(name, versions);
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
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.port, '127.0.0.1', () => {
        this.server.off('error', reject);
        resolve();
      });
    });
  }

  resetStats(): void {
    Object.assign(this.stats, emptyStats());
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
      body = await readBody(req);
    } catch {
      req.socket.destroy();
      return;
    }

    // The client gave up before the answer went out (its deadline passed, it was cancelled).
    let droppedHere = false;
    res.on('close', () => {
      if (!res.writableEnded && !droppedHere && !this.dropping) this.stats.abandoned++;
    });

    let fault = this.faults.shift();
    if (fault === undefined && this.ratioFault !== undefined) {
      const { ratio, random, status } = this.ratioFault;
      if (random() < ratio) {
        this.stats.ratioFailures++;
        fault = { kind: 'error', status, errorCode: 'InternalFailure', errorMessage: 'injected failure' };
      }
    }
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
      const answer = this.process(req, headers, body, requestId);
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
      send(res, 200, answer, requestId);
    } catch (error) {
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
      send(res, answer.status, errorBody, requestId);
    }
  }

  /** Everything the gateway checks, in its order, then the API itself. */
  private process(
    req: IncomingMessage,
    headers: Record<string, string>,
    body: Buffer,
    requestId: string,
  ): Buffer {
    if (req.method !== 'POST' || req.url !== '/') {
      refuse(404, 'InvalidApiName', `The ApiName "${req.method} ${req.url}" is invalid.`);
    }
    if (headers['host'] !== this.hostName) refuse(400, 'InvalidParam', 'The Param Host is invalid.');
    const apiVersion = headers['x-kms-apiversion'] ?? '';
    if (apiVersion !== API_VERSION)
      refuse(400, 'InvalidApiVersion', `The ApiVersion "${apiVersion}" is invalid.`);
    const apiName = headers['x-kms-apiname'] ?? '';
    if (!(DKMS_EMULATOR_API_NAMES as readonly string[]).includes(apiName)) {
      refuse(400, 'InvalidApiName', `The ApiName "${apiName}" is invalid.`);
    }
    const signatureMethod = headers['x-kms-signaturemethod'];
    if (signatureMethod === undefined)
      refuse(400, 'InvalidParam', 'The Param x-kms-signaturemethod is invalid.');
    if (signatureMethod !== SIGNATURE_METHOD) {
      refuse(
        400,
        'InvalidParam',
        `The Param x-kms-signaturemethod is invalid. message:"${signatureMethod}".`,
      );
    }
    const date = headers['date'] ?? '';
    const dateMs = Date.parse(date);
    if (!RFC1123.test(date) || Number.isNaN(dateMs))
      refuse(400, 'InvalidParam', 'The Param Date is invalid.');
    if (Math.abs(Date.now() - dateMs) > this.maxClockSkewMs) {
      refuse(400, 'RequestTimeTooSkewed', 'Request time exceeds server time more than 15 minutes.');
    }
    const clientKeyId = headers['x-kms-acccesskeyid'];
    if (!clientKeyId) {
      refuse(400, 'MissingParameter', 'Parameter x-kms-acccesskeyid does not exist in http header or body.');
    }
    if (headers['content-type'] !== CONTENT_TYPE)
      refuse(400, 'InvalidParam', 'The Param Content-Type is invalid.');
    const contentSha256 = headers['content-sha256'] ?? '';
    if (contentSha256 !== createHash('sha256').update(body).digest('hex').toUpperCase()) {
      refuse(400, 'InvalidParam', 'The Param Content-Sha256 is invalid.');
    }
    const authorization = headers['authorization'];
    if (authorization === undefined)
      refuse(400, 'MissingParameter', 'Parameter Authorization does not exist.');
    const bearer = /^Bearer ([A-Za-z0-9+/]+={0,2})$/.exec(authorization);
    if (!bearer) refuse(401, 'InvalidSignature', 'The Authorization header is malformed.');

    const clientKey = this.clientKeys.get(clientKeyId);
    if (clientKey === undefined) {
      refuse(401, 'InvalidAccessKeyId.NotFound', `The specified AccessKeyId "${clientKeyId}" is not found.`);
    }
    const stringToSign = `POST\n${contentSha256}\n${CONTENT_TYPE}\n${date}\n${canonicalKmsHeaders(headers)}/`;
    const signatureValid = verify(
      'sha256',
      Buffer.from(stringToSign, 'utf8'),
      clientKey.publicKey,
      Buffer.from(bearer[1] as string, 'base64'),
    );
    if (!signatureValid) {
      refuse(
        401,
        'InvalidSignature',
        'The request signature does not match the signature calculated by the server.',
      );
    }

    switch (apiName as DkmsEmulatorApiName) {
      case 'Encrypt':
        return this.encrypt(decodeRequest('EncryptRequest', body), clientKey.policy, requestId);
      case 'Decrypt':
        return this.decrypt(decodeRequest('DecryptRequest', body), clientKey.policy, requestId);
      case 'GetSecretValue':
        return this.getSecretValue(decodeRequest('GetSecretValueRequest', body), clientKey.policy, requestId);
    }
  }

  private masterKey(keyId: string, policy: ClientKeyPolicy): Buffer {
    if (!keyId) refuse(400, 'MissingParameter', 'The parameter KeyId is missing.');
    const key = this.masterKeys.get(keyId);
    if (key === undefined) refuse(404, 'Forbidden.KeyNotFound', `The specified Key "${keyId}" is not found.`);
    if (policy.allowedKeyIds !== undefined && !policy.allowedKeyIds.includes(keyId)) {
      refuse(403, 'Forbidden.NoPermission', 'This operation is forbidden by the client key policy.');
    }
    return key;
  }

  private encrypt(request: EncryptRequest, policy: ClientKeyPolicy, requestId: string): Buffer {
    const key = this.masterKey(request.KeyId, policy);
    if (request.Algorithm !== 'AES_GCM')
      refuse(400, 'InvalidParameter', 'The parameter Algorithm is invalid.');
    if (request.Plaintext.length === 0 || request.Plaintext.length > MAX_PLAINTEXT_BYTES) {
      refuse(400, 'InvalidParameter', 'The parameter Plaintext is invalid.');
    }
    if (request.Iv.length !== 0 && request.Iv.length !== GCM_IV_BYTES) {
      refuse(400, 'InvalidParameter', 'The parameter Iv is invalid.');
    }
    const iv = request.Iv.length === GCM_IV_BYTES ? request.Iv : randomBytes(GCM_IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', key, iv);
    cipher.setAAD(request.Aad);
    // The blob carries ciphertext and tag; KeyId, Iv and Aad come with the Decrypt request.
    const blob = Buffer.concat([cipher.update(request.Plaintext), cipher.final(), cipher.getAuthTag()]);
    return encodeDkms('EncryptResponse', {
      KeyId: request.KeyId,
      CiphertextBlob: blob,
      Iv: iv,
      RequestId: requestId,
      Algorithm: 'AES_GCM',
      PaddingMode: '',
    });
  }

  private decrypt(request: DecryptRequest, policy: ClientKeyPolicy, requestId: string): Buffer {
    const key = this.masterKey(request.KeyId, policy);
    if (request.Algorithm !== 'AES_GCM')
      refuse(400, 'InvalidParameter', 'The parameter Algorithm is invalid.');
    if (request.Iv.length !== GCM_IV_BYTES) refuse(400, 'InvalidParameter', 'The parameter Iv is invalid.');
    const blob = request.CiphertextBlob;
    if (blob.length <= GCM_TAG_BYTES)
      refuse(400, 'InvalidParameter', 'The parameter CiphertextBlob is invalid.');
    let plaintext: Buffer;
    try {
      const decipher = createDecipheriv('aes-256-gcm', key, request.Iv);
      decipher.setAAD(request.Aad);
      decipher.setAuthTag(blob.subarray(blob.length - GCM_TAG_BYTES));
      plaintext = Buffer.concat([
        decipher.update(blob.subarray(0, blob.length - GCM_TAG_BYTES)),
        decipher.final(),
      ]);
    } catch {
      refuse(400, 'InvalidParameter', 'The parameter CiphertextBlob is invalid: decryption failed.');
    }
    return encodeDkms('DecryptResponse', {
      KeyId: request.KeyId,
      Plaintext: plaintext,
      RequestId: requestId,
      Algorithm: 'AES_GCM',
      PaddingMode: '',
    });
  }

  private getSecretValue(request: GetSecretValueRequest, policy: ClientKeyPolicy, requestId: string): Buffer {
    if (!request.SecretName) refuse(400, 'MissingParameter', 'The parameter SecretName is missing.');
    const versions = this.secrets.get(request.SecretName);
    if (versions === undefined) {
      refuse(404, 'Forbidden.ResourceNotFound', `The secret "${request.SecretName}" is not found.`);
    }
    if (policy.allowedSecretNames !== undefined && !policy.allowedSecretNames.includes(request.SecretName)) {
      refuse(403, 'Forbidden.NoPermission', 'This operation is forbidden by the client key policy.');
    }
    const stage = request.VersionStage || (request.VersionId ? '' : 'ACSCurrent');
    const version = versions.find(
      (candidate) =>
        (!request.VersionId || candidate.versionId === request.VersionId) &&
        (!stage || candidate.stages.has(stage)),
    );
    if (version === undefined) {
      refuse(404, 'Forbidden.ResourceNotFound', 'The specified secret version is not found.');
    }
    return encodeDkms('GetSecretValueResponse', {
      SecretName: request.SecretName,
      SecretType: 'Generic',
      SecretData: version.data,
      SecretDataType: 'text',
      VersionStages: [...version.stages],
      VersionId: version.versionId,
      CreateTime: version.createTime,
      RequestId: requestId,
      ExtendedConfig: request.FetchExtendedConfig ? '{}' : '',
      AutomaticRotation: 'Disabled',
    });
  }
}

function emptyStats(): DkmsEmulatorStats {
  return {
    tcpConnections: 0,
    tlsConnections: 0,
    tlsFailures: 0,
    requests: {},
    succeeded: {},
    errors: {},
    abandoned: 0,
    ratioFailures: 0,
  };
}

/** mulberry32: a small seeded PRNG, so fault patterns repeat from run to run. */
function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function decodeRequest<N extends DkmsMessageName>(name: N, body: Buffer): DkmsMessages[N] {
  try {
    return decodeDkms(name, body);
  } catch {
    refuse(400, 'InvalidParameter', 'The request body is not a valid protobuf message.');
  }
}

/** The x-kms-* headers, sorted by name, each `name:value\n` (value trimmed). */
function canonicalKmsHeaders(headers: Record<string, string>): string {
  return Object.keys(headers)
    .filter((name) => name.startsWith('x-kms-'))
    .sort()
    .map((name) => `${name}:${(headers[name] ?? '').trim()}\n`)
    .join('');
}

function flattenHeaders(req: IncomingMessage): Record<string, string> {
  const flat: Record<string, string> = {};
  for (const [name, value] of Object.entries(req.headers)) {
    if (value !== undefined) flat[name] = Array.isArray(value) ? value.join(', ') : value;
  }
  return flat;
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) reject(new Error('body too large'));
      else chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function send(res: ServerResponse, status: number, body: Buffer, requestId: string): void {
  if (res.destroyed) return;
  res.writeHead(status, {
    'Content-Type': CONTENT_TYPE,
    'Content-Length': String(body.length),
    'x-kms-requestid': requestId,
  });
  res.end(body);
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
