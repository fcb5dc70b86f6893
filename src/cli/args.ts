import { parseArgs } from 'node:util';
import { packageVersion } from '../package-info';

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

/** The flags of the calls cdh-tool and cdh-oneshot both make, each needed by its command. */
export type CallFlag = 'secret-path' | 'resource-uri' | 'image-url' | 'bundle-path' | 'annotation-path';

const CALL_FLAGS: Readonly<Record<string, readonly CallFlag[]>> = {
  'unseal-secret': ['secret-path'],
  'get-resource': ['resource-uri'],
  'pull-image': ['image-url', 'bundle-path'],
  'unwrap-key': ['annotation-path'],
  health: [],
};

/** What a flag names, for "needs --flag WHAT". */
const CALL_FLAG_VALUES: Readonly<Record<CallFlag, string>> = {
  'secret-path': 'FILE',
  'resource-uri': 'URI',
  'image-url': 'REF',
  'bundle-path': 'DIR',
  'annotation-path': 'FILE',
};

/** A pull takes long (layers): the Kata agent's 1200 s. */
const PULL_TIMEOUT_MS = 1_200_000;

export interface CallCommandLine {
  readonly help: boolean;
  readonly version: boolean;
  /** The command (empty with --help / --version). */
  readonly command: string;
  /** `--timeout-ms`, or the default: PULL_TIMEOUT_MS for pull-image, else the program's. */
  readonly timeoutMs: number;
  /** A program's own option (`socket`, `config`, ...). */
  option(name: string): string | undefined;
  flag(name: string): boolean;
  /** The value of a flag the command needs (checked to be there when the line was read). */
  need(name: CallFlag): string;
}

export interface CallCommandSpec {
  /** Commands this program has (a subset of the shared ones). */
  readonly commands: readonly string[];
  /** The program's own options: `name` -> kind (and a one-letter short form). */
  readonly options: Readonly<Record<string, { type: 'string' | 'boolean'; short?: string }>>;
  readonly defaultTimeoutMs: number;
}

/**
 * Reads `[options] <command> [options]` as cdh-tool and cdh-oneshot take it: exactly one
 * command among `commands`, the flags that command needs, `--timeout-ms` a positive whole
 * number. Every problem is a UsageError saying what is wrong.
 */
export function readCallCommandLine(args: readonly string[], spec: CallCommandSpec): CallCommandLine {
  const callOptions = Object.fromEntries(
    [...Object.keys(CALL_FLAG_VALUES), 'timeout-ms'].map((name) => [name, { type: 'string' as const }]),
  );
  let parsed;
  try {
    parsed = parseArgs({
      args: [...args],
      options: {
        ...callOptions,
        ...spec.options,
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean', short: 'V' },
      },
      strict: true,
      allowPositionals: true,
    });
  } catch (error) {
    throw new UsageError(`${(error as Error).message} (see --help)`);
  }
  const values = parsed.values as Record<string, string | boolean | undefined>;
  const option = (name: string): string | undefined =>
    typeof values[name] === 'string' ? (values[name] as string) : undefined;
  const flag = (name: string): boolean => values[name] === true;
  const [command = '', ...extra] = parsed.positionals;
  const base = { option, flag, help: flag('help'), version: flag('version') };
  if (base.help || base.version) return { ...base, command: '', timeoutMs: 0, need: () => '' };
  if (command === '') throw new UsageError(`a command is required: ${spec.commands.join(', ')} (see --help)`);
  if (extra.length > 0) throw new UsageError(`unexpected argument "${extra[0]}" (see --help)`);
  if (!spec.commands.includes(command)) throw new UsageError(`unknown command "${command}" (see --help)`);
  for (const needed of CALL_FLAGS[command] ?? []) {
    if (option(needed) === undefined)
      throw new UsageError(`${command} needs --${needed} ${CALL_FLAG_VALUES[needed]}`);
  }
  const given = option('timeout-ms');
  const timeoutMs =
    given === undefined
      ? command === 'pull-image'
        ? PULL_TIMEOUT_MS
        : spec.defaultTimeoutMs
      : Number(given);
  if (!Number.isInteger(timeoutMs) || timeoutMs <= 0)
    throw new UsageError('--timeout-ms must be a positive whole number');
  return { ...base, command, timeoutMs, need: (name) => option(name) as string };
}

/**
 * readCallCommandLine for a program's main: `--help` and `--version` are answered here
 * (undefined: nothing more to do); a usage error is one line on stderr and exit status 2.
 */
export function callCommandLineOrExit(
  program: string,
  usage: string,
  args: readonly string[],
  spec: CallCommandSpec,
): CallCommandLine | undefined {
  let line: CallCommandLine;
  try {
    line = readCallCommandLine(args, spec);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    exitWithMessage(program, error.message);
  }
  return answeredHelpOrVersion(program, usage, line) ? undefined : line;
}

/** The options of a program that takes no positional argument: name -> kind and short form. */
export type ProgramOptions = Readonly<Record<string, { type: 'string' | 'boolean'; short?: string }>>;

export type ProgramOptionValues<O extends ProgramOptions> = {
  readonly [K in keyof O]?: O[K]['type'] extends 'string' ? string : boolean;
};

/**
 * A program's options read strictly by node:util parseArgs, no positional argument, with
 * -h/--help and -V/--version added and answered here (undefined: nothing more to do); a usage
 * error is `<program>: <problem> (see --help)` on stderr and exit status 2.
 */
export function programOptionsOrExit<O extends ProgramOptions>(
  program: string,
  usage: string,
  options: O,
  args: readonly string[] = process.argv.slice(2),
): ProgramOptionValues<O> | undefined {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: [...args],
      options: {
        ...options,
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean', short: 'V' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (error) {
    exitWithMessage(program, `${(error as Error).message} (see --help)`);
  }
  const asked = { help: values['help'] === true, version: values['version'] === true };
  return answeredHelpOrVersion(program, usage, asked) ? undefined : (values as ProgramOptionValues<O>);
}

/** `--help` prints the usage, `--version` `<program> <version>`; true when one was answered. */
export function answeredHelpOrVersion(
  program: string,
  usage: string,
  asked: { readonly help: boolean; readonly version: boolean },
): boolean {
  if (asked.help) process.stdout.write(usage);
  else if (asked.version) process.stdout.write(`${program} ${packageVersion()}\n`);
  return asked.help || asked.version;
}

/** One line `<program>: <message>` on stderr, then exit with `code` (2, a usage error, unless told). */
export function exitWithMessage(program: string, message: string, code = 2): never {
  process.stderr.write(`${program}: ${message}\n`);
  process.exit(code);
}
