import { apiMessageType, decodeApiMessage, encodeApiMessage } from '../server/api-codec';
import { TtrpcClient, type TtrpcCallOptions } from './ttrpc-client';

/**
 * The daemon's API over ttrpc, as the Kata agent and api-server-rest speak it. Only the wire of
 * protos/api.proto is used, so this works against upstream's CDH as well.
 */
export class CdhTtrpcClient {
  private readonly ttrpc: TtrpcClient;

  constructor(readonly address: string) {
    this.ttrpc = new TtrpcClient(address);
  }

  async unsealSecret(secret: Uint8Array, options?: TtrpcCallOptions): Promise<Buffer> {
    const answer = await this.invoke(
      'api.SealedSecretService',
      'UnsealSecret',
      'api.UnsealSecretInput',
      { secret },
      'api.UnsealSecretOutput',
      options,
    );
    return bytesField(answer, 'plaintext');
  }

  async getResource(resourcePath: string, options?: TtrpcCallOptions): Promise<Buffer> {
    const answer = await this.invoke(
      'api.GetResourceService',
      'GetResource',
      'api.GetResourceRequest',
      { ResourcePath: resourcePath },
      'api.GetResourceResponse',
      options,
    );
    return bytesField(answer, 'Resource');
  }

  /** PullImage: answers the platform manifest's digest. */
  async pullImage(imageUrl: string, bundlePath: string, options?: TtrpcCallOptions): Promise<string> {
    const answer = await this.invoke(
      'api.ImagePullService',
      'PullImage',
      'api.ImagePullRequest',
      { imageUrl, bundlePath },
      'api.ImagePullResponse',
      options,
    );
    return typeof answer['manifestDigest'] === 'string' ? answer['manifestDigest'] : '';
  }

  /** KeyProviderService.UnWrapKey (or WrapKey): the request JSON in, the answer JSON out. */
  async keyProviderCall(
    method: 'UnWrapKey' | 'WrapKey',
    request: Uint8Array,
    options?: TtrpcCallOptions,
  ): Promise<Buffer> {
    const answer = await this.invoke(
      'keyprovider.KeyProviderService',
      method,
      'keyprovider.KeyProviderKeyWrapProtocolInput',
      { KeyProviderKeyWrapProtocolInput: request },
      'keyprovider.KeyProviderKeyWrapProtocolOutput',
      options,
    );
    return bytesField(answer, 'KeyProviderKeyWrapProtocolOutput');
  }

  close(): void {
    this.ttrpc.close();
  }

  /** One call of any api.* method by its message type names (new methods need no new code here). */
  async invoke(
    service: string,
    method: string,
    requestType: string,
    request: object,
    responseType: string,
    options?: TtrpcCallOptions,
  ): Promise<Record<string, unknown>> {
    const payload = await this.ttrpc.call(
      service,
      method,
      encodeApiMessage(apiMessageType(requestType), request),
      options,
    );
    return decodeApiMessage(apiMessageType(responseType), payload);
  }
}

function bytesField(message: Record<string, unknown>, field: string): Buffer {
  const value = message[field];
  return Buffer.isBuffer(value) ? value : Buffer.alloc(0);
}
