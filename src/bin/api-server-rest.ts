#!/usr/bin/env node
import { exitWithMessage, programOptionsOrExit } from '../cli/args';
import { AttestationAgentClient } from '../client/aa-client';
import { CdhTtrpcClient } from '../client/cdh-ttrpc-client';
import { ttrpcSocketPath } from '../client/ttrpc-client';
import { LOG_LEVELS, type LogLevel } from '../config/types';
import { createLogger } from '../log';
import { packageVersion } from '../package-info';
import {
  DEFAULT_AA_ADDR,
  DEFAULT_BIND,
  DEFAULT_CALL_TIMEOUT_MS,
  DEFAULT_CDH_ADDR,
  DEFAULT_FEATURE,
  parseBind,
  parseFeature,
  parsePositiveInteger,
  RestOptionError,
} from '../rest/options';
import { RestRouter } from '../rest/router';
import { DEFAULT_LIMITS, RestServer } from '../rest/server';

const USAGE = `Usage: api-server-rest [-b|--bind ADDR] [-f|--features resource|attestation|all]
                       [-c|--cdh_addr ADDR] [-a|--aa_addr ADDR]

The pod's REST front (drop-in for upstream's api-server-rest): HTTP for the containers, in front
of the Confidential Data Hub's and the attestation agent's ttrpc sockets. Only loopback callers
are served (others get 403).

  GET  /cdh/resource/<repo>/<type>/<tag>            (resource)     the resource's bytes
  GET  /aa/token?token_type=kbs                     (attestation)  the agent's token
  GET  /aa/evidence?runtime_data=X[&encoding=base64]  (attestation)  the agent's evidence
  GET  /aa/additional-evidence?runtime_data=X[&encoding=base64]
  POST /aa/aael {"domain","operation","content"}   (attestation)  extend the runtime measurement
  GET  /info                                        version, TEE type, features

Options:
  -b, --bind ADDR          IPv4:port or [IPv6]:port to listen on (default ${DEFAULT_BIND})
  -f, --features NAME      resource, attestation or all (default ${DEFAULT_FEATURE})
  -c, --cdh_addr ADDR      the daemon's ttrpc socket (default ${DEFAULT_CDH_ADDR})
  -a, --aa_addr ADDR       the attestation agent's ttrpc socket
                           (default ${DEFAULT_AA_ADDR})
      --timeout-ms N       deadline of every call to the daemon or the agent (default ${DEFAULT_CALL_TIMEOUT_MS})
      --max-connections N  open connections at most; at the limit the oldest idle one is closed
                           (default ${DEFAULT_LIMITS.maxConnections})
      --log-level LEVEL    ${LOG_LEVELS.join(', ')} (default info)
  -h, --help               this help
  -V, --version            the version

Logs: one JSON line per request on stdout (method, path, query parameter names, status, ms).
SIGTERM/SIGINT: stop accepting, finish answers in progress (at most 5 s), exit 0.
`;

const PROGRAM = 'api-server-rest';

async function main(): Promise<void> {
  const values = programOptionsOrExit(PROGRAM, USAGE, {
    bind: { type: 'string', short: 'b' },
    features: { type: 'string', short: 'f' },
    cdh_addr: { type: 'string', short: 'c' },
    aa_addr: { type: 'string', short: 'a' },
    'timeout-ms': { type: 'string' },
    'max-connections': { type: 'string' },
    'log-level': { type: 'string' },
  });
  if (values === undefined) return;

  let settings;
  try {
    const feature = parseFeature(values.features ?? DEFAULT_FEATURE);
    const cdhAddr = values.cdh_addr ?? DEFAULT_CDH_ADDR;
    const aaAddr = values.aa_addr ?? DEFAULT_AA_ADDR;
    for (const [flag, address] of [
      ['--cdh_addr', cdhAddr],
      ['--aa_addr', aaAddr],
    ] as const) {
      try {
        ttrpcSocketPath(address);
      } catch (error) {
        throw new RestOptionError(`${flag}: ${(error as Error).message}`);
      }
    }
    const logLevel = values['log-level'] ?? 'info';
    if (!(LOG_LEVELS as readonly string[]).includes(logLevel))
      throw new RestOptionError(`--log-level must be one of ${LOG_LEVELS.join(', ')}`);
    settings = {
      bind: parseBind(values.bind ?? DEFAULT_BIND),
      feature,
      cdhAddr,
      aaAddr,
      logLevel: logLevel as LogLevel,
      timeoutMs:
        values['timeout-ms'] === undefined
          ? DEFAULT_CALL_TIMEOUT_MS
          : parsePositiveInteger('--timeout-ms', values['timeout-ms']),
      maxConnections:
        values['max-connections'] === undefined
          ? DEFAULT_LIMITS.maxConnections
          : parsePositiveInteger('--max-connections', values['max-connections']),
    };
  } catch (error) {
    if (error instanceof RestOptionError) exitWithMessage(PROGRAM, error.message);
    throw error;
  }

  const logger = createLogger(settings.logLevel);
  // As upstream: nothing is dialled until the first request needs it.
  const cdh = settings.feature === 'attestation' ? undefined : new CdhTtrpcClient(settings.cdhAddr);
  const aa = settings.feature === 'resource' ? undefined : new AttestationAgentClient(settings.aaAddr);
  const router = new RestRouter({
    version: packageVersion(),
    feature: settings.feature,
    ...(cdh ? { cdh } : {}),
    ...(aa ? { aa } : {}),
    callTimeoutMs: settings.timeoutMs,
  });
  const server = new RestServer({ router, logger, limits: { maxConnections: settings.maxConnections } });
  let address;
  try {
    address = await server.listen(settings.bind.host, settings.bind.port);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
    logger.fatal({ err: code }, 'start-up failed');
    logger.flush();
    exitWithMessage(PROGRAM, `cannot listen on ${values.bind ?? DEFAULT_BIND}: ${code}`, 1);
  }
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  logger.info(
    {
      address: `http://${host}:${address.port}`,
      features: settings.feature,
      ...(cdh ? { cdh_addr: settings.cdhAddr } : {}),
      ...(aa ? { aa_addr: settings.aaAddr } : {}),
    },
    'API server listening',
  );

  let signals = 0;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (++signals > 1) {
      logger.flush();
      process.exit(1);
    }
    logger.info({ signal }, 'signal received');
    void server.close().then(() => {
      cdh?.close();
      aa?.close();
      logger.flush();
      process.exit(0);
    });
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}

main().catch((error: unknown) => {
  exitWithMessage(PROGRAM, `unexpected failure: ${(error as Error)?.stack ?? String(error)}`, 1);
});
