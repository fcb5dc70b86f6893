import { readFileSync } from 'node:fs';
import { status as GrpcStatus, type ServiceError } from '@grpc/grpc-js';
import { CdhClient } from '../../src/client/cdh-client';
import { ERROR_CATALOGUE } from '../../src/errors';
import { startClientKeyWorld, type ClientKeyWorld } from './client-key-world';
import { spawnDaemon, type DaemonProcess } from '../../src/devtools/daemon';

/**
 * The hardening load run: many UnsealSecret calls at a fixed concurrency against the daemon
 * process, a mix of valid envelope and vault secrets (each with its own plaintext) and invalid
 * inputs, with the gateway emulator failing a share of its calls. Used by the suite (small
 * count) and by `npm run load` (CDH_LOAD_COUNT=10000, the figures printed as test diagnostics).
 */

/** The statuses of the interface.md table: a failure outside them is not catalogued. */
export const INTERFACE_STATUSES: ReadonlySet<string> = new Set([
  'INVALID_ARGUMENT',
  'PERMISSION_DENIED',
  'NOT_FOUND',
  'FAILED_PRECONDITION',
  'DATA_LOSS',
  'UNAVAILABLE',
  'UNIMPLEMENTED',
  'RESOURCE_EXHAUSTED',
]);

const CATALOGUE_CODES: ReadonlySet<string> = new Set(Object.keys(ERROR_CATALOGUE));

export interface LoadItem {
  readonly label: string;
  readonly input: Buffer;
  /** OK items: the plaintext; failures: the status and catalogue code expected. */
  readonly plaintext?: string;
  readonly status?: string;
  readonly code?: string;
}

export interface LoadMix {
  readonly items: readonly LoadItem[];
  readonly validCount: number;
}

export interface MemorySample {
  readonly atCall: number;
  readonly rssKb: number;
  readonly hwmKb: number;
}

export interface LoadReport {
  readonly total: number;
  readonly concurrency: number;
  readonly kmsFailRatio: number;
  readonly durationMs: number;
  readonly callsPerSecond: number;
  readonly ok: number;
  readonly wrongPlaintexts: number;
  /** Failures by `STATUS CODE`. */
  readonly failures: Record<string, number>;
  /** Failures not in the interface table or without a catalogue code prefix (should be none). */
  readonly uncatalogued: string[];
  /** Answers that differ from what the item expects (other than KMS outages: UNAVAILABLE). */
  readonly unexpected: string[];
  /** The first few messages of KMS outages met by valid secrets (allowed, but worth reading). */
  readonly outageSamples: string[];
  readonly daemonAlive: boolean;
  readonly exitCode: number | null;
  readonly memory: {
    readonly rssStartKb: number;
    readonly rssAfterWarmupKb: number;
    readonly rssEndKb: number;
    readonly vmHwmKb: number;
    /** VmRSS every 5 % of the calls. */
    readonly rssSeriesKb: number[];
  };
  readonly emulator: { readonly decryptRequests: number; readonly injectedFailures: number };
}

/** VmRSS and VmHWM of a process, in kB. */
export function memoryOf(pid: number): { rssKb: number; hwmKb: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name: string): number =>
    Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { rssKb: field('VmRSS'), hwmKb: field('VmHWM') };
}

