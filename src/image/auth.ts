import { CdhError } from '../errors';
import type { ImageReference } from './reference';

export interface BasicCredentials {
  readonly username: string;
  readonly password: string;
}

/** A docker auth.json: `{"auths": {"<registry>[/<path>]": {"auth": "<base64 user:pass>"}}}`. */
export class AuthFile {
  private constructor(private readonly entries: ReadonlyMap<string, BasicCredentials>) {}

  static empty(): AuthFile {
    return new AuthFile(new Map());
  }

  static parse(text: string, source: string): AuthFile {
    const bad = (why: string): never => {
      throw new CdhError('IMAGE_SETTINGS_INVALID', `registry credentials ${source}: ${why}`);
    };
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch {
      bad('not JSON');
    }
    const auths = (raw as { auths?: unknown } | null)?.auths;
    if (typeof auths !== 'object' || auths === null || Array.isArray(auths)) bad('no "auths" object');
    const entries = new Map<string, BasicCredentials>();
    for (const [key, value] of Object.entries(auths as Record<string, unknown>)) {
      const auth = (value as { auth?: unknown } | null)?.auth;
      if (typeof auth !== 'string') bad(`entry ${JSON.stringify(key)} has no "auth" string`);
      const decoded = Buffer.from(auth as string, 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      if (colon <= 0) bad(`entry ${JSON.stringify(key)}: "auth" is not base64 of user:password`);
      entries.set(key, {
        username: decoded.slice(0, colon),
        password: decoded.slice(colon + 1).replace(/^\n+|\n+$/g, ''),
      });
    }
    return new AuthFile(entries);
  }

  /** `registry/repo`, then each parent path, then the registry; then keys naming the same host. */
  lookup(ref: ImageReference): BasicCredentials | undefined {
    let key = `${ref.registry}/${ref.repository}`;
    for (;;) {
      const found = this.entries.get(key);
      if (found) return found;
      const slash = key.lastIndexOf('/');
      if (slash < 0) break;
      key = key.slice(0, slash);
    }
    const host = normalizeHost(ref.registry);
    for (const [candidate, credentials] of this.entries) {
      if (normalizeHost(candidate.replace(/^https?:\/\//, '').split('/')[0] ?? '') === host)
        return credentials;
    }
    return undefined;
  }
}

function normalizeHost(host: string): string {
  return host === 'docker.io' || host === 'registry-1.docker.io' ? 'index.docker.io' : host;
}
