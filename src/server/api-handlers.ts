import { CdhError, type ErrorCode } from '../errors';
import type { CallContext } from '../providers/types';
import type {
  ApiBackend,
  ApiMethod,
  GetResourceRequest,
  GetResourceResponse,
  ImagePullRequest,
  ImagePullResponse,
  KeyProviderKeyWrapProtocolInput,
  KeyProviderKeyWrapProtocolOutput,
  UnsealSecretInput,
  UnsealSecretOutput,
} from './api';

/** Each method's request and answer, as the transports decode and encode them. */
export interface ApiMessages {
  'api.SealedSecretService/UnsealSecret': { request: UnsealSecretInput; response: UnsealSecretOutput };
  'api.GetResourceService/GetResource': { request: GetResourceRequest; response: GetResourceResponse };
  'api.SecureMountService/SecureMount': { request: object; response: object };
  'api.ImagePullService/PullImage': { request: ImagePullRequest; response: ImagePullResponse };
  'keyprovider.KeyProviderService/UnWrapKey': {
    request: KeyProviderKeyWrapProtocolInput;
    response: KeyProviderKeyWrapProtocolOutput;
  };
  'keyprovider.KeyProviderService/WrapKey': { request: object; response: object };
}

/** One method: its request checked into the typed message, then the domain call. */
export interface Handler<M extends ApiMethod> {
  parse(request: unknown): ApiMessages[M]['request'];
  handle(request: ApiMessages[M]['request'], ctx: CallContext): Promise<ApiMessages[M]['response']>;
}

export type ApiHandlers = { readonly [M in ApiMethod]: Handler<M> };

/** Runs `method`'s handler on an undecoded request (what the concerns wrap). */
export function runHandler<M extends ApiMethod>(
  handlers: ApiHandlers,
  method: M,
  request: unknown,
  ctx: CallContext,
): Promise<object> {
  const handler: Handler<M> = handlers[method];
  return handler.handle(handler.parse(request), ctx);
}

/** A method this daemon does not serve: refused before its request is looked at. */
function refused<M extends ApiMethod>(message: string): Handler<M> {
  const refusal = (): never => {
    throw new CdhError('NOT_IMPLEMENTED', message);
  };
  return { parse: refusal, handle: refusal };
}

/** The typed handlers over the domain operations (one per method). */
export function apiHandlers(backend: ApiBackend): ApiHandlers {
  const { pullImage, unwrapKey } = backend;
  return {
    'api.SealedSecretService/UnsealSecret': {
      parse: (request) => ({ secret: bytesField(request, 'secret') }),
      handle: async ({ secret }, ctx) => ({ plaintext: await backend.unsealSecret(secret, ctx) }),
    },
    'api.GetResourceService/GetResource': {
      parse: (request) => ({ ResourcePath: stringField(request, 'ResourcePath') }),
      handle: async ({ ResourcePath }, ctx) => ({ Resource: await backend.getResource(ResourcePath, ctx) }),
    },
    'api.SecureMountService/SecureMount': refused(
      'SecureMount is not part of this daemon (it unseals secrets and serves KBS resources only)',
    ),
    'api.ImagePullService/PullImage':
      pullImage === undefined
        ? refused('PullImage is not configured in this daemon')
        : {
            parse: (request) => ({
              imageUrl: stringField(request, 'imageUrl', 'IMAGE_REFERENCE_INVALID'),
              bundlePath: stringField(request, 'bundlePath', 'IMAGE_REFERENCE_INVALID'),
            }),
            handle: async (r, ctx) => ({
              manifestDigest: await pullImage.call(backend, r.imageUrl, r.bundlePath, ctx),
            }),
          },
    'keyprovider.KeyProviderService/UnWrapKey':
      unwrapKey === undefined
        ? refused('UnWrapKey is not configured in this daemon')
        : {
            parse: (request) => ({
              KeyProviderKeyWrapProtocolInput: bytesField(
                request,
                'KeyProviderKeyWrapProtocolInput',
                'KEYPROVIDER_REQUEST_INVALID',
              ),
            }),
            handle: async (r, ctx) => ({
              KeyProviderKeyWrapProtocolOutput: await unwrapKey.call(
                backend,
                r.KeyProviderKeyWrapProtocolInput,
                ctx,
              ),
            }),
          },
    'keyprovider.KeyProviderService/WrapKey': refused(
      'WrapKey is not served by the daemon in the guest (the sealing side is `secret keyprovider`)',
    ),
  };
}

function bytesField(
  request: unknown,
  field: string,
  code: ErrorCode = 'SEALED_SECRET_MALFORMED',
): Uint8Array {
  const value = (request as Record<string, unknown> | null)?.[field];
  if (value === undefined || value === null) return new Uint8Array(0);
  if (value instanceof Uint8Array) return value;
  throw new CdhError(code, `request field "${field}" must be bytes`);
}

function stringField(request: unknown, field: string, code: ErrorCode = 'RESOURCE_URI_INVALID'): string {
  const value = (request as Record<string, unknown> | null)?.[field];
  if (value === undefined || value === null) return '';
  if (typeof value === 'string') return value;
  throw new CdhError(code, `request field "${field}" must be a string`);
}
