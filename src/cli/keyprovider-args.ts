import { readLevel, requireFlag, UsageError, type FlagSpec, type LevelArgs } from './args';
import type { AliAccess } from './secret-commands';

/** `secret keyprovider [--listen ADDR] PROVIDER-FLAGS`, and the `ali` flags `seal` shares. */

/** A failure of the command's environment (cannot listen, ...): one line, exit 1. */
export class CommandFailure extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CommandFailure';
  }
}

const ALI_FLAGS = {
  'password-file-path': 'string',
  'cert-path': 'string',
  'kms-instance-id': 'string',
  'client-key-file-path': 'string',
} as const;

/** The `ali` level: client key access to a KMS instance, plus the flags `extra` adds. */
export function readAliLevel(
  tokens: readonly string[],
  where: string,
  extra: FlagSpec = {},
): { access: AliAccess; level: LevelArgs } {
  const level = readLevel(tokens, { ...ALI_FLAGS, ...extra }, where);
  if (level.next !== undefined) throw new UsageError(`unexpected argument "${level.next}" after ${where}`);
  return {
    access: {
      passwordFilePath: requireFlag(level.flags, 'password-file-path', where),
      certPath: requireFlag(level.flags, 'cert-path', where),
      kmsInstanceId: requireFlag(level.flags, 'kms-instance-id', where),
      clientKeyFilePath: requireFlag(level.flags, 'client-key-file-path', where),
    },
    level,
  };
}

export type KeyproviderWrapping =
  | { readonly kind: 'ali'; readonly keyId: string; readonly access: AliAccess }
  | { readonly kind: 'kbs'; readonly kid: string; readonly kekFile: string };

export interface KeyproviderRequest {
  /** gRPC on this address; absent: one request on stdin (ocicrypt's `cmd` provider). */
  readonly listen: string | undefined;
  readonly wrapping: KeyproviderWrapping;
}

export function parseKeyproviderArgs(tokens: readonly string[]): KeyproviderRequest {
  const top = readLevel(tokens, { listen: 'string' }, 'keyprovider');
  const listen = top.flags['listen'];
  if (listen === '') throw new UsageError('option --listen needs a value');
  const asListen = typeof listen === 'string' ? listen : undefined;
  switch (top.next) {
    case 'ali': {
      const where = 'keyprovider ali';
      const { access, level } = readAliLevel(top.rest, where, { 'key-id': 'string' });
      return {
        listen: asListen,
        wrapping: { kind: 'ali', keyId: requireFlag(level.flags, 'key-id', where), access },
      };
    }
    case 'kbs': {
      const where = 'keyprovider kbs';
      const level = readLevel(top.rest, { kid: 'string', 'kek-file': 'string' }, where);
      if (level.next !== undefined)
        throw new UsageError(`unexpected argument "${level.next}" after ${where}`);
      const kid = requireFlag(level.flags, 'kid', where);
      return {
        listen: asListen,
        wrapping: { kind: 'kbs', kid, kekFile: requireFlag(level.flags, 'kek-file', where) },
      };
    }
    case undefined:
      throw new UsageError('keyprovider needs PROVIDER-FLAGS: "ali ..." or "kbs ..." (see --help)');
    default:
      throw new UsageError(`unknown key provider "${top.next}" (ali or kbs)`);
  }
}
