import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { PACKAGE_ROOT } from '../../src/package-info';
import { startTtrpcFixture, type TtrpcFixture } from '../support/ttrpc-fixture';

/**
 * Interop with containerd's own Go ttrpc client (Debian: golang-go,
 * golang-github-containerd-ttrpc-dev): test/interop/ttrpc-go/main.go calls UnsealSecret on
 * an in-process TtrpcServer. Skipped when Go or the library is not installed.
 */

const run = promisify(execFile);
const GO_TTRPC_SOURCE = '/usr/share/gocode/src/github.com/containerd/ttrpc';

function missingToolchain(): string | undefined {
  if (spawnSync('go', ['version']).status !== 0) {
    return 'Go is not installed (apt-get install -y golang-go golang-github-containerd-ttrpc-dev)';
  }
  if (!existsSync(GO_TTRPC_SOURCE)) {
    return `containerd's Go ttrpc library is not installed at ${GO_TTRPC_SOURCE} (apt-get install -y golang-github-containerd-ttrpc-dev)`;
  }
  return undefined;
}

describe('ttrpc interop with containerd/ttrpc (Go)', { timeout: 180_000 }, () => {
  const skipReason = missingToolchain();
  // CI installs the toolchain (.ci/run): there a missing one is a failure, not a skip.
  if (skipReason && process.env['CI'])
    throw new Error(`CI must install the Go ttrpc toolchain: ${skipReason}`);
  let workDir: string;
  let client: string;
  let fixture: TtrpcFixture;
  let buildSeconds = 0;

  before(async () => {
    if (skipReason) return;
    workDir = await mkdtemp(path.join(os.tmpdir(), 'cdh-ttrpc-go-'));
    client = path.join(workDir, 'ttrpc-unseal');
    const script = path.join(PACKAGE_ROOT, 'test', 'interop', 'ttrpc-go', 'run.sh');
    const started = Date.now();
    await run(script, ['--build', client], { timeout: 170_000 });
    buildSeconds = (Date.now() - started) / 1000;
    fixture = await startTtrpcFixture();
  });

  after(async () => {
    if (skipReason) return;
    await fixture?.close();
    await rm(workDir, { recursive: true, force: true });
  });

  /** Runs the Go client; resolves with its stdout and exit code. */
  async function unsealWithGo(secret: string): Promise<{ stdout: string; code: number }> {
    try {
      const { stdout } = await run(client, [fixture.socketPath, secret], { timeout: 30_000 });
      return { stdout, code: 0 };
    } catch (error) {
      const failed = error as { stdout?: string; stderr?: string; code?: number };
      if (failed.code === 1) return { stdout: failed.stdout ?? '', code: 1 };
      throw new Error(`the Go client failed: ${failed.stderr ?? String(error)}`, { cause: error });
    }
  }

  it('gets the plaintext of UnsealSecret', async (t) => {
    if (skipReason) return t.skip(skipReason);
    // Reported for the CI budget: the build is the slow part of this file.
    t.diagnostic(`Go ttrpc client built in ${buildSeconds.toFixed(1)} s`);
    const result = await unsealWithGo('echo:plaintext from the Go client');
    assert.deepEqual(result, { stdout: 'plaintext plaintext from the Go client\n', code: 0 });
  });

  it('gets the status code and message of a failed UnsealSecret', async (t) => {
    if (skipReason) return t.skip(skipReason);
    const result = await unsealWithGo('fail:SIGNATURE_INVALID:the JWS signature does not verify');
    assert.deepEqual(result, {
      stdout: 'status 7 SIGNATURE_INVALID: the JWS signature does not verify\n',
      code: 1,
    });
    const missing = await unsealWithGo('not sealed');
    assert.equal(missing.code, 1);
    assert.match(missing.stdout, /^status 3 SEALED_SECRET_MALFORMED: /);
  });

  it('is served concurrently with other Go clients', async (t) => {
    if (skipReason) return t.skip(skipReason);
    const results = await Promise.all(
      ['slow:300:one', 'slow:100:two', 'echo:three'].map((secret) => unsealWithGo(secret)),
    );
    assert.deepEqual(
      results.map((result) => result.stdout),
      ['plaintext one\n', 'plaintext two\n', 'plaintext three\n'],
    );
  });
});
