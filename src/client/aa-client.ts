import type { MessageInitShape, MessageShape } from '@bufbuild/protobuf';
import type * as AaProto from '../gen/attestation-agent_pb';
import { atFirstUse } from '../lib/first-use';
import { bufferView } from '../lib/bytes';
import { protobuf } from '../lib/protobuf';
import { TtrpcClient, type TtrpcCallOptions } from './ttrpc-client';

/**
 * A client of the attestation agent's ttrpc socket (protos/attestation-agent.proto): what the
 * cc_kbc KBC (GetToken), the image pull (ExtendRuntimeMeasurement) and the REST front (evidence,
 * token, TEE type) ask of it. Failures are TtrpcCallErrors; callers turn them into their own
 * catalogued errors (they know which resource or image the call was for). Messages are the types
 * generated from the proto into src/gen.
 */

export const DEFAULT_AA_SOCKET =
  'unix:///run/confidential-containers/attestation-agent/attestation-agent.sock';
export const AA_SERVICE = 'attestation_agent.AttestationAgentService';

export type RuntimeMeasurementResult = 'OK' | 'NOT_SUPPORTED' | 'NOT_ENABLED';

export interface RuntimeMeasurementEvent {
  readonly domain: string;
  readonly operation: string;
  readonly content: string;
  readonly registerIndex?: number;
}

type AaMethods = (typeof AaProto.AttestationAgentService)['method'];
export type AaMethodName = keyof AaMethods;

/**
 * The generated AA types, required at the first call: cc_kbc builds its client at start-up but
 * asks for a token only when a resource is wanted, and the image pull and REST front later still.
 */
const proto = atFirstUse(
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  () => require('../gen/attestation-agent_pb') as typeof AaProto,
);

export class AttestationAgentClient {
  private readonly ttrpc: TtrpcClient;

  constructor(readonly address: string = DEFAULT_AA_SOCKET) {
    this.ttrpc = new TtrpcClient(address);
  }

  /** GetToken: for "kbs", UTF-8 JSON `{"token", "tee_keypair"}` (secret: never log it). */
  async getToken(tokenType: string, options?: TtrpcCallOptions): Promise<Buffer> {
    const answer = await this.invoke('getToken', { TokenType: tokenType }, options);
    return bufferView(answer.Token);
  }

  async getEvidence(runtimeData: Uint8Array, options?: TtrpcCallOptions): Promise<Buffer> {
    const answer = await this.invoke('getEvidence', { RuntimeData: runtimeData }, options);
    return bufferView(answer.Evidence);
  }

  async getAdditionalEvidence(runtimeData: Uint8Array, options?: TtrpcCallOptions): Promise<Buffer> {
    const answer = await this.invoke('getAdditionalEvidence', { RuntimeData: runtimeData }, options);
    return bufferView(answer.Evidence);
  }

  async getTeeType(options?: TtrpcCallOptions): Promise<string> {
    const answer = await this.invoke('getTeeType', {}, options);
    return answer.tee;
  }

  async getAdditionalTees(options?: TtrpcCallOptions): Promise<string[]> {
    const answer = await this.invoke('getAdditionalTees', {}, options);
    return answer.additionalTees;
  }

  async extendRuntimeMeasurement(
    event: RuntimeMeasurementEvent,
    options?: TtrpcCallOptions,
  ): Promise<RuntimeMeasurementResult> {
    const answer = await this.invoke(
      'extendRuntimeMeasurement',
      {
        Domain: event.domain,
        Operation: event.operation,
        Content: event.content,
        ...(event.registerIndex === undefined ? {} : { RegisterIndex: BigInt(event.registerIndex) }),
      },
      options,
    );
    const { RuntimeMeasurementResult: MeasurementResult } = proto();
    if (answer.Result === MeasurementResult.NOT_SUPPORTED) return 'NOT_SUPPORTED';
    if (answer.Result === MeasurementResult.NOT_ENABLED) return 'NOT_ENABLED';
    return 'OK';
  }

  close(): void {
    this.ttrpc.close();
  }

  private async invoke<M extends AaMethodName>(
    name: M,
    request: MessageInitShape<AaMethods[M]['input']>,
    options?: TtrpcCallOptions,
  ): Promise<MessageShape<AaMethods[M]['output']>> {
    const { create, fromBinary, toBinary } = protobuf();
    const method: AaMethods[AaMethodName] = proto().AttestationAgentService.method[name];
    const input = toBinary(
      method.input,
      create(method.input, request as MessageInitShape<typeof method.input>),
    );
    const payload = await this.ttrpc.call(AA_SERVICE, method.name, input, options);
    return fromBinary(method.output, payload) as MessageShape<AaMethods[M]['output']>;
  }
}