/** Valid secrets (distinct, so single-flight does not merge them) and invalid inputs. */
export async function buildLoadMix(world: ClientKeyWorld, validSecrets = 48): Promise<LoadMix> {
  const items: LoadItem[] = [];
  for (let i = 0; i < validSecrets; i++) {
    const plaintext = `load-plaintext-${i}-${'x'.repeat(i)}`;
    items.push({
      label: `envelope ${i}`,
      input: Buffer.from((await world.sealEnvelope(plaintext)).sealed),
      plaintext,
    });
  }
  for (let i = 0; i < 8; i++) {
    const name = `load-vault-${i}`;
    world.emulator.putSecretVersion(name, 'v1', `vault value ${i}`);
    items.push({
      label: `vault ${i}`,
      input: Buffer.from(world.sealVault(name)),
      plaintext: `vault value ${i}`,
    });
  }
  const validCount = items.length;
  const sample = await world.sealEnvelope('invalid-sample');
  const payload = sample.payload as unknown as Record<string, unknown>;
  const [prefix, header, body, signature = ''] = sample.sealed.split('.');
  const flipped = `${signature.startsWith('A') ? 'B' : 'A'}${signature.slice(1)}`;
  const tag = Buffer.from(String(payload['encrypted_data']), 'base64');
  tag[tag.length - 1] = (tag[tag.length - 1] ?? 0) ^ 1;
  const invalid: Array<[string, string | Buffer, string, string]> = [
    ['not a sealed secret', 'hello', 'INVALID_ARGUMENT', 'SEALED_SECRET_MALFORMED'],
    ['not UTF-8', Buffer.from([0x73, 0xff, 0xfe]), 'INVALID_ARGUMENT', 'SEALED_SECRET_MALFORMED'],
    ['bad signature', `${prefix}.${header}.${body}.${flipped}`, 'PERMISSION_DENIED', 'SIGNATURE_INVALID'],
    [
      'unknown kid',
      world.signRaw(JSON.stringify(payload), 'nope.json'),
      'PERMISSION_DENIED',
      'SIGNING_KEY_UNAVAILABLE',
    ],
    ['bad base64', world.sign({ ...payload, iv: 'AA AA' }), 'INVALID_ARGUMENT', 'PAYLOAD_INVALID'],
    [
      'wrong iv length',
      world.sign({ ...payload, iv: Buffer.alloc(16).toString('base64') }),
      'INVALID_ARGUMENT',
      'PAYLOAD_INVALID',
    ],
    [
      'unknown provider',
      world.sign({ ...payload, provider: 'nosuch' }),
      'INVALID_ARGUMENT',
      'PROVIDER_UNKNOWN',
    ],
    ['unknown KMS key', world.sign({ ...payload, key_id: 'no-such-key' }), 'NOT_FOUND', 'KMS_NOT_FOUND'],
    ['unknown vault secret', world.sealVault('no-such-secret'), 'NOT_FOUND', 'KMS_NOT_FOUND'],
    [
      'tampered data',
      world.sign({ ...payload, encrypted_data: tag.toString('base64') }),
      'DATA_LOSS',
      'DECRYPTION_FAILED',
    ],
    [
      'traversal in client_key_id',
      world.sign({
        ...payload,
        provider_settings: { ...(payload['provider_settings'] as object), client_key_id: '../x' },
      }),
      'INVALID_ARGUMENT',
      'PROVIDER_SETTINGS_INVALID',
    ],
    [
      'duplicate member name',
      world.signRaw(`{"type":"vault",${JSON.stringify(payload).slice(1)}`),
      'INVALID_ARGUMENT',
      'PAYLOAD_INVALID',
    ],
  ];
  for (const [label, input, status, code] of invalid)
    items.push({ label, input: Buffer.from(input), status, code });
  return { items, validCount };
}

export interface LoadOptions {
  readonly total: number;
  readonly concurrency?: number;
  readonly kmsFailRatio?: number;
  /** Log level of the daemon (default warn: 10,000 info lines would dominate the run). */
  readonly logLevel?: string;
  readonly onProgress?: (done: number) => void;
}

