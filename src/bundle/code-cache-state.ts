/**
 * Whether this process's program was compiled from V8's code cache (src/bundle/program-loader.ts
 * leaves the outcome under this key): 'used', 'rejected' (by V8: another node or other flags),
 * 'stale' (made for another build), 'refused' (not trusted: see the loader), 'absent', or
 * undefined when the program does not run from a bundle (dist/).
 */
export const CODE_CACHE_STATE_KEY = 'cdh.bundle.codeCache';

export function codeCacheState(): string | undefined {
  const state = (globalThis as Record<symbol, unknown>)[Symbol.for(CODE_CACHE_STATE_KEY)];
  return typeof state === 'string' ? state : undefined;
}
