/**
 * A small argument reader for nested subcommands (`seal [flags] envelope [flags] ali [flags]`):
 * each level declares its flags; a flag may be given at the level that owns it or, where a
 * level says so, at an outer one (upstream's older `seal --file-path X envelope ...`).
 */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export interface FlagSpec {
  readonly [flag: string]: 'string' | 'boolean';
}

export interface LevelArgs {
  readonly flags: Record<string, string | boolean>;
  /** The subcommand that followed this level's flags, if any. */
  readonly next: string | undefined;
  /** Tokens after the subcommand. */
  readonly rest: string[];
}

/** Reads `--flag value`, `--flag=value` and boolean `--flag` until the first positional. */
export function readLevel(tokens: readonly string[], spec: FlagSpec, where: string): LevelArgs {
  const flags: Record<string, string | boolean> = {};
  let i = 0;
  for (; i < tokens.length; i++) {
    const token = tokens[i] as string;
    if (!token.startsWith('-') || token === '-') break;
    const [rawName, inlineValue] = token.includes('=') ? splitOnce(token, '=') : [token, undefined];
    const name = rawName.replace(/^--?/, '');
    const kind = spec[name];
    if (kind === undefined) throw new UsageError(`unknown option ${rawName} for ${where} (see --help)`);
    if (name in flags) throw new UsageError(`option --${name} given twice`);
    if (kind === 'boolean') {
      if (inlineValue !== undefined) throw new UsageError(`option --${name} takes no value`);
      flags[name] = true;
      continue;
    }
    const value = inlineValue ?? tokens[++i];
    if (value === undefined || (inlineValue === undefined && value.startsWith('--')))
      throw new UsageError(`option --${name} needs a value`);
    flags[name] = value;
  }
  return { flags, next: tokens[i], rest: tokens.slice(i + 1) };
}

function splitOnce(text: string, separator: string): [string, string] {
  const at = text.indexOf(separator);
  return [text.slice(0, at), text.slice(at + 1)];
}

export function requireFlag(flags: Record<string, string | boolean>, name: string, where: string): string {
  const value = flags[name];
  if (typeof value !== 'string' || value === '') throw new UsageError(`${where} needs --${name}`);
  return value;
}

export function optionalFlag(flags: Record<string, string | boolean>, name: string): string | undefined {
  const value = flags[name];
  return typeof value === 'string' ? value : undefined;
}
