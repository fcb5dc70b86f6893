import { CdhError } from '../errors';
import { scopeCandidates } from './scopes';
import type { ImageReference } from './reference';

/**
 * The registries.d subset simple signing needs: where signatures of a repository live.
 *
 * ```yaml
 * default-docker:
 *   lookaside: file:///var/lib/containers/sigstore     # `sigstore:` is the older name
 * docker:
 *   registry.example/ns:
 *     lookaside: https://sigs.example/
 * ```
 */
export class LookasideConfig {
  private constructor(
    private readonly defaultBase: string | undefined,
    private readonly scoped: ReadonlyMap<string, string>,
  ) {}

  static empty(): LookasideConfig {
    return new LookasideConfig(undefined, new Map());
  }

  /** Merges several registries.d documents (later ones do not override earlier keys). */
  static parse(texts: ReadonlyArray<{ text: string; source: string }>): LookasideConfig {
    let defaultBase: string | undefined;
    const scoped = new Map<string, string>();
    for (const { text, source } of texts) {
      const doc = parseSimpleYaml(text, source);
      const def = doc.get('default-docker');
      if (def instanceof Map) defaultBase ??= lookasideOf(def);
      const docker = doc.get('docker');
      if (docker instanceof Map) {
        for (const [scope, value] of docker) {
          if (!(value instanceof Map)) continue;
          const base = lookasideOf(value);
          if (base !== undefined && !scoped.has(scope)) scoped.set(scope, base);
        }
      }
    }
    return new LookasideConfig(defaultBase, scoped);
  }

  /** The lookaside base URL for `ref` (most specific scope first), if any. */
  baseFor(ref: ImageReference): string | undefined {
    for (const scope of scopeCandidates(ref)) {
      const base = this.scoped.get(scope);
      if (base !== undefined) return base;
    }
    return this.defaultBase;
  }
}

function lookasideOf(section: Map<string, YamlValue>): string | undefined {
  const value = section.get('lookaside') ?? section.get('sigstore');
  return typeof value === 'string' && value !== '' ? value : undefined;
}

type YamlValue = string | Map<string, YamlValue>;

/** Block mappings of scalars only (what registries.d files hold); anything else is an error. */
export function parseSimpleYaml(text: string, source: string): Map<string, YamlValue> {
  const root = new Map<string, YamlValue>();
  const stack: Array<{ indent: number; map: Map<string, YamlValue> }> = [{ indent: -1, map: root }];
  const lines = text.split(/\r?\n/);
  lines.forEach((raw, index) => {
    const line = stripComment(raw);
    if (line.trim() === '' || line.trim() === '---') return;
    const indent = line.length - line.trimStart().length;
    const match = /^(\s*)("(?:[^"\\]|\\.)*"|'[^']*'|[^:]+?)\s*:(?:\s+(.*))?\s*$/.exec(line);
    if (!match)
      throw new CdhError(
        'IMAGE_SETTINGS_INVALID',
        `sigstore config ${source}: line ${index + 1} is not "key: value"`,
      );
    while (stack.length > 1 && (stack[stack.length - 1] as { indent: number }).indent >= indent) stack.pop();
    const parent = (stack[stack.length - 1] as { map: Map<string, YamlValue> }).map;
    const key = unquote((match[2] as string).trim());
    const value = match[3]?.trim();
    if (value === undefined || value === '') {
      const child = new Map<string, YamlValue>();
      parent.set(key, child);
      stack.push({ indent, map: child });
    } else parent.set(key, unquote(value));
  });
  return root;
}

function stripComment(line: string): string {
  let quote: string | undefined;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quote) {
      if (c === quote) quote = undefined;
    } else if (c === '"' || c === "'") quote = c;
    else if (c === '#' && (i === 0 || /\s/.test(line[i - 1] as string))) return line.slice(0, i);
  }
  return line;
}

function unquote(value: string): string {
  if (value.length >= 2 && value.startsWith('"') && value.endsWith('"'))
    return (JSON.parse(value) as string).toString();
  if (value.length >= 2 && value.startsWith("'") && value.endsWith("'"))
    return value.slice(1, -1).replace(/''/g, "'");
  return value;
}
