import { CdhError } from '../../errors';
import { quoteUntrusted } from '../../lib/untrusted';

/**
 * A KBS resource URI, `kbs://<host>/<repo>/<type>/<tag>`. The host names the KBS and is
 * ignored by the offline_fs KBC (most URIs leave it empty: `kbs:///repo/type/tag`).
 */
export interface ResourceUri {
  /** `host` or `host:port`, '' when absent. */
  readonly host: string;
  readonly repo: string;
  readonly type: string;
  readonly tag: string;
}

export const RESOURCE_URI_FORM =
  'kbs://<host>/<repo>/<type>/<tag> (host may be empty: kbs:///<repo>/<type>/<tag>)';

const SEGMENT_NAMES = ['repo', 'type', 'tag'] as const;

/**
 * Segment characters as Trustee's resource repository accepts them: letters, digits, `_`,
 * `-` and `.`, not starting with `.` (so no `.`/`..` segment and no hidden file names).
 */
const SEGMENT = /^[A-Za-z0-9_-][A-Za-z0-9_.-]*$/;
const SEGMENT_MAX_LENGTH = 255;
const URI_MAX_LENGTH = 2048;

const DNS_LABEL = '[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?';
const HOST = new RegExp(`^(?:${DNS_LABEL}(?:\\.${DNS_LABEL})*|\\[[0-9A-Fa-f:.]+\\])(?::([0-9]{1,5}))?$`);

/** `kbs+resource` is upstream's explicit spelling of the default `resource` plugin. */
const SCHEMES = new Set(['kbs', 'kbs+resource']);

/** Parses a resource URI strictly; anything else is RESOURCE_URI_INVALID saying what is wrong. */
export function parseResourceUri(uri: unknown): ResourceUri {
  if (typeof uri !== 'string')
    throw invalid(undefined, `it is ${uri === null ? 'null' : typeof uri}, not a string`);
  if (uri.length === 0) throw invalid(uri, 'it is empty');
  if (uri.length > URI_MAX_LENGTH) throw invalid(uri, `it is longer than ${URI_MAX_LENGTH} characters`);
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(uri))
    throw invalid(uri, 'it contains a control character (NUL, newline, ...)');
  if (/[^\u0020-\u007e]/.test(uri)) throw invalid(uri, 'it contains a non-ASCII character');
  if (uri.includes(' ')) throw invalid(uri, 'it contains a space');

  const schemeEnd = uri.indexOf('://');
  if (schemeEnd < 0) throw invalid(uri, 'it does not start with kbs://');
  const scheme = uri.slice(0, schemeEnd);
  if (!SCHEMES.has(scheme.toLowerCase())) throw invalid(uri, `the scheme is "${scheme}", not kbs`);

  if (uri.includes('?')) throw invalid(uri, 'a query (?...) is not accepted');
  if (uri.includes('#')) throw invalid(uri, 'a fragment (#...) is not accepted');
  if (uri.includes('%')) throw invalid(uri, 'percent-encoding (%..) is not accepted');
  if (uri.includes('\\')) throw invalid(uri, 'it contains a backslash');

  const rest = uri.slice(schemeEnd + 3);
  const pathStart = rest.indexOf('/');
  if (pathStart < 0) throw invalid(uri, 'it has no path');
  const host = rest.slice(0, pathStart);
  if (host.includes('@')) throw invalid(uri, 'user information (user@host) is not accepted');
  if (host !== '') {
    const match = HOST.exec(host);
    if (match === null)
      throw invalid(uri, `the host "${host}" is not a host name, [IPv6] address or host:port`);
    if (match[1] !== undefined && Number(match[1]) > 65535)
      throw invalid(uri, `the port ${match[1]} is out of range`);
  }

  const segments = rest.slice(pathStart + 1).split('/');
  if (segments.length !== 3) {
    throw invalid(
      uri,
      `the path has ${segments.length} segment${segments.length === 1 ? '' : 's'}, exactly 3 are needed`,
    );
  }
  segments.forEach((segment, index) => {
    const name = SEGMENT_NAMES[index];
    if (segment === '') throw invalid(uri, `the ${name} segment is empty`);
    if (segment === '.' || segment === '..') throw invalid(uri, `the ${name} segment is "${segment}"`);
    if (segment.length > SEGMENT_MAX_LENGTH) {
      throw invalid(uri, `the ${name} segment is longer than ${SEGMENT_MAX_LENGTH} characters`);
    }
    if (!SEGMENT.test(segment)) {
      throw invalid(
        uri,
        `the ${name} segment "${segment}" may only hold A-Z a-z 0-9 _ - . and must not start with .`,
      );
    }
  });
  const [repo, type, tag] = segments as [string, string, string];
  return { host, repo, type, tag };
}

/** The offline_fs lookup key of a resource: `<repo>/<type>/<tag>`. */
export function resourceKey(uri: ResourceUri): string {
  return `${uri.repo}/${uri.type}/${uri.tag}`;
}

/** The canonical spelling of a parsed URI (lower-case `kbs` scheme). */
export function formatResourceUri(uri: ResourceUri): string {
  return `kbs://${uri.host}/${resourceKey(uri)}`;
}

function invalid(uri: string | undefined, reason: string): CdhError {
  const shown = uri === undefined ? 'resource URI' : `resource URI ${quoteUntrusted(uri)}`;
  return new CdhError('RESOURCE_URI_INVALID', `invalid ${shown}: ${reason}; expected ${RESOURCE_URI_FORM}`);
}
