import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { PACKAGE_ROOT } from '../../src/package-info';
import { tempDir } from '../../src/devtools/daemon';

const run = promisify(execFile);

/** What test/interop/python_grpc_client.py prints. */
export interface PythonGrpcAnswer {
  /** Check for "": its status name. */
  readonly health: string;
  /** Check for an unknown service: the gRPC code name ("NOT_FOUND"). */
  readonly check_unknown: string;
  /** The first status of a Watch, for "" and for an unknown service. */
  readonly watch: Readonly<Record<string, string>>;
  /** Reflection's list_services. */
  readonly services: readonly string[];
}

/**
 * Whether Debian's python3-grpcio and python3-grpc-tools are there; if not, skips `t` (and fails
 * it in CI, which installs them).
 */
export function pythonGrpcAvailable(t: { skip(message: string): void }): boolean {
  if (
    existsSync('/usr/lib/python3/dist-packages/grpc') &&
    existsSync('/usr/lib/python3/dist-packages/grpc_tools')
  )
    return true;
  if (process.env['CI'])
    assert.fail('python3-grpcio and python3-grpc-tools must be installed in CI (.ci/run)');
  t.skip(
    'python3-grpcio / python3-grpc-tools not installed (apt-get install python3-grpcio python3-grpc-tools)',
  );
  return false;
}

/** Runs test/interop/python_grpc_client.py against the daemon's socket. */
export async function pythonGrpcClient(socketPath: string): Promise<PythonGrpcAnswer> {
  const work = tempDir('cdh-py-');
  try {
    const { stdout } = await run(
      '/usr/bin/python3',
      [join(PACKAGE_ROOT, 'test/interop/python_grpc_client.py'), socketPath, work.path, PACKAGE_ROOT],
      { timeout: 30_000 },
    );
    return JSON.parse(stdout) as PythonGrpcAnswer;
  } finally {
    work.cleanup();
  }
}
