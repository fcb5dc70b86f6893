import { isIP } from 'node:net';
import { CdhError } from './errors';

/**
 * Tests must never reach Alibaba Cloud or the ECS metadata service. The test support sets
 * CDH_LOOPBACK_ONLY=1 (in the test process and every daemon it spawns); with it set, any
 * provider about to dial a non-loopback host fails at once instead of dialling out.
 * Production never sets it.
 */
export const LOOPBACK_ONLY_ENV = 'CDH_LOOPBACK_ONLY';

export function isLoopbackHost(host: string): boolean {
  const bare = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  if (bare === 'localhost') return true;
  if (isIP(bare) === 4) return bare.startsWith('127.');
  if (isIP(bare) === 6) return bare === '::1' || bare.toLowerCase().startsWith('::ffff:127.');
  return false;
}

/** Throws when loopback-only mode is on and `host` is not a loopback address. */
export function assertDialAllowed(host: string, purpose: string): void {
  if (process.env[LOOPBACK_ONLY_ENV] === '1' && !isLoopbackHost(host)) {
    throw new CdhError(
      'PROVIDER_NOT_CONFIGURED',
      `${purpose}: refusing to contact ${host}: ${LOOPBACK_ONLY_ENV}=1 allows loopback addresses only ` +
        '(point dkms_connect_to / openapi_endpoint / metadata_endpoint at an emulator)',
    );
  }
}
