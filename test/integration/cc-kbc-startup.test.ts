import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { PACKAGE_ROOT } from '../../src/package-info';
import { spawnDaemon, tempDir } from '../../src/devtools/daemon';
import { startKbsWorld, type KbsWorld } from '../support/kbs-world';

/**
 * Start-up with cc_kbc: upstream's own config files unchanged, a Kata initdata cdh.toml, no -c
 * (kernel command line), [[credentials]] fetched through the KBS before the socket serves.
 * The configs name hosts (example.io): CDH_KBS_CONNECT_TO sends the daemon to the loopback
 * emulator instead, keeping the URL's host; no name is ever resolved.
 */

const UPSTREAM_CONFIGS = join(PACKAGE_ROOT, 'test/fixtures/vectors/upstream-configs');

const ROLE = '{"ecs_ram_role_name":"role-from-kbs","region_id":"cn-hangzhou"}';
const TEST_FILE = 'test-file-from-kbs';

/**
 * The upstream configs write [[credentials]] under /run/confidential-containers/cdh/kbs: the
 * daemon runs in its own mount namespace with a fresh tmpfs on /run (root only, as in CI).
 */
function privateRunSupported(): boolean {
  if (process.getuid?.() !== 0) return false;
  const probe = ['--mount', '--propagation', 'private', 'sh', '-c', 'mount -t tmpfs tmpfs /run'];
  return spawnSync('unshare', probe).status === 0;
}
const PRIVATE_RUN = privateRunSupported();
const skipWithoutPrivateRun = PRIVATE_RUN
  ? false
  : 'needs root and unshare (a private /run for upstream credential paths)';

function withPrivateRun(node: string, args: string[]): { file: string; args: string[] } {
  return {
    file: 'unshare',
    args: [
      '--mount',
      '--propagation',
      'private',
      'sh',
      '-c',
      'mount -t tmpfs tmpfs /run && exec "$@"',
      'sh',
      node,
      ...args,
    ],
  };
}

