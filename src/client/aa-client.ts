import * as protobuf from 'protobufjs';
import { PROTOS_DIR } from '../package-info';
import { loadProtos } from '../server/ttrpc/protos';
import { TtrpcClient, type TtrpcCallOptions } from './ttrpc-client';

/**
 * A client of the attestation agent's ttrpc socket (protos/attestation-agent.proto): what the
 * cc_kbc KBC (GetToken), the image pull (ExtendRuntimeMeasurement) and the REST front (evidence,
 * token, TEE type) ask of it. Failures are TtrpcCallErrors; callers turn them into their own
 * catalogued errors (they know which resource or image the call was for).
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

let aaRoot: protobuf.Root | undefined;

/** The attestation_agent protobuf types, loaded at first use. */
export function attestationAgentType(name: string): protobuf.Type {
  aaRoot ??= loadProtos(['attestation-agent.proto'], [PROTOS_DIR]);
  return aaRoot.lookupType(`attestation_agent.${name}`);
}

function encode(typeName: string, message: Record<string, unknown>): Uint8Array {
  const type = attestationAgentType(typeName);
  return type.encode(type.fromObject(message)).finish();
}

function decode(typeName: string, bytes: Uint8Array): Record<string, unknown> {
  const type = attestationAgentType(typeName);
  return type.toObject(type.decode(bytes), { defaults: true, enums: String, longs: Number });
}

function bytesField(message: Record<string, unknown>, field: string): Buffer {
  const value = message[field];
  return value instanceof Uint8Array
    ? Buffer.from(value.buffer, value.byteOffset, value.length)
    : Buffer.alloc(0);
}

export class AttestationAgentClient {
  private readonly ttrpc: TtrpcClient;

  constructor(readonly address: string = DEFAULT_AA_SOCKET) {
    this.ttrpc = new TtrpcClient(address);
  }

  /** GetToken: for "kbs", UTF-8 JSON `{"token", "tee_keypair"}` (secret: never log it). */
  async getToken(tokenType: string, options?: TtrpcCallOptions): Promise<Buffer> {
    const answer = await this.invoke(
      'GetToken',
      'GetTokenRequest',
      { TokenType: tokenType },
      'GetTokenResponse',
      options,
    );
    return bytesField(answer, 'Token');
  }

  async getEvidence(runtimeData: Uint8Array, options?: TtrpcCallOptions): Promise<Buffer> {
    const answer = await this.invoke(
      'GetEvidence',
      'GetEvidenceRequest',
      { RuntimeData: runtimeData },
      'GetEvidenceResponse',
      options,
    );
    return bytesField(answer, 'Evidence');
  }

  async getAdditionalEvidence(runtimeData: Uint8Array, options?: TtrpcCallOptions): Promise<Buffer> {
    const answer = await this.invoke(
      'GetAdditionalEvidence',
      'GetAdditionalEvidenceRequest',
      { RuntimeData: runtimeData },
      'GetEvidenceResponse',
      options,
    );
    return bytesField(answer, 'Evidence');
  }

  async getTeeType(options?: TtrpcCallOptions): Promise<string> {
    const answer = await this.invoke('GetTeeType', 'GetTeeTypeRequest', {}, 'GetTeeTypeResponse', options);
    return String(answer.tee ?? '');
  }

  async getAdditionalTees(options?: TtrpcCallOptions): Promise<string[]> {
    const answer = await this.invoke(
      'GetAdditionalTees',
      'GetAdditionalTeesRequest',
      {},
      'GetAdditionalTeesResponse',
      options,
    );
    const tees = answer.additional_tees;
    return Array.isArray(tees) ? tees.map(String) : [];
  }

  async extendRuntimeMeasurement(
    event: RuntimeMeasurementEvent,
    options?: TtrpcCallOptions,
  ): Promise<RuntimeMeasurementResult> {
    const request: Record<string, unknown> = {
      Domain: event.domain,
      Operation: event.operation,
      Content: event.content,
    };
    if (event.registerIndex !== undefined) request.RegisterIndex = event.registerIndex;
    const answer = await this.invoke(
      'ExtendRuntimeMeasurement',
      'ExtendRuntimeMeasurementRequest',
      request,
      'ExtendRuntimeMeasurementResponse',
      options,
    );
    const result = answer.Result;
    return result === 'NOT_SUPPORTED' || result === 'NOT_ENABLED' ? result : 'OK';
  }

  close(): void {
    this.ttrpc.close();
  }

  private async invoke(
    method: string,
    requestType: string,
    request: Record<string, unknown>,
    responseType: string,
    options?: TtrpcCallOptions,
  ): Promise<Record<string, unknown>> {
    const payload = await this.ttrpc.call(AA_SERVICE, method, encode(requestType, request), options);
    return decode(responseType, payload);
  }
}
