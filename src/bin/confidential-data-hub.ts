#!/usr/bin/env node
import { exitWithMessage, programOptionsOrExit } from '../cli/args';
import { ConfigError, loadConfig } from '../config/load';
import { createLogger, settleStdoutLog } from '../log';
import { ADDRESS_FILE_ENV } from '../server/address-file';
import { SHUTDOWN_GRACE_MS, startDaemon } from '../app/daemon';
import { StartupError } from '../server/listener';

const USAGE = `Usage: confidential-data-hub [-c|--config FILE] [--socket ADDR] [--log-level LEVEL]

Confidential Data Hub: unseals sealed secrets and serves KBS resources to the workloads of a
confidential VM, over gRPC and ttrpc on one socket.

Options:
  -c, --config FILE     configuration file (.toml or .json); without it, built-in defaults
      --socket ADDR     listen address: unix:///abs/path, unix:/abs/path or host:port
                        (default unix:///run/confidential-containers/cdh.sock)
      --log-level LEVEL fatal, error, warn, info, debug, trace or silent (default info)
  -h, --help            this help
  -V, --version         the version

Environment: ALIYUN_IN_GUEST_KEY_PATH, ALIYUN_DKMS_CONNECT_TO, ALIYUN_OPENAPI_ENDPOINT,
ALIYUN_OPENAPI_CA_FILE, ALIYUN_METADATA_ENDPOINT, SKIP_SEALED_SECRET_VERIFICATION=true,
OFFLINE_FS_KBC_EXTRA_FILE_PATH, CDH_ADDRESS_FILE=FILE (write the address served on to FILE
while serving, for cdh-tool and health checks).
SIGTERM/SIGINT/SIGHUP: stop gracefully (in-flight calls finish, socket removed); a second
signal exits at once.
`;

/** At exit, how long queued log lines may take to reach stdout. */
const LOG_SETTLE_MS = 500;
/** Beyond the grace period: closing connections, providers and the log. */
const EXIT_MARGIN_MS = 2000;

const PROGRAM = 'confidential-data-hub';

async function main(): Promise<void> {
  const values = programOptionsOrExit(PROGRAM, USAGE, {
    config: { type: 'string', short: 'c' },
    socket: { type: 'string' },
    'log-level': { type: 'string' },
  });
  if (values === undefined) return;

  let loaded;
  try {
    loaded = loadConfig(values.config, process.env, {
      ...(values.socket === undefined ? {} : { socket: values.socket }),
      ...(values['log-level'] === undefined ? {} : { logLevel: values['log-level'] }),
    });
  } catch (error) {
    if (error instanceof ConfigError) exitWithMessage(PROGRAM, error.message);
    throw error;
  }
  const logger = createLogger(loaded.config.log.level);
  for (const warning of loaded.warnings) logger.warn(warning);

  let daemon;
  try {
    const addressFile = process.env[ADDRESS_FILE_ENV] || undefined;
    daemon = await startDaemon(loaded.config, { logger, ...(addressFile ? { addressFile } : {}) });
  } catch (error) {
    if (error instanceof StartupError || error instanceof ConfigError) {
      logger.fatal({ err: error.message }, 'start-up failed');
      await settleStdoutLog(LOG_SETTLE_MS);
      exitWithMessage(PROGRAM, error.message);
    }
    throw error;
  }

  let signals = 0;
  const onSignal = (signal: NodeJS.Signals): void => {
    signals++;
    if (signals > 1) {
      logger.warn({ signal }, 'second signal: exiting at once');
      daemon.kill();
      process.exit(1);
    }
    logger.info({ signal }, 'signal received');
    // Whatever holds the shutdown (a hung provider, a stdout nobody reads), exit on time.
    setTimeout(() => {
      daemon.kill();
      process.exit(1);
    }, SHUTDOWN_GRACE_MS + EXIT_MARGIN_MS).unref();
    void daemon.stop().then(async () => {
      await settleStdoutLog(LOG_SETTLE_MS);
      process.exit(0);
    });
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  // Upstream stops on SIGHUP too; a reload would have to swap providers and keys under
  // running calls for little gain: the config is read once, as upstream does.
  process.on('SIGHUP', onSignal);
}

main().catch((error: unknown) => {
  exitWithMessage(PROGRAM, `unexpected failure: ${(error as Error)?.stack ?? String(error)}`, 1);
});
