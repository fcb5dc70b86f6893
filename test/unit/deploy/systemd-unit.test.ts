import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { parseListenAddress } from '../../../src/config/load';
import { defaultConfig } from '../../../src/config/types';
import { credentialDirs } from '../../../src/providers/aliyun/credentials';
import { ADDRESS_FILE_ENV } from '../../../src/server/address-file';
import { SHUTDOWN_GRACE_MS } from '../../../src/app/daemon';
import { PACKAGE_ROOT } from '../../../src/package-info';

const UNIT_FILE = join(PACKAGE_ROOT, 'deploy/systemd/confidential-data-hub.service');

type Unit = Map<string, Map<string, string[]>>;

/** systemd's INI dialect: [Section], Key=Value (a key may repeat), # and ; comments, \ continuations. */
function parseUnit(text: string): Unit {
  const unit: Unit = new Map();
  let section: Map<string, string[]> | undefined;
  const lines = text.replace(/\\\n/g, ' ').split('\n');
  for (const [index, rawLine] of lines.entries()) {
    const line = rawLine.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const header = /^\[([^\]]+)\]$/.exec(line);
    if (header) {
      section = new Map();
      unit.set(header[1] as string, section);
      continue;
    }
    const eq = line.indexOf('=');
    assert.ok(section !== undefined && eq > 0, `line ${index + 1} is neither a section nor Key=Value`);
    const key = line.slice(0, eq).trim();
    const values = section.get(key) ?? [];
    values.push(line.slice(eq + 1).trim());
    section.set(key, values);
  }
  return unit;
}

const unit = parseUnit(readFileSync(UNIT_FILE, 'utf8'));
const service = unit.get('Service') ?? new Map<string, string[]>();

/** The effective value of a key (the last assignment wins). */
function value(key: string): string | undefined {
  return service.get(key)?.at(-1);
}

test('the unit has [Unit], [Service] and [Install] sections', () => {
  assert.deepEqual([...unit.keys()], ['Unit', 'Service', 'Install']);
});

test('the daemon runs from the installed bin with the config path as an argument', () => {
  assert.equal(value('Type'), 'simple');
  assert.equal(value('ExecStart'), '/usr/local/bin/confidential-data-hub -c /etc/confidential-data-hub/cdh.toml');
});

test('it restarts on failure, stops with SIGTERM, and waits longer than the daemon drains', () => {
  assert.equal(value('Restart'), 'on-failure');
  assert.match(value('RestartSec') ?? '', /^\d+s?$/);
  assert.equal(value('KillSignal'), 'SIGTERM');
  const timeoutStopSec = Number(value('TimeoutStopSec'));
  assert.ok(timeoutStopSec * 1000 > SHUTDOWN_GRACE_MS, 'TimeoutStopSec exceeds the daemon grace period');
});

test('start-up counts as done once health answers SERVING at the address the daemon publishes', () => {
  const post = value('ExecStartPost') ?? '';
  assert.ok(post.includes('/usr/local/bin/cdh-tool --timeout-ms 1000 health '), post);
  assert.ok(!post.includes('--socket'), `no socket hard-coded: ${post}`);
  const addressFile = (service.get('Environment') ?? [])
    .map((assignment) => new RegExp(`^${ADDRESS_FILE_ENV}=(.+)$`).exec(assignment)?.[1])
    .find((path) => path !== undefined);
  assert.ok(addressFile, `Environment=${ADDRESS_FILE_ENV}=...`);
  const runtimeDirs = (value('RuntimeDirectory') ?? '').split(/\s+/).map((dir) => `/run/${dir}`);
  assert.ok(runtimeDirs.includes(dirname(addressFile)), `${addressFile} lies in a RuntimeDirectory`);
});

test('the readiness loop gives up as soon as the main process is gone', () => {
  const post = value('ExecStartPost') ?? '';
  // Asked before every health call ($$ is systemd's escape for a literal $).
  assert.match(post, /while kill -0 "\$\$MAINPID" 2>\/dev\/null; do \/usr\/local\/bin\/cdh-tool /);
  assert.match(post, /; done; exit 1'$/);
});

test('sandboxing keys are present with the expected values', () => {
  const expected: Record<string, string> = {
    ProtectSystem: 'strict',
    // MountAPIVFS (implied by ProtectKernelTunables and others) leaves /run writable otherwise.
    ReadOnlyPaths: '/run',
    ReadWritePaths: '/run/confidential-containers /run/confidential-data-hub',
    NoNewPrivileges: 'yes',
    PrivateTmp: 'yes',
    ProtectHome: 'yes',
    ProtectKernelTunables: 'yes',
    ProtectKernelModules: 'yes',
    ProtectKernelLogs: 'yes',
    ProtectControlGroups: 'yes',
    RestrictNamespaces: 'yes',
    LockPersonality: 'yes',
    SystemCallArchitectures: 'native',
    CapabilityBoundingSet: '',
    AmbientCapabilities: '',
    RuntimeDirectory: 'confidential-containers confidential-data-hub',
    RuntimeDirectoryPreserve: 'yes',
    UMask: '0077',
  };
  for (const [key, want] of Object.entries(expected)) assert.equal(value(key), want, key);
  assert.deepEqual((value('RestrictAddressFamilies') ?? '').split(/\s+/).sort(), [
    'AF_INET',
    'AF_INET6',
    'AF_UNIX',
  ]);
});

test('MemoryDenyWriteExecute is not set (V8 JIT needs writable then executable memory)', () => {
  assert.equal(service.has('MemoryDenyWriteExecute'), false);
});

test('every path the daemon writes by default lies under a ReadWritePaths entry', () => {
  const writable = (service.get('ReadWritePaths') ?? []).flatMap((v) => v.split(/\s+/));
  const config = defaultConfig();
  const socket = parseListenAddress(config.socket);
  assert.ok(socket?.kind === 'unix');
  const written = [dirname(socket.path), config.credentialsRoot, ...credentialDirs(config.aliyun.credentialDir)];
  for (const path of written) {
    assert.ok(
      writable.some((dir) => path === dir || path.startsWith(`${dir}/`)),
      `${path} is not writable under the unit's sandbox`,
    );
  }
});
