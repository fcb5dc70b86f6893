import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { generateSigningJwkPair, sealVault, signSealedSecret } from '../../src/secret';
import { runCli } from '../support/cli';
import { programPath } from '../../src/devtools/daemon';
import { startKbsWorld, type KbsWorld } from '../support/kbs-world';

/** `cdh-oneshot`: the daemon's work once, in-process, no socket, through cc_kbc. */
const ONESHOT = programPath('cdh-oneshot');

describe('cdh-oneshot with cc_kbc', () => {
  let world: KbsWorld;
  let config: string;
  const signing = generateSigningJwkPair('oneshot');

  before(async () => {
    world = await startKbsWorld({
      resources: {
        'default/test/file': 'oneshot-resource',
        'default/vault/v': 'oneshot-vault-value',
        'default/signing-key/oneshot': JSON.stringify(signing.publicJwk),
      },
    });
    config = join(world.dir, 'cdh.toml');
    writeFileSync(
      config,
      `[aa]\naa_socket = "${world.aaSocket}"\n\n[kbc]\nname = "cc_kbc"\nurl = "${world.url}"\n`,
    );
  });
  after(async () => world?.close());

  test('get-resource prints the resource base64', async () => {
    const result = await runCli(ONESHOT, [
      '-c',
      config,
      'get-resource',
      '--resource-uri',
      'kbs:///default/test/file',
    ]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(Buffer.from(result.stdout.trim(), 'base64').toString(), 'oneshot-resource');
  });

  test('unseal-secret unseals a kbs vault secret signed under a kbs:/// kid', async () => {
    const file = join(world.dir, 'sealed');
    const sealed = sealVault({ provider: 'kbs', name: 'kbs:///default/vault/v' });
    writeFileSync(file, signSealedSecret(sealed, signing.privateJwk, 'kbs:///default/signing-key/oneshot'));
    const result = await runCli(ONESHOT, ['-c', config, 'unseal-secret', '--secret-path', file]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(Buffer.from(result.stdout.trim(), 'base64').toString(), 'oneshot-vault-value');
  });

  test('errors are one line on stderr with the status, exit non-zero', async () => {
    const result = await runCli(ONESHOT, [
      '-c',
      config,
      'get-resource',
      '--resource-uri',
      'kbs:///default/test/missing',
    ]);
    assert.notEqual(result.code, 0);
    assert.match(
      result.stderr,
      /^cdh-oneshot: NOT_FOUND: resource kbs:\/\/\/default\/test\/missing not found at the KBS/,
    );
    assert.equal(result.stderr.trim().split('\n').length, 1);
    const unwrap = await runCli(ONESHOT, ['unwrap-key', '--annotation-path', '/x']);
    assert.notEqual(unwrap.code, 0);
    assert.match(unwrap.stderr, /not supported yet/);
  });
});
