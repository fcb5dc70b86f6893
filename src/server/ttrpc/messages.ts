import type { ApiMethod } from '../api';
import { apiMethodCodecs, type MethodCodec } from '../api-codec';

export { apiMessageType, decodeApiMessage, encodeApiMessage } from '../api-codec';

export {
  decodeRequestEnvelope,
  decodeResponseEnvelope,
  encodeRequestEnvelope,
  encodeResponseEnvelope,
  type TtrpcRequest,
  type TtrpcRequestInit,
  type TtrpcResponse,
  type TtrpcStatus,
} from './envelopes';

/** How one API method is decoded and encoded. */
export interface ApiRoute extends MethodCodec {
  readonly method: ApiMethod;
}

/** `api.SealedSecretService/UnsealSecret` → its route, for every method of the API. */
export function apiRoutes(): ReadonlyMap<string, ApiRoute> {
  const routes = new Map<string, ApiRoute>();
  for (const [method, codec] of apiMethodCodecs()) routes.set(method, { method, ...codec });
  return routes;
}
