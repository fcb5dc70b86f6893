import { existsSync, statSync } from 'node:fs';
import { createTestCa } from '../pki';
import { EmulatorUsageError, parseCommandArgs, type EmulatorCommand, type RunningEmulator } from '../command';
import type { JweProducer } from './jwe-producer';
import { KbsEmulator, type KbsFaultKind } from './server';

const FAULTS: readonly KbsFaultKind[] = [
  'unauthorized',
  'forbidden',
  'not-found',
  'server-error',
  'hang',
  'corrupt-tag',
];

const HELP = `Options:
  --resources DIR     serves <DIR>/<repo>/<type>/<tag> (other plugins: <DIR>/+<plugin>/<path>) (required)
  --https HOST        HTTPS with a throw-away CA and a certificate for HOST (printed: kbs_cert, connect_to)
  --port N            listen port on 127.0.0.1 (default: ephemeral)
  --producer NAME     JWE producer: jose (default) or jwcrypto (Debian python3-jwcrypto)
  --token-ttl S       token lifetime in seconds (default 300)
  --fault KIND[:N]    inject a fault into the next N resource requests (default: all): ${FAULTS.join(', ')}`;

const OPTIONS = {
  resources: { type: 'string' },
  https: { type: 'string' },
  port: { type: 'string' },
  producer: { type: 'string' },
  'token-ttl': { type: 'string' },
  fault: { type: 'string', multiple: true },
} as const;

/**
 * `cdh-emulator kbs`: a Trustee-compatible KBS for the `sample` TEE (auth/attest, signed
 * tokens, resources as JWE to the token's TEE key), on 127.0.0.1.
 */
export const kbsCommand: EmulatorCommand = {
  name: 'kbs',
  summary: 'a Key Broker Service (sample TEE attestation, resources from a directory as JWE)',
  help: HELP,
  async start(args): Promise<RunningEmulator> {
    const values = parseCommandArgs(args, OPTIONS);
    const resourceDir = values.resources;
    if (resourceDir === undefined || !existsSync(resourceDir) || !statSync(resourceDir).isDirectory())
      throw new EmulatorUsageError('--resources DIR (an existing directory) is required');
    const producer = (values.producer ?? 'jose') as JweProducer;
    if (producer !== 'jose' && producer !== 'jwcrypto')
      throw new EmulatorUsageError('--producer is jose or jwcrypto');
    const port = values.port === undefined ? 0 : Number(values.port);
    if (!Number.isInteger(port) || port < 0 || port > 65535)
      throw new EmulatorUsageError('--port must be 0..65535');
    const ttl = values['token-ttl'] === undefined ? 300 : Number(values['token-ttl']);
    if (!Number.isInteger(ttl) || ttl < 1)
      throw new EmulatorUsageError('--token-ttl must be a positive integer');
    const host = values.https;
    const ca = host ? createTestCa('cdh-emulator KBS CA') : undefined;
    const cert = ca && host ? ca.issueServerCert([host]) : undefined;
    const kbs = new KbsEmulator({
      resourceDir,
      port,
      producer,
      tokenTtlSeconds: ttl,
      ...(cert ? { tls: { cert: cert.chainPem, key: cert.keyPem } } : {}),
    });
    for (const spec of values.fault ?? []) {
      const [kind, count] = spec.split(':');
      if (!FAULTS.includes(kind as KbsFaultKind))
        throw new EmulatorUsageError(`--fault ${spec}: unknown kind`);
      kbs.inject({ kind: kind as KbsFaultKind, ...(count === undefined ? {} : { count: Number(count) }) });
    }
    const local = await kbs.start();
    const url = host ? `https://${host}:${kbs.port}` : local;
    return {
      description: {
        emulator: 'kbs',
        pid: process.pid,
        endpoints: { kbs: local },
        url,
        ...(ca ? { kbs_cert: ca.certPem, connect_to: `127.0.0.1:${kbs.port}` } : {}),
        daemon_config: { kbc: { name: 'cc_kbc', url, ...(ca ? { kbs_cert: ca.certPem } : {}) } },
        env: ca ? { CDH_KBS_CONNECT_TO: `127.0.0.1:${kbs.port}` } : {},
      },
      stats: () => ({ kbs: kbs.counters }),
      close: () => kbs.close(),
    };
  },
};
