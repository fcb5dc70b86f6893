/**
 * The catalogue of every failure the daemon can report.
 *
 * Domain code throws `CdhError(code, message)`; the transport maps `code` to a
 * status in exactly one place (src/server/status.ts). Status names are the gRPC
 * canonical codes, kept as plain strings here so the domain never imports gRPC.
 *
 * Messages say what failed and where (provider, key id, field, KMS request id)
 * and must never carry plaintext, keys, passwords or tokens.
 */

import type { StatusName } from './status-names';

export { STATUS_NUMBER, type StatusName } from './status-names';

interface CatalogueEntry {
  readonly status: StatusName;
  /** What this class of failure means, for docs and `--help` style listings. */
  readonly meaning: string;
}

export const ERROR_CATALOGUE = {
  // Input: the sealed secret or request itself is wrong.
  SEALED_SECRET_MALFORMED: {
    status: 'INVALID_ARGUMENT',
    meaning: 'the input is not a well-formed sealed secret (JWS form, base64, UTF-8, JSON)',
  },
  PAYLOAD_INVALID: {
    status: 'INVALID_ARGUMENT',
    meaning: 'a payload field is missing, of the wrong type or has an unsupported value',
  },
  DATA_KEY_INVALID: {
    status: 'INVALID_ARGUMENT',
    meaning: 'the data key unwrapped from encrypted_key has the wrong length',
  },
  RESOURCE_URI_INVALID: {
    status: 'INVALID_ARGUMENT',
    meaning: 'a resource URI is not of the form kbs://<host>/<repo>/<type>/<tag>',
  },
  PROVIDER_UNKNOWN: { status: 'INVALID_ARGUMENT', meaning: 'no provider of that name is registered' },
  PROVIDER_CAPABILITY_MISSING: {
    status: 'INVALID_ARGUMENT',
    meaning: 'the provider (or its client type) cannot perform that operation',
  },
  PROVIDER_SETTINGS_INVALID: {
    status: 'INVALID_ARGUMENT',
    meaning: 'provider_settings or annotations are missing a field or hold a bad value',
  },

  KEYPROVIDER_REQUEST_INVALID: {
    status: 'INVALID_ARGUMENT',
    meaning:
      'a key-provider request (keyunwrap / keywrap JSON) is not JSON of the expected shape: the field is named',
  },
  ANNOTATION_PACKET_INVALID: {
    status: 'INVALID_ARGUMENT',
    meaning:
      'an ocicrypt annotation packet is malformed: a field missing or of the wrong type, bad base64, unknown version or wrap_type, wrong IV length',
  },

  // Integrity.
  SIGNATURE_INVALID: {
    status: 'PERMISSION_DENIED',
    meaning: 'the JWS signature does not verify, or its header is not acceptable',
  },
  SIGNING_KEY_UNAVAILABLE: {
    status: 'PERMISSION_DENIED',
    meaning: 'the JWS kid names no usable key (unknown, unreadable, escaping the key dir)',
  },
  DECRYPTION_FAILED: {
    status: 'DATA_LOSS',
    meaning: 'AEAD authentication failed (tampered data, wrong key or IV)',
  },

  // Local state.
  PROVIDER_NOT_CONFIGURED: {
    status: 'FAILED_PRECONDITION',
    meaning: 'the provider needs configuration this daemon does not have',
  },
  CREDENTIAL_UNAVAILABLE: {
    status: 'FAILED_PRECONDITION',
    meaning: 'a local credential file is missing, unreadable or malformed',
  },
  KBC_RESOURCES_INVALID: {
    status: 'FAILED_PRECONDITION',
    meaning: 'an offline_fs KBC resource file is unreadable or malformed (not JSON, not strings, bad base64)',
  },
  CREDENTIAL_PROVISIONING_FAILED: {
    status: 'FAILED_PRECONDITION',
    meaning:
      'a [[credentials]] entry could not be provisioned (path outside credentials_root, fetch or write failed)',
  },

  // The KMS and other remote services.
  KMS_ACCESS_DENIED: {
    status: 'PERMISSION_DENIED',
    meaning: 'the KMS refused the credentials presented',
  },
  KMS_NOT_FOUND: {
    status: 'NOT_FOUND',
    meaning: 'the KMS key, secret or secret version does not exist',
  },
  KMS_REQUEST_REJECTED: {
    status: 'INVALID_ARGUMENT',
    meaning: 'the KMS rejected the request as invalid (for example a tampered encrypted_key)',
  },
  KMS_UNAVAILABLE: {
    status: 'UNAVAILABLE',
    meaning: 'the KMS or metadata service is unreachable, timed out or failing',
  },
  KMS_TLS_FAILED: {
    status: 'UNAVAILABLE',
    meaning: 'the TLS handshake with the KMS failed (untrusted certificate, wrong host name)',
  },
  KMS_FAILED: {
    status: 'FAILED_PRECONDITION',
    meaning: 'the KMS answered with an error this daemon has no closer mapping for',
  },
  RESOURCE_NOT_FOUND: { status: 'NOT_FOUND', meaning: 'the KBS resource does not exist' },
  AA_UNAVAILABLE: {
    status: 'UNAVAILABLE',
    meaning:
      'the attestation agent is unreachable, timed out, failed, or answered GetToken with no usable token and TEE key',
  },
  KBS_UNAVAILABLE: {
    status: 'UNAVAILABLE',
    meaning: 'the KBS is unreachable, timed out, failed the TLS handshake or answered 5xx',
  },
  KBS_UNAUTHORIZED: {
    status: 'PERMISSION_DENIED',
    meaning: 'the KBS refused the request: 401 with a fresh token (attempts exhausted) or 403',
  },
  KBS_REQUEST_FAILED: {
    status: 'FAILED_PRECONDITION',
    meaning: 'the KBS answered with an error status this daemon has no closer mapping for (4xx)',
  },
  KBS_ANSWER_UNDECRYPTABLE: {
    status: 'DATA_LOSS',
    meaning: 'the KBS answer is not a JWE that decrypts and authenticates with the TEE key',
  },

  // Image pulling (PullImage): each message names the image reference and, for a layer, its digest.
  IMAGE_REFERENCE_INVALID: {
    status: 'INVALID_ARGUMENT',
    meaning: 'image_url is not a docker-style image reference, or bundle_path is not an absolute path',
  },
  IMAGE_NOT_FOUND: {
    status: 'NOT_FOUND',
    meaning: 'the registry has no such repository, tag or digest, or no manifest for this platform',
  },
  IMAGE_REGISTRY_DENIED: {
    status: 'PERMISSION_DENIED',
    meaning:
      'the registry (or its token service) refused the credentials, or a registry rule blocks the image',
  },
  IMAGE_REGISTRY_UNAVAILABLE: {
    status: 'UNAVAILABLE',
    meaning: 'the registry is unreachable, timed out, failed TLS or answered 5xx',
  },
  IMAGE_REGISTRY_FAILED: {
    status: 'FAILED_PRECONDITION',
    meaning: 'the registry answered an error this daemon has no closer mapping for (its code is quoted)',
  },
  IMAGE_DIGEST_MISMATCH: {
    status: 'DATA_LOSS',
    meaning: "a manifest, config or layer does not match its digest, or a layer's diff_id",
  },
  IMAGE_MANIFEST_INVALID: {
    status: 'DATA_LOSS',
    meaning: 'a manifest or image config is not valid JSON of the expected shape, or is inconsistent',
  },
  IMAGE_LAYER_INVALID: {
    status: 'DATA_LOSS',
    meaning:
      'a layer cannot be unpacked: bad compression, bad tar, or an entry that would write outside the layer',
  },
  IMAGE_LAYER_AUTH_FAILED: {
    status: 'DATA_LOSS',
    meaning: "an encrypted layer's HMAC does not match its ciphertext (tampered layer or wrong key)",
  },
  IMAGE_LAYER_KEY_UNAVAILABLE: {
    status: 'FAILED_PRECONDITION',
    meaning: 'an encrypted layer has no provider.attestation-agent key packet (or no unwrapper)',
  },
  IMAGE_LAYER_OPTIONS_INVALID: {
    status: 'DATA_LOSS',
    meaning: "an encrypted layer's pubopts, packet list or unwrapped options are malformed",
  },
  IMAGE_UNSUPPORTED: {
    status: 'FAILED_PRECONDITION',
    meaning: 'the image uses a format or feature this daemon does not support (named in the message)',
  },
  IMAGE_POLICY_REJECTED: {
    status: 'PERMISSION_DENIED',
    meaning: 'the image security policy rejects the image (reject, missing or bad signature)',
  },
  IMAGE_SETTINGS_INVALID: {
    status: 'FAILED_PRECONDITION',
    meaning:
      'an [image] resource (policy, auth.json, registry config, sigstore config) is unreadable or malformed',
  },
  IMAGE_BUNDLE_IN_USE: {
    status: 'FAILED_PRECONDITION',
    meaning: 'bundle_path already holds a mounted rootfs or a config.json (checked before mounting)',
  },
  IMAGE_MOUNT_FAILED: {
    status: 'FAILED_PRECONDITION',
    meaning: 'the overlay rootfs could not be mounted or the layer store could not be written',
  },
  IMAGE_USER_UNKNOWN: {
    status: 'FAILED_PRECONDITION',
    meaning:
      "the image config's User names a user or group missing from the image's /etc/passwd or /etc/group (or these are unreadable)",
  },
  IMAGE_MEASUREMENT_FAILED: {
    status: 'UNAVAILABLE',
    meaning: 'the attestation agent did not record the pull (ExtendRuntimeMeasurement failed)',
  },

  // Transport and lifecycle.
  REQUEST_TOO_LARGE: {
    status: 'RESOURCE_EXHAUSTED',
    meaning: 'the request is larger than max_message_bytes',
  },
  REQUEST_MALFORMED: {
    status: 'INVALID_ARGUMENT',
    meaning: "the request is not a valid protobuf message of the method's input type",
  },
  RESPONSE_TOO_LARGE: {
    status: 'RESOURCE_EXHAUSTED',
    meaning: 'the answer does not fit in one ttrpc frame (4 MiB)',
  },
  TOO_MANY_IN_FLIGHT: {
    status: 'RESOURCE_EXHAUSTED',
    meaning: 'more calls are in flight than max_in_flight allows',
  },
  DEADLINE_EXCEEDED: {
    status: 'DEADLINE_EXCEEDED',
    meaning: "the caller's deadline passed before the answer was ready",
  },
  CANCELLED: { status: 'CANCELLED', meaning: 'the caller cancelled the call' },
  SHUTTING_DOWN: { status: 'UNAVAILABLE', meaning: 'the daemon is shutting down' },
  NOT_IMPLEMENTED: { status: 'UNIMPLEMENTED', meaning: 'the service is not part of this daemon' },
  INTERNAL: { status: 'INTERNAL', meaning: 'an unexpected failure (a bug): see the daemon log' },
} as const satisfies Record<string, CatalogueEntry>;

export type ErrorCode = keyof typeof ERROR_CATALOGUE;

export interface CdhErrorOptions {
  /** The underlying failure; logged, never put in a status message. */
  cause?: unknown;
}

export class CdhError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options: CdhErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'CdhError';
    this.code = code;
  }

  get status(): StatusName {
    return ERROR_CATALOGUE[this.code].status;
  }
}

export function isCdhError(value: unknown): value is CdhError {
  return value instanceof CdhError;
}

/** Wraps anything thrown into a catalogued error; unknown failures become INTERNAL. */
export function toCdhError(value: unknown): CdhError {
  if (value instanceof CdhError) return value;
  return new CdhError('INTERNAL', 'internal error', { cause: value });
}
