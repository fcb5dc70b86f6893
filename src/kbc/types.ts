import type { ResourceReader } from '../providers/types';

export type KbcName = 'offline_fs_kbc' | 'cc_kbc';

/**
 * A Key Broker Client: reads KBS resources by URI. Everything that needs a KBS resource
 * (GetResource, [[credentials]], `kbs://` kids, the `kbs` vault provider) goes through the one
 * instance the daemon builds from `[kbc]`.
 */
export interface Kbc extends ResourceReader {
  readonly name: KbcName;
  /** Drops tokens and keys, aborts requests in flight. */
  close?(): void;
}
