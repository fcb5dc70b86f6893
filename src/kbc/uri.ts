import { CdhError } from '../errors';
import { quoteUntrusted } from '../lib/untrusted';

/**
 * A KBS resource URI as upstream parses it: `kbs://<host>/<repo>/<type>/<tag>[?query]` (the
 * `resource` plugin) or `kbs+<plugin>://<host>/<path>[?query]`. The host names the KBS and is
 * ignored (the configured KBS is used; most URIs leave it empty: `kbs:///repo/type/tag`).
 */
export interface ResourceUri {
  /** `host` or `host:port`, '' when absent. */
  readonly host: string;
  /** KBS plugin, lower case: `resource` for `kbs://` and `kbs+resource://`. */
  readonly plugin: string;
  /** The path segments after the host (exactly 3 for the resource plugin). */
  readonly segments: readonly string[];
  readonly repo: string;
  readonly type: string;
  readonly tag: string;
  /** The query without its `?`, passed through to the KBS as is; '' when absent. */
  readonly query: string;
}

export const RESOURCE_URI_FORM =
  'kbs://<host>/<repo>/<type>/<tag>[?query] or kbs+<plugin>://<host>/<path>[?query] (host may be empty: kbs:///<repo>/<type>/<tag>)';

const SEGMENT_NAMES = ['repo', 'type', 'tag'] as const;

/**
 * Segment characters as Trustee's resource repository accepts them: letters, digits, `_`,
 * `-` and `.`, not starting with `.` (so no `.`/`..` segment and no hidden file names).
 */
const SEGMENT = /^[A-Za-z0-9_-][A-Za-z0-9_.-]*$/;
const SEGMENT_MAX_LENGTH = 255;
const URI_MAX_LENGTH = 2048;
const MAX_PLUGIN_SEGMENTS = 16;
/** RFC 3986 query characters, with `%` only as a percent-encoded octet. */
const QUERY = /^(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/?]|%[0-9A-Fa-f]{2})*$/;
const PLUGIN = /^[a-z0-9][a-z0-9_-]{0,63}$/;

const DNS_LABEL = '[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?';
const HOST = new RegExp(`^(?:${DNS_LABEL}(?:\\.${DNS_LABEL})*|\\[[0-9A-Fa-f:.]+\\])(?::([0-9]{1,5}))?$`);

/** Parses a resource URI strictly; anything else is RESOURCE_URI_INVALID saying what is wrong. */
export function parseResourceUri(uri: unknown): ResourceUri {
  const text = checkCharacters(uri);
  const schemeEnd = text.indexOf('://');
  const plugin = parsePlugin(text, schemeEnd);
  if (text.includes('#')) throw invalid(text, 'a fragment (#...) is not accepted');
  if (text.includes('\\')) throw invalid(text, 'it contains a backslash');
  const queryStart = text.indexOf('?', schemeEnd);
  const query = queryStart < 0 ? '' : text.slice(queryStart + 1);
  if (queryStart >= 0 && (query === '' || !QUERY.test(query)))
    throw invalid(text, 'the query is empty or holds a character not allowed in a URI query');
  const beforeQuery = queryStart < 0 ? text : text.slice(0, queryStart);
  if (beforeQuery.includes('%')) throw invalid(text, 'percent-encoding (%..) is not accepted in the path');

  const rest = beforeQuery.slice(schemeEnd + 3);
  const pathStart = rest.indexOf('/');
  if (pathStart < 0) throw invalid(text, 'it has no path');
  const host = checkHost(text, rest.slice(0, pathStart));
  const segments = checkSegments(text, plugin, rest.slice(pathStart + 1).split('/'));
  const [repo = '', type = '', tag = ''] = plugin === 'resource' ? segments : [];
  return { host, plugin, segments, repo, type, tag, query };
}

/** A string of printable ASCII without spaces, of a bounded length. */
function checkCharacters(uri: unknown): string {
  if (typeof uri !== 'string')
    throw invalid(undefined, `it is ${uri === null ? 'null' : typeof uri}, not a string`);
  if (uri.length === 0) throw invalid(uri, 'it is empty');
  if (uri.length > URI_MAX_LENGTH) throw invalid(uri, `it is longer than ${URI_MAX_LENGTH} characters`);
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(uri))
    throw invalid(uri, 'it contains a control character (NUL, newline, ...)');
  if (/[^\u0020-\u007e]/.test(uri)) throw invalid(uri, 'it contains a non-ASCII character');
  if (uri.includes(' ')) throw invalid(uri, 'it contains a space');
  return uri;
}

/** `kbs` → the resource plugin; `kbs+<plugin>` → that plugin. */
function parsePlugin(uri: string, schemeEnd: number): string {
  if (schemeEnd < 0) throw invalid(uri, 'it does not start with kbs://');
  const scheme = uri.slice(0, schemeEnd).toLowerCase();
  if (scheme === 'kbs') return 'resource';
  if (!scheme.startsWith('kbs+'))
    throw invalid(uri, `the scheme is "${uri.slice(0, schemeEnd)}", not kbs or kbs+<plugin>`);
  const plugin = scheme.slice('kbs+'.length);
  if (!PLUGIN.test(plugin))
    throw invalid(uri, `the plugin "${plugin}" is not a plugin name (a-z 0-9 _ -, at most 64)`);
  return plugin;
}

function checkHost(uri: string, host: string): string {
  if (host.includes('@')) throw invalid(uri, 'user information (user@host) is not accepted');
  if (host === '') return host;
  const match = HOST.exec(host);
  if (match === null)
    throw invalid(uri, `the host "${host}" is not a host name, [IPv6] address or host:port`);
  if (match[1] !== undefined && Number(match[1]) > 65535)
    throw invalid(uri, `the port ${match[1]} is out of range`);
  return host;
}

function checkSegments(uri: string, plugin: string, segments: string[]): string[] {
  if (plugin === 'resource' && segments.length !== 3) {
    throw invalid(
      uri,
      `the path has ${segments.length} segment${segments.length === 1 ? '' : 's'}, exactly 3 are needed`,
    );
  }
  if (segments.length > MAX_PLUGIN_SEGMENTS)
    throw invalid(uri, `the path has more than ${MAX_PLUGIN_SEGMENTS} segments`);
  segments.forEach((segment, index) => {
    const name = plugin === 'resource' ? SEGMENT_NAMES[index] : `path (segment ${index + 1})`;
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
  return segments;
}

/** The offline_fs lookup key of a resource: `<repo>/<type>/<tag>`. */
export function resourceKey(uri: ResourceUri): string {
  return `${uri.repo}/${uri.type}/${uri.tag}`;
}

/** The KBS path of a resource below `/kbs/v0/`: `<plugin>/<path>[?query]`. */
export function kbsRequestPath(uri: ResourceUri): string {
  return `${uri.plugin}/${uri.segments.join('/')}${uri.query === '' ? '' : `?${uri.query}`}`;
}

/** The canonical spelling of a parsed URI (lower-case scheme, `kbs://` for the resource plugin). */
export function formatResourceUri(uri: ResourceUri): string {
  const scheme = uri.plugin === 'resource' ? 'kbs' : `kbs+${uri.plugin}`;
  return `${scheme}://${uri.host}/${uri.segments.join('/')}${uri.query === '' ? '' : `?${uri.query}`}`;
}

function invalid(uri: string | undefined, reason: string): CdhError {
  const shown = uri === undefined ? 'resource URI' : `resource URI ${quoteUntrusted(uri)}`;
  return new CdhError('RESOURCE_URI_INVALID', `invalid ${shown}: ${reason}; expected ${RESOURCE_URI_FORM}`);
}