/** Runs the whole thing: emulator, daemon process, the calls, SIGTERM; returns the figures. */
export async function runLoadWithFaults(options: LoadOptions): Promise<LoadReport> {
  const concurrency = options.concurrency ?? 64;
  const kmsFailRatio = options.kmsFailRatio ?? 0.05;
  const world = await startClientKeyWorld();
  let daemon: DaemonProcess | undefined;
  try {
    const mix = await buildLoadMix(world);
    daemon = await spawnDaemon({
      config: {
        ...world.daemonConfig(5000),
        cache: { ttl_seconds: 0 },
        log: { level: options.logLevel ?? 'warn' },
      },
    });
    const pid = daemon.child.pid as number;
    world.emulator.resetStats();
    world.emulator.failRatio(kmsFailRatio, 20260101);
    const client = new CdhClient(daemon.target, { timeoutMs: 30_000 });
    const start = memoryOf(pid);
    const samples: MemorySample[] = [{ atCall: 0, ...start }];
    const failures: Record<string, number> = {};
    const uncatalogued: string[] = [];
    const unexpected: string[] = [];
    const outageSamples: string[] = [];
    let ok = 0;
    let wrongPlaintexts = 0;
    let next = 0;
    let done = 0;
    const sampleEvery = Math.max(1, Math.floor(options.total / 20));
    const started = Date.now();
    const worker = async (): Promise<void> => {
      for (let index = next++; index < options.total; index = next++) {
        const item = mix.items[index % mix.items.length] as LoadItem;
        try {
          const plaintext = await client.unsealSecret(item.input);
          ok++;
          if (item.plaintext === undefined || plaintext.toString() !== item.plaintext) {
            wrongPlaintexts++;
            unexpected.push(`${item.label}: OK`);
          }
        } catch (error) {
          const failure = error as ServiceError;
          const status = GrpcStatus[failure.code] ?? String(failure.code);
          const code = /^([A-Z_]+):/.exec(failure.details ?? '')?.[1] ?? '';
          failures[`${status} ${code}`] = (failures[`${status} ${code}`] ?? 0) + 1;
          if (!INTERFACE_STATUSES.has(status) || !CATALOGUE_CODES.has(code))
            uncatalogued.push(`${item.label}: ${status} ${failure.details}`);
          // A valid secret may meet a KMS outage (all retries failed); nothing else is allowed.
          const outage = status === 'UNAVAILABLE' && code === 'KMS_UNAVAILABLE';
          if (outage && outageSamples.length < 5) outageSamples.push(failure.details ?? '');
          if (item.plaintext !== undefined ? !outage : status !== item.status || code !== item.code)
            unexpected.push(`${item.label}: ${status} ${failure.details?.slice(0, 200)}`);
        }
        done++;
        if (done % sampleEvery === 0) {
          samples.push({ atCall: done, ...memoryOf(pid) });
          options.onProgress?.(done);
        }
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
    const durationMs = Date.now() - started;
    client.close();
    const end = memoryOf(pid);
    const daemonAlive = daemon.child.exitCode === null && daemon.child.signalCode === null;
    const exitCode = await daemon.stop();
    const warm = samples.find((s) => s.atCall >= options.total * 0.2) ?? samples[samples.length - 1] ?? start;
    return {
      total: options.total,
      concurrency,
      kmsFailRatio,
      durationMs,
      callsPerSecond: Math.round((options.total / durationMs) * 1000),
      ok,
      wrongPlaintexts,
      failures,
      uncatalogued,
      unexpected,
      outageSamples,
      daemonAlive,
      exitCode,
      memory: {
        rssStartKb: start.rssKb,
        rssAfterWarmupKb: warm.rssKb,
        rssEndKb: end.rssKb,
        vmHwmKb: end.hwmKb,
        rssSeriesKb: samples.map((sample) => sample.rssKb),
      },
      emulator: {
        decryptRequests: world.emulator.stats.requests['Decrypt'] ?? 0,
        injectedFailures: world.emulator.stats.ratioFailures,
      },
    };
  } finally {
    daemon?.cleanup();
    await world.close();
  }
}

/** The report's figures, one line each (printed by the load test). */
export function describeLoadReport(report: LoadReport): string[] {
  const failed = Object.values(report.failures).reduce((a, b) => a + b, 0);
  return [
    `calls ${report.total} at concurrency ${report.concurrency}, KMS failing ${report.kmsFailRatio * 100} % ` +
      `(${report.emulator.injectedFailures} injected of ${report.emulator.decryptRequests} Decrypt requests)`,
    `duration ${(report.durationMs / 1000).toFixed(1)} s, ${report.callsPerSecond} calls/s`,
    `ok ${report.ok}, wrong plaintexts ${report.wrongPlaintexts}, failed ${failed} ` +
      `(uncatalogued ${report.uncatalogued.length}, unexpected ${report.unexpected.length})`,
    `failures: ${Object.entries(report.failures)
      .map(([what, n]) => `${what} ${n}`)
      .join(', ')}`,
    `daemon alive at the end: ${report.daemonAlive}, exit code after SIGTERM: ${report.exitCode}`,
    `RSS start ${report.memory.rssStartKb} kB, after warm-up ${report.memory.rssAfterWarmupKb} kB, ` +
      `end ${report.memory.rssEndKb} kB; VmHWM ${report.memory.vmHwmKb} kB`,
  ];
}
