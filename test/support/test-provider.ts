import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { CdhError } from '../../src/errors';
import type {
  Annotations,
  CallContext,
  Decrypter,
  Encrypter,
  Getter,
  ProviderFactory,
  ProviderInstance,
  ProviderSettings,
} from '../../src/providers/types';

/**
 * An in-memory KMS for tests: a provider named `test` (by default) whose Decrypter and
 * Encrypter wrap data keys with AES-256-GCM under master keys held here (one per key id),
 * and whose Getter serves secrets from a map. Wrapped key = 12-byte IV ‖ ciphertext ‖ tag.
 */
export interface TestKmsOptions {
  /** Provider name as registered (default `test`). */
  readonly name?: string;
  /** Key ids to create master keys for. */
  readonly keyIds?: readonly string[];
  /** Vault secrets, name → value. */
  readonly secrets?: Readonly<Record<string, string | Uint8Array>>;
  /** Delay of every KMS call (deadline and cancellation tests); aborted by ctx.signal. */
  readonly latencyMs?: number;
}

export interface TestKmsCalls {
  create: number;
  decrypt: number;
  encrypt: number;
  getSecret: number;
}

const IV_BYTES = 12;
const TAG_BYTES = 16;

/** Annotations the Encrypter returns and the Decrypter checks are passed back. */
export const TEST_ANNOTATIONS: Readonly<Record<string, string>> = { wrapped_by: 'test-kms' };

export class TestKms {
  readonly name: string;
  readonly calls: TestKmsCalls = { create: 0, decrypt: 0, encrypt: 0, getSecret: 0 };
  /** Provider settings the factory was last given. */
  lastSettings: ProviderSettings | undefined;
  private readonly masterKeys = new Map<string, Buffer>();
  private readonly secrets = new Map<string, Buffer>();
  private readonly latencyMs: number;
  /** The ProviderFactory to put in a ProviderRegistry. */
  readonly factory: ProviderFactory;

  constructor(options: TestKmsOptions = {}) {
    this.name = options.name ?? 'test';
    this.factory = {
      name: this.name,
      create: (settings: ProviderSettings): ProviderInstance => {
        this.calls.create++;
        this.lastSettings = settings;
        return this.instance();
      },
    };
    this.latencyMs = options.latencyMs ?? 0;
    for (const keyId of options.keyIds ?? []) this.addKey(keyId);
    for (const [name, value] of Object.entries(options.secrets ?? {})) this.setSecret(name, value);
  }

  /** Creates a master key for `keyId` (random unless given: fixtures wrapped elsewhere need it fixed). */
  addKey(keyId: string, masterKey: Uint8Array = randomBytes(32)): void {
    this.masterKeys.set(keyId, Buffer.from(masterKey));
  }

  setSecret(name: string, value: string | Uint8Array): void {
    this.secrets.set(name, Buffer.from(value));
  }

  /** Wraps any bytes (e.g. a 16-byte "data key") as the Encrypter would, synchronously. */
  wrap(keyId: string, plaintext: Uint8Array): Buffer {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.masterKey(keyId), iv);
    return Buffer.concat([iv, cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
  }

  unwrap(keyId: string, wrapped: Uint8Array): Buffer {
    const masterKey = this.masterKey(keyId);
    if (wrapped.length < IV_BYTES + TAG_BYTES) throw rejected(keyId);
    const data = Buffer.from(wrapped);
    const decipher = createDecipheriv('aes-256-gcm', masterKey, data.subarray(0, IV_BYTES));
    decipher.setAuthTag(data.subarray(data.length - TAG_BYTES));
    try {
      return Buffer.concat([
        decipher.update(data.subarray(IV_BYTES, data.length - TAG_BYTES)),
        decipher.final(),
      ]);
    } catch {
      throw rejected(keyId);
    }
  }

  private instance(): ProviderInstance {
    const decrypter: Decrypter = {
      decrypt: async (ciphertext: Uint8Array, keyId: string, _annotations: Annotations, ctx: CallContext) => {
        this.calls.decrypt++;
        await this.delay(ctx);
        return this.unwrap(keyId, ciphertext);
      },
    };
    const encrypter: Encrypter = {
      encrypt: async (plaintext: Uint8Array, keyId: string, ctx: CallContext) => {
        this.calls.encrypt++;
        await this.delay(ctx);
        return { ciphertext: this.wrap(keyId, plaintext), annotations: { ...TEST_ANNOTATIONS } };
      },
    };
    const getter: Getter = {
      getSecret: async (name: string, _annotations: Annotations, ctx: CallContext) => {
        this.calls.getSecret++;
        await this.delay(ctx);
        const value = this.secrets.get(name);
        if (value === undefined)
          throw new CdhError('KMS_NOT_FOUND', `test kms: secret ${JSON.stringify(name)} not found`);
        return Buffer.from(value);
      },
    };
    return { label: this.name, decrypter, encrypter, getter };
  }

  private masterKey(keyId: string): Buffer {
    const key = this.masterKeys.get(keyId);
    if (key === undefined)
      throw new CdhError('KMS_NOT_FOUND', `test kms: key ${JSON.stringify(keyId)} not found`);
    return key;
  }

  private delay(ctx: CallContext): Promise<void> {
    if (ctx.signal.aborted) return Promise.reject(ctx.signal.reason);
    if (this.latencyMs <= 0) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        ctx.signal.removeEventListener('abort', onAbort);
        resolve();
      }, this.latencyMs);
      const onAbort = (): void => {
        clearTimeout(timer);
        reject(ctx.signal.reason);
      };
      ctx.signal.addEventListener('abort', onAbort, { once: true });
    });
  }
}

function rejected(keyId: string): CdhError {
  return new CdhError(
    'KMS_REQUEST_REJECTED',
    `test kms: encrypted_key does not decrypt under key ${JSON.stringify(keyId)}`,
  );
}
