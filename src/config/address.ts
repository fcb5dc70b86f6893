import { isAbsolute } from 'node:path';

export type ListenAddress = { kind: 'unix'; path: string } | { kind: 'tcp'; host: string; port: number };

/** `unix:///abs`, `unix:/abs` or `host:port` (IPv6 as `[::1]:port`). */
export function parseListenAddress(address: string): ListenAddress | undefined {
  if (address.startsWith('unix:')) {
    const path = address.startsWith('unix://')
      ? address.slice('unix://'.length)
      : address.slice('unix:'.length);
    return isAbsolute(path) && !path.includes('\0') && path.length < 108 ? { kind: 'unix', path } : undefined;
  }
  const hp = parseHostPort(address);
  return hp ? { kind: 'tcp', ...hp } : undefined;
}

export function parseHostPort(value: string): { host: string; port: number } | undefined {
  const match = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(value);
  if (!match) return undefined;
  const port = Number(match[2]);
  if (port < 1 || port > 65535) return undefined;
  return { host: match[1] as string, port };
}
