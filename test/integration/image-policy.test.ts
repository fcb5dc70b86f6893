import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import type * as grpc from '@grpc/grpc-js';
import { spawnDaemon, tempDir, type DaemonProcess } from '../../src/devtools/daemon';
import { buildLayer, makeTar, tagImage, writeImage } from '../support/oci-image';
import { pushImage, remoteDigest, startRegistry, type TestRegistry } from '../support/registry';
import { Bundles, closeImagePullWorld, registryImageConfig } from '../support/image-bundles';

const run = promisify(execFile);

/** A throw-away GnuPG home with one signing key; answers its fingerprint. */
async function gpgKey(home: string, name: string): Promise<string> {
  mkdirSync(home, { recursive: true, mode: 0o700 });
  const env = { ...process.env, GNUPGHOME: home };
  await run(
    'gpg',
    [
      '--batch',
      '--passphrase',
      '',
      '--quick-gen-key',
      `${name} <${name}@example.invalid>`,
      'ed25519',
      'sign',
      'never',
    ],
    { env },
  );
  const { stdout } = await run('gpg', ['--list-keys', '--with-colons'], { env });
  const fpr = /^fpr:+([0-9A-F]{40}):/m.exec(stdout)?.[1];
  assert.ok(fpr, 'gpg made a key');
  return fpr;
}

describe('image security policy: reject by default, one repository accepted, signedBy (skopeo --sign-by)', () => {
  const work = tempDir('cdh-image-policy-');
  const layout = join(work.path, 'layout');
  const sigs = join(work.path, 'sigs');
  const bundles = new Bundles(work.path);
  let registry: TestRegistry;
  let daemon: DaemonProcess;

  before(async () => {
    registry = await startRegistry();
    const built = writeImage(layout, {
      layers: [buildLayer(makeTar([{ path: 'hello', content: 'signed world' }]))],
    });
    tagImage(layout, 'img', built);
    const trusted = join(work.path, 'gpg-trusted');
    const other = join(work.path, 'gpg-other');
    const [trustedFpr, otherFpr] = await Promise.all([gpgKey(trusted, 'trusted'), gpgKey(other, 'other')]);
    const pubring = join(work.path, 'trusted.gpg');
    const { stdout } = await run('gpg', ['--export', trustedFpr], {
      env: { ...process.env, GNUPGHOME: trusted },
      encoding: 'buffer',
    });
    writeFileSync(pubring, stdout);
    const registriesD = join(work.path, 'registries.d');
    mkdirSync(registriesD);
    writeFileSync(
      join(registriesD, 'staging.yaml'),
      `docker:\n  ${registry.host}:\n    lookaside-staging: file://${sigs}\n`,
    );
    const sign = (home: string, fpr: string): string[] => ['--registries.d', registriesD, '--sign-by', fpr];
    await pushImage(layout, 'img', `${registry.host}/test/open:v1`);
    await pushImage(layout, 'img', `${registry.host}/test/other:v1`);
    await pushImage(layout, 'img', `${registry.host}/test/unsigned:v1`);
    await runSigned(layout, `${registry.host}/test/signed:v1`, sign(trusted, trustedFpr), trusted);
    await runSigned(layout, `${registry.host}/test/badsig:v1`, sign(other, otherFpr), other);
    // A good signature of test/signed copied under test/copied: right key, wrong identity.
    const digest = await remoteDigest(`${registry.host}/test/signed:v1`);
    await pushImage(layout, 'img', `${registry.host}/test/copied:v1`);
    const hex = digest.replace(':', '=');
    cpSync(join(sigs, `test/signed@${hex}`), join(sigs, `test/copied@${hex}`), { recursive: true });

    const signedBy = { type: 'signedBy', keyType: 'GPGKeys', keyPath: pubring };
    const policy = {
      default: [{ type: 'reject' }],
      transports: {
        docker: {
          [`${registry.host}/test/open`]: [{ type: 'insecureAcceptAnything' }],
          [`${registry.host}/test/signed`]: [signedBy],
          [`${registry.host}/test/unsigned`]: [signedBy],
          [`${registry.host}/test/badsig`]: [signedBy],
          [`${registry.host}/test/copied`]: [signedBy],
        },
      },
    };
    const policyFile = join(work.path, 'policy.json');
    writeFileSync(policyFile, JSON.stringify(policy));
    const sigstore = join(work.path, 'sigstore.yaml');
    writeFileSync(sigstore, `default-docker:\n  lookaside: file://${sigs}\n`);
    daemon = await spawnDaemon({
      config: {
        image: registryImageConfig(work.path, registry.host, {
          image_security_policy_uri: `file://${policyFile}`,
          sigstore_config_uri: sigstore,
        }),
      },
    });
  });

  async function runSigned(from: string, to: string, extra: string[], home: string): Promise<void> {
    await run(
      'skopeo',
      ['copy', '--quiet', '--dest-tls-verify=false', ...extra, `oci:${from}:img`, `docker://${to}`],
      {
        env: { ...process.env, GNUPGHOME: home },
        timeout: 120_000,
      },
    );
  }

  after(() => closeImagePullWorld({ bundles, work, daemon, registry }));

  const bundle = (): string => bundles.dir();

  async function rejected(repo: string, pattern: RegExp): Promise<void> {
    const target = bundle();
    await assert.rejects(
      daemon.client().pullImage(`${registry.host}/${repo}:v1`, target, 60_000),
      (error: grpc.ServiceError) => {
        assert.equal(error.code, 7, error.details);
        assert.match(error.details, pattern);
        return true;
      },
    );
    assert.equal(existsSync(join(target, 'config.json')), false);
  }

  test('a repository the policy accepts (insecureAcceptAnything) is pulled', async () => {
    const target = bundle();
    await daemon.client().pullImage(`${registry.host}/test/open:v1`, target, 60_000);
    assert.ok(existsSync(join(target, 'rootfs', 'hello')));
  });

  test('any other repository is rejected by the default requirement, though its layers are stored', async () => {
    await rejected(
      'test/other',
      /IMAGE_POLICY_REJECTED.*test\/other:v1.*rejected by the default requirement/,
    );
  });

  test('an image signed by the trusted key (skopeo --sign-by) is accepted, on every pull', async () => {
    for (let i = 0; i < 2; i++) {
      const target = bundle();
      await daemon.client().pullImage(`${registry.host}/test/signed:v1`, target, 60_000);
      assert.ok(existsSync(join(target, 'rootfs', 'hello')));
    }
  });

  test('an unsigned image is rejected, also on the second pull (its layers are cached)', async () => {
    for (let i = 0; i < 2; i++)
      await rejected('test/unsigned', /IMAGE_POLICY_REJECTED.*test\/unsigned:v1.*no signature found/);
  });

  test('an image signed by another key is rejected, also on the second pull', async () => {
    for (let i = 0; i < 2; i++)
      await rejected('test/badsig', /IMAGE_POLICY_REJECTED.*test\/badsig:v1.*signature-1 .*does not verify/);
  });

  test("a good signature of another repository's name is rejected (identity check)", async () => {
    await rejected('test/copied', /IMAGE_POLICY_REJECTED.*test\/copied:v1.*signed for ".*test\/signed:v1"/);
  });
});
