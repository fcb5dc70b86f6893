import { createHash, verify, type KeyObject } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { DKMS_EMULATOR_API_NAMES, refuse, type ClientKeyPolicy, type DkmsEmulatorApiName } from './dkms-kms';

export interface ClientKeyEntry {
  readonly publicKey: KeyObject;
  readonly policy: ClientKeyPolicy;
}

/** What a request is checked against. */
export interface GatewayIdentity {
  readonly hostName: string;
  readonly maxClockSkewMs: number;
  readonly clientKeys: ReadonlyMap<string, ClientKeyEntry>;
}

const API_VERSION = 'dkms-gcs-0.2';
const SIGNATURE_METHOD = 'RSA_PKCS1_SHA_256';
export const CONTENT_TYPE = 'application/x-protobuf';
const RFC1123 =
  /^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d{2}:\d{2}:\d{2} GMT$/;

/** Everything the gateway checks, in its order: a GatewayError for the first that fails. */
export function checkDkmsRequest(
  req: IncomingMessage,
  headers: Record<string, string>,
  body: Buffer,
  gateway: GatewayIdentity,
): { apiName: DkmsEmulatorApiName; clientKey: ClientKeyEntry } {
  if (req.method !== 'POST' || req.url !== '/') {
    refuse(404, 'InvalidApiName', `The ApiName "${req.method} ${req.url}" is invalid.`);
  }
  if (headers['host'] !== gateway.hostName) refuse(400, 'InvalidParam', 'The Param Host is invalid.');
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
    refuse(400, 'InvalidParam', `The Param x-kms-signaturemethod is invalid. message:"${signatureMethod}".`);
  }
  const date = headers['date'] ?? '';
  const dateMs = Date.parse(date);
  if (!RFC1123.test(date) || Number.isNaN(dateMs)) refuse(400, 'InvalidParam', 'The Param Date is invalid.');
  if (Math.abs(Date.now() - dateMs) > gateway.maxClockSkewMs) {
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
  const clientKey = checkSignature(headers, clientKeyId, contentSha256, date, gateway);
  return { apiName: apiName as DkmsEmulatorApiName, clientKey };
}

/** The Authorization bearer: an RSA-SHA256 signature by the named client key over the canonical request. */
function checkSignature(
  headers: Record<string, string>,
  clientKeyId: string,
  contentSha256: string,
  date: string,
  gateway: GatewayIdentity,
): ClientKeyEntry {
  const authorization = headers['authorization'];
  if (authorization === undefined) refuse(400, 'MissingParameter', 'Parameter Authorization does not exist.');
  const bearer = /^Bearer ([A-Za-z0-9+/]+={0,2})$/.exec(authorization);
  if (!bearer) refuse(401, 'InvalidSignature', 'The Authorization header is malformed.');

  const clientKey = gateway.clientKeys.get(clientKeyId);
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

  return clientKey;
}

/** The x-kms-* headers, sorted by name, each `name:value\n` (value trimmed). */
function canonicalKmsHeaders(headers: Record<string, string>): string {
  return Object.keys(headers)
    .filter((name) => name.startsWith('x-kms-'))
    .sort()
    .map((name) => `${name}:${(headers[name] ?? '').trim()}\n`)
    .join('');
}
