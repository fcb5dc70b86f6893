import { mkdirSync, rmSync } from 'node:fs';
import { EmulatorUsageError, parseCommandArgs, type EmulatorCommand, type RunningEmulator } from '../command';
import type { ClientKeySource } from './client-key-files';
import { OpenApiFixture, ROLE_NAME } from './openapi-scenario';
import { startAliyunScenario } from './scenario';

const HELP = `Options:
  --credential-dir DIR     where the client key files are written (created if missing, left in place;
                           default: a temp dir removed on exit)
  --instance-id ID         KMS instance id (default kst-demo0000000000000)
  --key-id ID              id of the symmetric key created (default: random)
  --client-key-file FILE   use this existing clientKey_<id>.json ...
  --password-file FILE     ... with this password file (console JSON or bare text) instead of a fresh key
  --openssl                make the fresh client key with \`openssl pkcs12 -export\` (default: node-forge)
  --openapi                also serve the KMS OpenAPI and ECS metadata emulators (ecs_ram_role
                           credentials: ecsRamRole.json in the credential dir)`;

const OPTIONS = {
  'credential-dir': { type: 'string' },
  'instance-id': { type: 'string' },
  'key-id': { type: 'string' },
  'client-key-file': { type: 'string' },
  'password-file': { type: 'string' },
  openssl: { type: 'boolean' },
  openapi: { type: 'boolean' },
} as const;

function clientKeySource(values: ReturnType<typeof parseCommandArgs<typeof OPTIONS>>): ClientKeySource {
  const clientKeyFile = values['client-key-file'];
  const passwordFile = values['password-file'];
  if ((clientKeyFile === undefined) !== (passwordFile === undefined))
    throw new EmulatorUsageError('--client-key-file and --password-file go together');
  if (clientKeyFile !== undefined && passwordFile !== undefined) {
    if (values.openssl)
      throw new EmulatorUsageError('--openssl makes a fresh key: not with --client-key-file');
    return { clientKeyFile, passwordFile };
  }
  return values.openssl ? 'openssl-default' : 'forge-aes256';
}

/**
 * `cdh-emulator aliyun`: the KMS instance gateway (client_key secrets) and, with --openapi, the
 * KMS OpenAPI and ECS metadata service (ecs_ram_role secrets), all on 127.0.0.1.
 */
export const aliyunCommand: EmulatorCommand = {
  name: 'aliyun',
  summary: 'Alibaba Cloud KMS: instance gateway (client_key), with --openapi the OpenAPI and ECS metadata',
  help: HELP,
  async start(args): Promise<RunningEmulator> {
    const values = parseCommandArgs(args, OPTIONS);
    const source = clientKeySource(values);
    const credentialDir = values['credential-dir'];
    if (credentialDir !== undefined) mkdirSync(credentialDir, { recursive: true, mode: 0o700 });
    const kms = await startAliyunScenario({
      source,
      ...(credentialDir === undefined ? {} : { credentialDir }),
      ...(values['instance-id'] === undefined ? {} : { instanceId: values['instance-id'] }),
      ...(values['key-id'] === undefined ? {} : { keyId: values['key-id'] }),
    });
    let openapi: OpenApiFixture | undefined;
    try {
      if (values.openapi) openapi = await OpenApiFixture.start({ credentialDir: kms.credentials.dir });
    } catch (error) {
      await kms.close();
      throw error;
    }
    const daemonConfig = {
      aliyun: { ...kms.daemonConfig.aliyun, ...(openapi ? openapi.daemonConfig(5000).aliyun : {}) },
    };
    return {
      description: {
        emulator: 'aliyun',
        pid: process.pid,
        endpoints: {
          dkms_gateway: kms.emulator.connectTo,
          dkms_host: kms.emulator.hostName,
          ...(openapi ? { openapi: openapi.openapi.endpoint, metadata: openapi.metadata.endpoint } : {}),
        },
        key_id: kms.keyId,
        kms_instance_id: kms.credentials.kmsInstanceId,
        client_key_id: kms.credentials.clientKeyId,
        credential_dir: kms.credentials.dir,
        credential_files: kms.credentials.paths,
        provider_settings: {
          client_key: kms.credentials.providerSettings,
          ...(openapi ? { ecs_ram_role: { client_type: 'ecs_ram_role' } } : {}),
        },
        ...(openapi ? { ecs_ram_role_name: ROLE_NAME, openapi_ca_file: openapi.caFile } : {}),
        daemon_config: daemonConfig,
        env: kms.env,
      },
      stats: () => ({
        dkms_gateway: kms.emulator.stats,
        ...(openapi ? { openapi: openapi.openapi.counters, metadata: openapi.metadata.counters } : {}),
      }),
      async close() {
        await Promise.all([kms.close(), openapi?.close()]);
        if (credentialDir === undefined) rmSync(kms.credentials.dir, { recursive: true, force: true });
      },
    };
  },
};
