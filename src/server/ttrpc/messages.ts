import { API_METHODS, type ApiMethod } from '../api';
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
  const codecs = apiMethodCodecs();
  const routes = new Map<string, ApiRoute>();
  for (const method of API_METHODS) {
    const codec = codecs.get(method);
    if (codec === undefined) throw new Error(`protos/ has no method ${method}`);
    routes.set(method, { method, ...codec });
  }
  return routes;
}
