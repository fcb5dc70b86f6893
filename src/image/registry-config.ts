import { z } from '../lib/zod';
import { CdhError } from '../errors';
import { parseReference, quote, referenceString, type ImageReference } from './reference';

// smol-toml's type declarations are ESM-only; its CommonJS build is what runs here.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { parse: parseToml } = require('smol-toml') as { parse(text: string): Record<string, unknown> };

/** The registries.conf v2 subset upstream reads (unqualified search, remaps, mirrors, blocked, insecure). */
export interface RegistryConfig {
  readonly unqualifiedSearchRegistries: readonly string[];
  readonly registries: readonly RegistryRule[];
}

export interface RegistryRule {
  readonly prefix: string;
  readonly location: string;
  readonly insecure: boolean;
  readonly blocked: boolean;
  readonly mirrors: ReadonlyArray<{ location: string; insecure: boolean }>;
}

/** One place to try: the reference to fetch there and whether plain HTTP is allowed. */
export interface PullTask {
  readonly ref: ImageReference;
  readonly plainHttp: boolean;
}

const mirrorSchema = z.strictObject({
  location: z.string().min(1, 'a mirror needs a location'),
  insecure: z.boolean().optional(),
});
const ruleSchema = z.strictObject({
  prefix: z.string().optional(),
  location: z.string().optional(),
  insecure: z.boolean().optional(),
  blocked: z.boolean().optional(),
  mirror: z.array(mirrorSchema).optional(),
});
const fileSchema = z.looseObject({
  'unqualified-search-registries': z.array(z.string().min(1)).optional(),
  registry: z.array(ruleSchema).optional(),
});

export const DEFAULT_REGISTRY_CONFIG: RegistryConfig = {
  unqualifiedSearchRegistries: ['docker.io'],
  registries: [],
};

export function parseRegistryConfigToml(text: string, source: string): RegistryConfig {
  let raw: unknown;
  try {
    raw = parseToml(text);
  } catch (error) {
    throw new CdhError(
      'IMAGE_SETTINGS_INVALID',
      `registry configuration ${source} is not valid TOML: ${String((error as Error).message).split('\n')[0]}`,
    );
  }
  return parseRegistryConfig(raw, source);
}

export function parseRegistryConfig(raw: unknown, source: string): RegistryConfig {
  const parsed = fileSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new CdhError(
      'IMAGE_SETTINGS_INVALID',
      `registry configuration ${source}: ${issue?.path.join('.') ?? ''}: ${issue?.message ?? 'invalid'}`,
    );
  }
  const registries = (parsed.data.registry ?? []).map((r, i): RegistryRule => {
    const prefix = r.prefix ?? '';
    const location = r.location ?? '';
    const where = `registry configuration ${source}: [[registry]] #${i + 1}`;
    if (prefix === '' && location === '')
      throw new CdhError('IMAGE_SETTINGS_INVALID', `${where} has neither prefix nor location`);
    if (prefix.startsWith('*.') && location !== '')
      throw new CdhError('IMAGE_SETTINGS_INVALID', `${where}: a wildcard prefix cannot have a location`);
    return {
      prefix: prefix === '' ? location : prefix,
      location,
      insecure: r.insecure ?? false,
      blocked: r.blocked ?? false,
      mirrors: (r.mirror ?? []).map((m) => ({ location: m.location, insecure: m.insecure ?? false })),
    };
  });
  return {
    unqualifiedSearchRegistries: parsed.data['unqualified-search-registries'] ?? ['docker.io'],
    registries,
  };
}

/**
 * The places to try for `ref`, in order. Prefixes match from the start of the reference
 * (upstream searches anywhere in it); the longest match wins.
 */
export function pullTasks(ref: ImageReference, config: RegistryConfig): PullTask[] {
  const starts: ImageReference[] = [];
  if (ref.registry !== 'docker.io') starts.push(ref);
  else {
    for (const registry of config.unqualifiedSearchRegistries) {
      if (registry === 'docker.io') starts.push(ref);
      else {
        const repository = ref.repository.startsWith('library/')
          ? ref.repository.slice('library/'.length)
          : ref.repository;
        starts.push({ ...ref, registry, repository });
      }
    }
  }
  const tasks: PullTask[] = [];
  for (const start of starts) {
    const text = referenceString(start);
    const rule = longestMatch(text, config.registries);
    if (rule === undefined) {
      tasks.push({ ref: start, plainHttp: false });
      continue;
    }
    if (rule.blocked) continue;
    const suffix = text.slice(matchLength(text, rule.prefix));
    for (const mirror of rule.mirrors) tasks.push(remap(mirror.location + suffix, mirror.insecure, text));
    if (rule.location !== '' && !rule.prefix.startsWith('*.'))
      tasks.push(remap(rule.location + suffix, rule.insecure, text));
    else tasks.push({ ref: start, plainHttp: false });
  }
  if (tasks.length === 0)
    throw new CdhError(
      'IMAGE_REGISTRY_DENIED',
      `image ${quote(referenceString(ref))} is blocked by the registry configuration`,
    );
  return tasks;
}

function remap(text: string, plainHttp: boolean, original: string): PullTask {
  try {
    return { ref: parseReference(text), plainHttp };
  } catch {
    throw new CdhError(
      'IMAGE_SETTINGS_INVALID',
      `registry configuration maps ${quote(original)} to ${quote(text)}, which is not a valid reference`,
    );
  }
}

function longestMatch(text: string, rules: readonly RegistryRule[]): RegistryRule | undefined {
  let best: RegistryRule | undefined;
  let bestLength = -1;
  for (const rule of rules) {
    const length = matchLength(text, rule.prefix);
    if (length > bestLength) {
      best = rule;
      bestLength = length;
    }
  }
  return best;
}

/** How many characters of `text` the prefix covers, or -1 when it does not match. */
function matchLength(text: string, prefix: string): number {
  if (prefix.startsWith('*.')) {
    const host = text.split('/')[0] ?? '';
    const hostName = host.replace(/:\d+$/, '');
    return hostName.endsWith(prefix.slice(1)) ? host.length : -1;
  }
  if (!text.startsWith(prefix)) return -1;
  const next = text.charAt(prefix.length);
  return next === '' || next === ':' || next === '/' || next === '@' ? prefix.length : -1;
}
