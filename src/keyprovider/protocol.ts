import { decodeStandardBase64 } from '../lib/base64';
import { CdhError } from '../errors';
import { isJsonObject, jsonTypeOf, parseBoundedJson, type JsonObject } from './json';
import { MAX_PACKET_BYTES } from './packet';

/**
 * The JSON carried in KeyProviderKeyWrapProtocolInput/Output (ocicrypt's key-provider
 * protocol, as Go ocicrypt and ocicrypt-rs write it).
 */

/** The largest request accepted (the transports' own limit is 1 MiB by default too). */
export const MAX_REQUEST_BYTES = 1024 * 1024;
const MAX_PARAMETERS = 64;
const MAX_PARAMETER_VALUES = 64;

function invalid(message: string): CdhError {
  return new CdhError('KEYPROVIDER_REQUEST_INVALID', `key-provider request: ${message}`);
}

function parseRequest(bytes: Uint8Array, op: 'keywrap' | 'keyunwrap'): JsonObject {
  const parsed = parseBoundedJson(
    bytes,
    'key-provider request',
    MAX_REQUEST_BYTES,
    'KEYPROVIDER_REQUEST_INVALID',
  );
  if (!isJsonObject(parsed)) throw invalid(`it is ${jsonTypeOf(parsed)}, not a JSON object`);
  const given = parsed['op'];
  if (given === undefined) throw invalid('field "op" is missing');
  if (typeof given !== 'string') throw invalid(`field "op" is ${jsonTypeOf(given)}, not a string`);
  if (given !== op)
    throw invalid(`op ${JSON.stringify(given.slice(0, 32))} is not "${op}" (the operation of this method)`);
  for (const field of ['keywrapparams', 'keyunwrapparams']) {
    const value = parsed[field];
    // Both are required (as upstream parses them); the one the op does not use may be null.
    if (value === undefined) throw invalid(`field "${field}" is missing`);
    if (value !== null && !isJsonObject(value))
      throw invalid(`field "${field}" is ${jsonTypeOf(value)}, not an object`);
  }
  return parsed;
}

/** `{"Parameters": {"<name>": ["<b64>", ...]}}` or null; returns the Parameters. */
function parseConfig(value: unknown, field: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  if (value === undefined || value === null) return out;
  if (!isJsonObject(value)) throw invalid(`field "${field}" is ${jsonTypeOf(value)}, not an object`);
  const parameters = value['Parameters'];
  if (parameters === undefined) return out;
  if (!isJsonObject(parameters))
    throw invalid(`field "${field}.Parameters" is ${jsonTypeOf(parameters)}, not an object`);
  const entries = Object.entries(parameters);
  if (entries.length > MAX_PARAMETERS)
    throw invalid(`field "${field}.Parameters" has more than ${MAX_PARAMETERS} entries`);
  for (const [name, list] of entries) {
    const where = `${field}.Parameters.${JSON.stringify(name.slice(0, 64))}`;
    if (list === null) {
      out.set(name, []);
      continue;
    }
    if (
      !Array.isArray(list) ||
      list.length > MAX_PARAMETER_VALUES ||
      !list.every((v) => typeof v === 'string')
    )
      throw invalid(`${where} is not a list of at most ${MAX_PARAMETER_VALUES} base64 strings`);
    out.set(name, list as string[]);
  }
  return out;
}

/** A keyunwrap request: answers the annotation packet's bytes (base64-decoded). */
export function parseKeyUnwrapRequest(bytes: Uint8Array): Buffer {
  const request = parseRequest(bytes, 'keyunwrap');
  const params = request['keyunwrapparams'];
  if (!isJsonObject(params)) throw invalid('field "keyunwrapparams" is null');
  parseConfig(params['dc'], 'keyunwrapparams.dc');
  const annotation = params['annotation'];
  if (annotation === undefined || annotation === null)
    throw invalid('no annotation packet given (field "keyunwrapparams.annotation" is missing)');
  if (typeof annotation !== 'string')
    throw invalid(`field "keyunwrapparams.annotation" is ${jsonTypeOf(annotation)}, not a base64 string`);
  if (annotation.length > Math.ceil(MAX_PACKET_BYTES / 3) * 4)
    throw invalid(`field "keyunwrapparams.annotation" is longer than a ${MAX_PACKET_BYTES}-byte packet`);
  return decodeStandardBase64(
    annotation,
    'key-provider request: field "keyunwrapparams.annotation"',
    'KEYPROVIDER_REQUEST_INVALID',
  );
}

/** `{"keyunwrapresults":{"optsdata":[<bytes as integers>]}}`: what ocicrypt-rs (and Go) accept. */
export function encodeKeyUnwrapResults(optsdata: Uint8Array): Buffer {
  return Buffer.from(`{"keyunwrapresults":{"optsdata":[${Array.from(optsdata).join(',')}]}}`);
}