describe('upstream configs and Kata initdata start the daemon (cc_kbc at their URL)', () => {
  let world: KbsWorld;
  let env: Record<string, string>;

  before(async () => {
    world = await startKbsWorld({
      resources: { 'default/aliyun/ecs_ram_role': ROLE, 'default/test/file': TEST_FILE },
    });
    env = { AA_SOCKET: world.aaSocket, CDH_KBS_CONNECT_TO: `127.0.0.1:${world.kbs.port}` };
  });
  after(async () => world?.close());

  for (const name of ['example.config.toml', 'example.config.json']) {
    test(
      `upstream ${name} starts unchanged; its [[credentials]] come from the KBS`,
      { skip: skipWithoutPrivateRun },
      async () => {
        const dir = tempDir();
        const file = join(dir.path, name);
        writeFileSync(file, readFileSync(join(UPSTREAM_CONFIGS, name)));
        const attests = world.kbs.counters.attest;
        const daemon = await spawnDaemon({ dir: dir.path, args: ['-c', file], env, wrap: withPrivateRun });
        try {
          const logs = daemon.logLines.map((line) => JSON.parse(line) as Record<string, unknown>);
          const provisioned = logs
            .filter((l) => l['msg'] === 'credential provisioned')
            .map((l) => l['resourceUri']);
          assert.deepEqual(provisioned, ['kbs:///default/aliyun/ecs_ram_role', 'kbs:///default/test/file']);
          assert.ok(world.kbs.counters.attest > attests, 'the AA attested to the KBS');
          assert.equal((await daemon.client().getResource('kbs:///default/test/file')).toString(), TEST_FILE);
        } finally {
          await daemon.stop();
          dir.cleanup();
        }
      },
    );
  }

  test('upstream hub/tests/cdh.toml (offline_fs_kbc, url "null", [image]) starts unchanged', async () => {
    const dir = tempDir();
    const file = join(dir.path, 'cdh.toml');
    writeFileSync(file, readFileSync(join(UPSTREAM_CONFIGS, 'hub-tests-cdh.toml')));
    const daemon = await spawnDaemon({ dir: dir.path, args: ['-c', file] });
    try {
      assert.equal(await daemon.client().check(''), 'SERVING');
    } finally {
      await daemon.stop();
      dir.cleanup();
    }
  });

  test('a Kata initdata cdh.toml with only [kbc] name and url (and [image]) starts and serves the KBS', async () => {
    const daemon = await spawnDaemon({
      configToml:
        '[kbc]\nname = "cc_kbc"\nurl = "http://kbs.initdata.test:8080"\n\n[image]\nwork_dir = "/run/kata-containers/image"\n',
      env,
    });
    try {
      assert.equal((await daemon.client().getResource('kbs:///default/test/file')).toString(), TEST_FILE);
    } finally {
      await daemon.stop();
      daemon.cleanup();
    }
  });

  test('no -c: agent.aa_kbc_params on the kernel command line selects cc_kbc', async () => {
    const dir = tempDir();
    const cmdline = join(dir.path, 'cmdline');
    writeFileSync(
      cmdline,
      'console=hvc0 quiet agent.aa_kbc_params=cc_kbc::http://kbs.cmdline.test:8080 agent.log=debug\n',
    );
    const daemon = await spawnDaemon({ dir: dir.path, env: { ...env, CDH_KERNEL_CMDLINE_FILE: cmdline } });
    try {
      assert.equal((await daemon.client().getResource('kbs:///default/test/file')).toString(), TEST_FILE);
    } finally {
      await daemon.stop();
      dir.cleanup();
    }
  });

  test('no -c: env AA_KBC_PARAMS wins over the kernel command line', async () => {
    const dir = tempDir();
    const cmdline = join(dir.path, 'cmdline');
    writeFileSync(cmdline, 'agent.aa_kbc_params=offline_fs_kbc::null\n');
    const daemon = await spawnDaemon({
      dir: dir.path,
      env: { ...env, CDH_KERNEL_CMDLINE_FILE: cmdline, AA_KBC_PARAMS: 'cc_kbc::http://kbs.env.test:8080' },
    });
    try {
      assert.equal((await daemon.client().getResource('kbs:///default/test/file')).toString(), TEST_FILE);
    } finally {
      await daemon.stop();
      dir.cleanup();
    }
  });

  test(
    'no -c: cdh.kbs_resources on the kernel command line are fetched at start-up',
    { skip: skipWithoutPrivateRun },
    async () => {
      const dir = tempDir();
      const cmdline = join(dir.path, 'cmdline');
      writeFileSync(
        cmdline,
        'agent.aa_kbc_params=cc_kbc::http://kbs.cmdline.test:8080 ' +
          'cdh.kbs_resources=kbs:///default/test/file::/run/confidential-containers/cdh/kbs/test/file,' +
          'kbs:///default/aliyun/ecs_ram_role::/run/confidential-containers/cdh/kbs/kms-credential/aliyun/ecsRamRole.json\n',
      );
      const daemon = await spawnDaemon({
        dir: dir.path,
        env: { ...env, CDH_KERNEL_CMDLINE_FILE: cmdline },
        wrap: withPrivateRun,
      });
      try {
        const provisioned = daemon.logLines
          .map((line) => JSON.parse(line) as Record<string, unknown>)
          .filter((l) => l['msg'] === 'credential provisioned')
          .map((l) => l['path']);
        assert.deepEqual(provisioned, [
          '/run/confidential-containers/cdh/kbs/test/file',
          '/run/confidential-containers/cdh/kbs/kms-credential/aliyun/ecsRamRole.json',
        ]);
      } finally {
        await daemon.stop();
        dir.cleanup();
      }
    },
  );

  test('[[credentials]] are written from the KBS before the socket serves (mode 0600)', async () => {
    const dir = tempDir();
    const root = join(dir.path, 'cdh');
    const target = join(root, 'kbs/kms-credential/aliyun/ecsRamRole.json');
    const daemon = await spawnDaemon({
      dir: dir.path,
      config: {
        credentials_root: root,
        aa: { aa_socket: world.aaSocket },
        kbc: { name: 'cc_kbc', url: 'http://kbs.example.test' },
        credentials: [{ resource_uri: 'kbs:///default/aliyun/ecs_ram_role', path: target }],
      },
      env,
    });
    try {
      assert.equal(readFileSync(target, 'utf8'), ROLE);
      assert.equal(statSync(target).mode & 0o777, 0o600);
    } finally {
      await daemon.stop();
      dir.cleanup();
    }
  });

  const failures: Array<[string, () => Record<string, unknown>, Record<string, string>, RegExp[]]> = [
    [
      'a resource the KBS does not have',
      () => ({ credentials: [{ resource_uri: 'kbs:///default/missing/thing', path: '/x' }] }),
      {},
      [/kbs:\/\/\/default\/missing\/thing/, /not found/, /404/],
    ],
    [
      'the attestation agent unreachable',
      () => ({ aa: { aa_socket: 'unix:///nonexistent/aa.sock' } }),
      {},
      [/kbs:\/\/\/default\/test\/file/, /attestation agent at unix:\/\/\/nonexistent\/aa\.sock/],
    ],
  ];
  for (const [what, extra, extraEnv, patterns] of failures) {
    test(`[[credentials]] failing start-up (${what}) stops it naming the URI and the cause; nothing serves`, async () => {
      const dir = tempDir();
      const root = join(dir.path, 'cdh');
      const extraConfig = extra();
      const credentials = (extraConfig['credentials'] as Array<{ resource_uri: string }> | undefined)?.map(
        (c) => ({
          resource_uri: c.resource_uri,
          path: join(root, 'kbs/out'),
        }),
      ) ?? [{ resource_uri: 'kbs:///default/test/file', path: join(root, 'kbs/out') }];
      const daemon = await spawnDaemon({
        dir: dir.path,
        waitReady: false,
        config: {
          credentials_root: root,
          aa: { aa_socket: world.aaSocket },
          kbc: { name: 'cc_kbc', url: 'http://kbs.example.test' },
          ...extraConfig,
          credentials,
        },
        env: { ...env, ...extraEnv, AA_SOCKET: '' },
      });
      try {
        assert.notEqual(await daemon.exited(), 0);
        for (const pattern of patterns) assert.match(daemon.stderr(), pattern);
        assert.equal(existsSync(daemon.socketPath), false, 'the socket never served');
      } finally {
        daemon.cleanup();
        dir.cleanup();
      }
    });
  }

  const badConfigs: Array<[string, string, RegExp]> = [
    [
      'an unknown key in [kbc]',
      '[kbc]\nname = "cc_kbc"\nurl = "http://k:1"\nnmae = "x"\n',
      /config key "kbc\.nmae": unknown key/,
    ],
    ['an unknown key in [image]', '[image]\nwork_dri = "/x"\n', /config key "image\.work_dri": unknown key/],
    ['an unknown key in [aa]', '[aa]\naa_sock = "unix:///x"\n', /config key "aa\.aa_sock": unknown key/],
    ['an unknown KBC', '[kbc]\nname = "sample_kbc"\n', /config key "kbc\.name": unsupported KBC/],
    ['cc_kbc without a URL', '[kbc]\nname = "cc_kbc"\n', /config key "kbc\.url"/],
    [
      'a wrong type in [image]',
      '[image]\nmax_concurrent_layer_downloads_per_image = "3"\n',
      /image\.max_concurrent_layer_downloads_per_image/,
    ],
  ];
  for (const [what, toml, pattern] of badConfigs) {
    test(`a config with ${what} is refused naming the key`, async () => {
      const daemon = await spawnDaemon({ configToml: toml, waitReady: false });
      try {
        assert.notEqual(await daemon.exited(), 0);
        assert.match(daemon.stderr(), pattern);
      } finally {
        daemon.cleanup();
      }
    });
  }
});
