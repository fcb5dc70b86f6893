import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { tempDir } from './daemon';

const run = promisify(execFile);

export interface RegistryOptions {
  /** htpasswd file: the registry answers Basic challenges. */
  htpasswd?: string;
  /** Token auth: the registry answers Bearer challenges pointing at `realm`. */
  token?: { realm: string; service: string; issuer: string; rootCertBundle: string };
  /** Serve HTTPS with this certificate and key (PEM files). */
  tls?: { certificate: string; key: string };
}

export interface TestRegistry {
  /** `127.0.0.1:<port>` */
  readonly host: string;
  /** Request lines seen so far: `GET /v2/...` (from the access log). */
  requests(): string[];
  /** The registry's storage root (tests tamper with blobs there). */
  readonly dataDir: string;
  /** Blob GETs of `digest` so far (HEAD excluded). */
  blobGets(digest: string): number;
  stop(): Promise<void>;
}

/** Debian's docker-registry on 127.0.0.1, ephemeral port, temp storage, access log parsed. */
export async function startRegistry(options: RegistryOptions = {}): Promise<TestRegistry> {
  const dir = tempDir('cdh-registry-');
  const config = join(dir.path, 'config.yml');
  writeFileSync(config, registryConfig(join(dir.path, 'data'), options));
  const child: ChildProcess = spawn('docker-registry', ['serve', config], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const onData = (chunk: Buffer): void => {
    out += chunk.toString('utf8');
  };
  child.stdout?.on('data', onData);
  child.stderr?.on('data', onData);
  const host = await listeningOn(child, () => out);
  const requests = (): string[] =>
    [...out.matchAll(/"((?:GET|HEAD|PUT|POST|PATCH|DELETE) \/v2\/[^ "]*)/g)].map((m) => m[1] as string);
  return {
    host,
    dataDir: join(dir.path, 'data'),
    requests,
    blobGets: (digest) =>
      requests().filter((r) => r.startsWith('GET ') && r.endsWith(`/blobs/${digest}`)).length,
    async stop() {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        await new Promise((resolve) => child.once('exit', resolve));
      }
      dir.cleanup();
    },
  };
}

/** `skopeo copy oci:<layout>:<tag> docker://<host>/<repo>` over plain HTTP. */
export async function pushImage(
  layout: string,
  tag: string,
  target: string,
  extra: readonly string[] = [],
): Promise<void> {
  await run(
    'skopeo',
    ['copy', '--quiet', '--dest-tls-verify=false', ...extra, `oci:${layout}:${tag}`, `docker://${target}`],
    { timeout: 120_000, maxBuffer: 1 << 24 },
  );
}

/** The manifest digest the registry serves for `ref` (skopeo's view). */
export async function remoteDigest(ref: string, extra: readonly string[] = []): Promise<string> {
  const { stdout } = await run(
    'skopeo',
    ['inspect', '--tls-verify=false', ...extra, '--raw', `docker://${ref}`],
    {
      encoding: 'buffer',
      maxBuffer: 1 << 24,
    },
  );
  const { createHash } = await import('node:crypto');
  return `sha256:${createHash('sha256').update(stdout).digest('hex')}`;
}

/** docker-registry's config.yml for `options`, storage under `dataDir`. */
function registryConfig(dataDir: string, options: RegistryOptions): string {
  const lines = [
    'version: 0.1',
    'log:',
    '  level: info',
    '  accesslog:',
    '    disabled: false',
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${dataDir}`,
    '  delete:',
    '    enabled: true',
    'http:',
    '  addr: 127.0.0.1:0',
    '  secret: test-secret',
  ];
  if (options.tls)
    lines.push('  tls:', `    certificate: ${options.tls.certificate}`, `    key: ${options.tls.key}`);
  if (options.htpasswd)
    lines.push('auth:', '  htpasswd:', '    realm: basic-realm', `    path: ${options.htpasswd}`);
  if (options.token)
    lines.push(
      'auth:',
      '  token:',
      `    realm: ${options.token.realm}`,
      `    service: ${options.token.service}`,
      `    issuer: ${options.token.issuer}`,
      `    rootcertbundle: ${options.token.rootCertBundle}`,
    );
  return `${lines.join('\n')}\n`;
}

/** The `127.0.0.1:<port>` the registry logs it listens on (15 s at most). */
function listeningOn(child: ChildProcess, output: () => string): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`docker-registry did not start:\n${output()}`)), 15_000);
    const check = (): void => {
      const m = /listening on (127\.0\.0\.1:\d+)/.exec(output());
      if (m) {
        clearTimeout(timer);
        resolve(m[1] as string);
      }
    };
    child.stdout?.on('data', check);
    child.stderr?.on('data', check);
    child.once('exit', (code) => reject(new Error(`docker-registry exited ${code}:\n${output()}`)));
  });
}