export interface KeyWrapRequest {
  /** The layer options JSON to wrap (the caller wipes it). */
  readonly optsdata: Buffer;
  /** ec.Parameters: provider name → values (base64 strings, as ocicrypt passes them). */
  readonly parameters: ReadonlyMap<string, string[]>;
}

/**
 * Layer options are ~200 bytes; this bound keeps any packet made from them well inside
 * MAX_PACKET_BYTES (base64 and the KMS's own framing included), so it unwraps in the guest.
 */
export const MAX_LAYER_OPTIONS_BYTES = 16 * 1024;

/**
 * A keywrap request. `optsdata` is base64 in Go ocicrypt's requests and the raw JSON text in
 * ocicrypt-rs's: text starting with `{` (or `[`) is taken as JSON, anything else must be
 * base64 (which never holds either). An integer array is accepted too. The options must be a JSON
 * object (ocicrypt's private layer options), as UnWrapKey checks after unwrapping.
 */
export function parseKeyWrapRequest(bytes: Uint8Array): KeyWrapRequest {
  const request = parseRequest(bytes, 'keywrap');
  const params = request['keywrapparams'];
  if (!isJsonObject(params)) throw invalid('field "keywrapparams" is null');
  const parameters = parseConfig(params['ec'], 'keywrapparams.ec');
  const data = optionsBytes(params['optsdata']);
  try {
    checkLayerOptions(data);
  } catch (error) {
    data.fill(0);
    throw error;
  }
  return { optsdata: data, parameters };
}

function optionsBytes(optsdata: unknown): Buffer {
  const field = 'field "keywrapparams.optsdata"';
  if (optsdata === undefined || optsdata === null) throw invalid(`${field} is missing`);
  if (typeof optsdata === 'string') {
    if (optsdata.length > Math.ceil(MAX_LAYER_OPTIONS_BYTES / 3) * 4 + 4)
      throw invalid(`${field} is longer than ${MAX_LAYER_OPTIONS_BYTES} bytes of layer options`);
    return /^\s*[[{]/.test(optsdata)
      ? Buffer.from(optsdata, 'utf8')
      : decodeStandardBase64(optsdata, `key-provider request: ${field}`, 'KEYPROVIDER_REQUEST_INVALID');
  }
  if (Array.isArray(optsdata) && optsdata.every((b) => Number.isInteger(b) && b >= 0 && b <= 255))
    return Buffer.from(optsdata as number[]);
  throw invalid(`${field} is ${jsonTypeOf(optsdata)}, not base64 or JSON text`);
}

/** The message names the field, never a byte of it: the options hold the layer key. */
function checkLayerOptions(data: Buffer): void {
  const field = 'field "keywrapparams.optsdata"';
  if (data.length === 0) throw invalid(`${field} is empty`);
  if (data.length > MAX_LAYER_OPTIONS_BYTES)
    throw invalid(`${field} is ${data.length} bytes, more than the ${MAX_LAYER_OPTIONS_BYTES} accepted`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(data)) as unknown;
  } catch {
    throw invalid(`${field} is not layer options JSON (neither base64 of JSON nor JSON text)`);
  }
  if (!isJsonObject(parsed))
    throw invalid(`${field} is ${jsonTypeOf(parsed)} in JSON, not the layer options object`);
}

/** `{"keywrapresults":{"annotation":[<bytes>]}}` (integers: Go and Rust ocicrypt both accept them). */
export function encodeKeyWrapResults(annotation: Uint8Array): Buffer {
  return Buffer.from(`{"keywrapresults":{"annotation":[${Array.from(annotation).join(',')}]}}`);
}

/** The keyunwrap request ocicrypt-rs sends for one packet (client side: cdh-tool, tests). */
export function buildKeyUnwrapRequest(packet: Uint8Array): Buffer {
  return Buffer.from(
    JSON.stringify({
      op: 'keyunwrap',
      keywrapparams: { ec: null, optsdata: null },
      keyunwrapparams: { dc: { Parameters: {} }, annotation: Buffer.from(packet).toString('base64') },
    }),
  );
}

/** The optsdata of a keyunwrapresults answer: an integer array (CDH) or base64 (Go providers). */
export function parseKeyUnwrapResults(bytes: Uint8Array): Buffer {
  const parsed = parseBoundedJson(
    bytes,
    'keyunwrap answer',
    MAX_REQUEST_BYTES,
    'KEYPROVIDER_REQUEST_INVALID',
  );
  const results = isJsonObject(parsed) ? parsed['keyunwrapresults'] : undefined;
  const optsdata = isJsonObject(results) ? results['optsdata'] : undefined;
  if (typeof optsdata === 'string')
    return decodeStandardBase64(optsdata, 'keyunwrap answer: optsdata', 'KEYPROVIDER_REQUEST_INVALID');
  if (Array.isArray(optsdata) && optsdata.every((b) => Number.isInteger(b) && b >= 0 && b <= 255))
    return Buffer.from(optsdata as number[]);
  throw new CdhError(
    'KEYPROVIDER_REQUEST_INVALID',
    'keyunwrap answer has no keyunwrapresults.optsdata bytes',
  );
}
