import { isIP } from 'node:net';
import { FEATURES, type Feature } from './router';

export const DEFAULT_BIND = '127.0.0.1:8006';
export const DEFAULT_FEATURE: Feature = 'resource';
export const DEFAULT_CDH_ADDR = 'unix:///run/confidential-containers/cdh.sock';
export const DEFAULT_AA_ADDR = 'unix:///run/confidential-containers/attestation-agent/attestation-agent.sock';
export const DEFAULT_CALL_TIMEOUT_MS = 30_000;

export class RestOptionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RestOptionError';
  }
}

/** `IPv4:port` or `[IPv6]:port` (an address, not a host name, as upstream's). */
export function parseBind(bind: string): { host: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(bind);
  const host = match?.[1] ?? match?.[2];
  const port = Number(match?.[3]);
  const family = match?.[1] !== undefined ? 6 : 4;
  if (host === undefined || isIP(host) !== family || !Number.isInteger(port) || port > 65_535)
    throw new RestOptionError(`--bind "${bind}" is not IPv4:port or [IPv6]:port (e.g. ${DEFAULT_BIND})`);
  return { host, port };
}

export function parseFeature(value: string): Feature {
  if ((FEATURES as readonly string[]).includes(value)) return value as Feature;
  throw new RestOptionError(`unknown features "${value}": supported are ${FEATURES.join(', ')}`);
}

export function parsePositiveInteger(flag: string, value: string): number {
  const number = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(number) || number <= 0)
    throw new RestOptionError(`${flag} must be a positive whole number, not "${value}"`);
  return number;
}
