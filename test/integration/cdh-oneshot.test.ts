import assert from 'node:assert/strict';
import { createCipheriv, randomBytes } from 'node:crypto';
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
  });

  test('unwrap-key unwraps a v1 packet with the KEK from the KBS; a wrong KEK is one DATA_LOSS line', async () => {
    const kek = randomBytes(32);
    world.putResource('default/key/oneshot', kek);
    world.putResource('default/key/wrong', randomBytes(32));
    const options = '{"symkey":"b25lc2hvdA==","cipheroptions":{"nonce":"AAAAAAAAAAAAAAAAAAAAAA=="}}';
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', kek, iv);
    const wrapped = Buffer.concat([cipher.update(options), cipher.final(), cipher.getAuthTag()]);
    const packet = {
      kid: 'kbs:///default/key/oneshot',
      wrapped_data: wrapped.toString('base64'),
      iv: iv.toString('base64'),
      wrap_type: 'A256GCM',
    };
    const file = join(world.dir, 'packet.json');
    writeFileSync(file, JSON.stringify(packet));
    const result = await runCli(ONESHOT, ['-c', config, 'unwrap-key', '--annotation-path', file]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(Buffer.from(result.stdout.trim(), 'base64').toString(), options);
    writeFileSync(file, JSON.stringify({ ...packet, kid: 'kbs:///default/key/wrong' }));
    const wrong = await runCli(ONESHOT, ['-c', config, 'unwrap-key', '--annotation-path', file]);
    assert.notEqual(wrong.code, 0);
    assert.match(wrong.stderr, /^cdh-oneshot: DATA_LOSS: annotation packet: A256GCM authentication/);
    assert.equal(wrong.stderr.trim().split('\n').length, 1);
  });
});
