import type { Logger } from 'pino';
import type { CdhConfig } from '../config/types';

/** Provider options carried by a sealed secret (`annotations`), always string → string. */
export type Annotations = Readonly<Record<string, string>>;

/** `provider_settings` of a sealed secret: a JSON object, validated by each provider. */
export type ProviderSettings = Readonly<Record<string, unknown>>;

/** Per-call context: the caller's deadline/cancellation as an AbortSignal. */
export interface CallContext {
  readonly signal: AbortSignal;
  /**
   * Called when the call goes on to wait for work another call already started (an identical
   * KMS request in flight): it costs nothing more than waiting, so it gives back its slot.
   */
  readonly onSharedWork?: () => void;
}

/** Unwraps a data key (envelope secrets). */
export interface Decrypter {
  decrypt(ciphertext: Uint8Array, keyId: string, annotations: Annotations, ctx: CallContext): Promise<Buffer>;
}

/** Wraps a data key (sealing side). Returns the annotations the Decrypter will need. */
export interface Encrypter {
  encrypt(
    plaintext: Uint8Array,
    keyId: string,
    ctx: CallContext,
  ): Promise<{ ciphertext: Buffer; annotations: Record<string, string> }>;
}

/** Fetches a named secret's value (vault secrets). */
export interface Getter {
  getSecret(name: string, annotations: Annotations, ctx: CallContext): Promise<Buffer>;
}

/** Reads KBS resources (`kbs://<host>/<repo>/<type>/<tag>`) through the configured KBC. */
export interface ResourceReader {
  getResource(uri: string, ctx: CallContext): Promise<Buffer>;
}

/** One provider built from one set of provider_settings. Absent capability = not supported. */
export interface ProviderInstance {
  /** Names the provider (and client type) in error messages, e.g. `aliyun (client_type sts_token)`. */
  readonly label: string;
  readonly decrypter?: Decrypter;
  readonly encrypter?: Encrypter;
  readonly getter?: Getter;
  /** Why a capability is absent, when there is a better explanation than "not supported". */
  readonly unsupportedReason?: Partial<Record<Capability, string>>;
  /** Releases sockets, timers and key material. */
  close?(): void | Promise<void>;
}

export type Capability = 'decrypter' | 'encrypter' | 'getter';

/** What a provider factory may use: its own section of the configuration, a logger, the KBC's resources. */
export interface ProviderContext<Section = unknown> {
  /** What the factory's `configSection` picks of the configuration; nothing else of it. */
  readonly config: Section;
  readonly logger: Logger;
  readonly resources?: ResourceReader;
}

/** What the registry is built with: the whole configuration, of which each factory gets its section. */
export interface RegistryContext {
  readonly config: CdhConfig;
  readonly logger: Logger;
  readonly resources?: ResourceReader;
}

export interface ProviderFactory<Section = unknown> {
  /** Lower-case provider name as it appears in `provider` (matched case-insensitively). */
  readonly name: string;
  /**
   * Whether answers may be cached (default true). A provider that reads local files that can
   * change at any time, and cheaply, says false so edits show at once.
   */
  readonly cacheable?: boolean;
  /**
   * The part of provider_settings that determines an instance (default: all of it). Instances
   * are cached by it and built from it, so fields a provider ignores cannot mint new ones.
   */
  identity?(settings: ProviderSettings): ProviderSettings;
  /** Picks the part of the configuration this provider reads (default: none of it). */
  configSection?(config: CdhConfig): Section;
  /** Validates settings (throws PROVIDER_SETTINGS_INVALID) and builds an instance. May be async (file reads). */
  create(
    settings: ProviderSettings,
    ctx: ProviderContext<Section>,
  ): ProviderInstance | Promise<ProviderInstance>;
}

/** The context `factory` builds its instances with: its own config section, nothing else of the config. */
export function contextFor<Section>(
  factory: ProviderFactory<Section>,
  context: RegistryContext,
): ProviderContext<Section> {
  const config = (factory.configSection?.(context.config) ?? {}) as Section;
  return { ...context, config };
}
