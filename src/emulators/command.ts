import { parseArgs, type ParseArgsConfig } from 'node:util';

/**
 * One `cdh-emulator <name>` subcommand. Each lives in its own file and is listed once in
 * ./commands.ts; the bin does the rest (printing, signals, stats).
 */
export interface EmulatorCommand {
  readonly name: string;
  /** One line for the command list. */
  readonly summary: string;
  /** The subcommand's options, as printed by `cdh-emulator <name> --help`. */
  readonly help: string;
  /** Starts the emulators; throws UsageError for bad arguments. */
  start(args: readonly string[]): Promise<RunningEmulator>;
}

export interface RunningEmulator {
  /** Printed as one JSON line on stdout once serving: endpoints, daemon config, env. */
  readonly description: Readonly<Record<string, unknown>>;
  /** Request counters, printed on SIGUSR2. */
  stats(): Readonly<Record<string, unknown>>;
  close(): Promise<void>;
}

export class EmulatorUsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'EmulatorUsageError';
  }
}

/** node:util parseArgs for a subcommand, its errors turned into EmulatorUsageError. */
export function parseCommandArgs<O extends NonNullable<ParseArgsConfig['options']>>(
  args: readonly string[],
  options: O,
): ReturnType<
  typeof parseArgs<{ args: string[]; options: O; strict: true; allowPositionals: false }>
>['values'] {
  try {
    return parseArgs({ args: [...args], options, strict: true, allowPositionals: false }).values;
  } catch (error) {
    throw new EmulatorUsageError((error as Error).message);
  }
}
