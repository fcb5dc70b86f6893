import assert from 'node:assert/strict';
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import pino from 'pino';
import { CdhError } from '../../src/errors';
import { KeyUnwrapper } from '../../src/keyprovider/unwrap';
import { parseKeyWrapRequest } from '../../src/keyprovider/protocol';
import { answerKeyWrap, KekPacketSealer, KmsPacketSealer } from '../../src/keyprovider/wrap';
import type { ProviderRegistry } from '../../src/providers/registry';
import type { Annotations, Decrypter, Encrypter } from '../../src/providers/types';

const OPTIONS = JSON.stringify({
  symkey: randomBytes(32).toString('base64'),
  digest: 'sha256:00',
  cipheroptions: { nonce: randomBytes(16).toString('base64') },
});
const ctx = { signal: new AbortController().signal };

function request(optsdata: unknown): Buffer {
  return Buffer.from(
    JSON.stringify({ op: 'keywrap', keywrapparams: { ec: null, optsdata }, keyunwrapparams: null }),
  );
}

/** A stand-in KMS: AES-256-GCM under its own key, the IV handed back as `annotations.iv`. */
function fakeKms(): Encrypter & Decrypter & { keyIds: string[] } {
  const key = randomBytes(32);
  const keyIds: string[] = [];
  return {
    keyIds,
    async encrypt(plaintext, keyId) {
      keyIds.push(keyId);
      const iv = randomBytes(12);
      const cipher = createCipheriv('aes-256-gcm', key, iv);
      const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
      return { ciphertext, annotations: { iv: iv.toString('base64') } };
    },
    async decrypt(ciphertext, _keyId, annotations: Annotations) {
      const decipher = createDecipheriv(
        'aes-256-gcm',
        key,
        Buffer.from(annotations['iv'] as string, 'base64'),
      );
      decipher.setAuthTag(Buffer.from(ciphertext.subarray(-16)));
      return Buffer.concat([decipher.update(ciphertext.subarray(0, -16)), decipher.final()]);
    },
  };
}

function unwrapper(kek: Buffer, kms?: Decrypter): KeyUnwrapper {
  const registry = { decrypter: async () => kms } as unknown as ProviderRegistry;
  return new KeyUnwrapper({
    kbc: { getResource: async () => Buffer.from(kek) },
    registry,
    logger: pino({ level: 'silent' }),
  });
}

function packetOf(answer: Buffer): Buffer {
  return Buffer.from(
    (JSON.parse(answer.toString()) as { keywrapresults: { annotation: number[] } }).keywrapresults.annotation,
  );
}

describe('parseKeyWrapRequest: the layer options in either ocicrypt form', () => {
  test('Go base64, Rust raw JSON text and an integer array give the same bytes', () => {
    for (const optsdata of [
      Buffer.from(OPTIONS).toString('base64'),
      OPTIONS,
      Array.from(Buffer.from(OPTIONS)),
    ])
      assert.equal(parseKeyWrapRequest(request(optsdata)).optsdata.toString(), OPTIONS);
  });

  test('options that are not a JSON object are refused without quoting them', () => {
    const cases: Array<[unknown, RegExp]> = [
      [Buffer.from('secret-bytes').toString('base64'), /not layer options JSON/],
      ['["secret-bytes"]', /an array in JSON/],
      ['', /"keywrapparams.optsdata" is empty/],
      [42, /a number, not base64 or JSON text/],
      [`{"symkey":"${'A'.repeat(20_000)}"}`, /more than the 16384 accepted/],
      ['A'.repeat(40_000), /longer than 16384 bytes of layer options/],
    ];
    for (const [optsdata, pattern] of cases)
      assert.throws(
        () => parseKeyWrapRequest(request(optsdata)),
        (error: CdhError) => {
          assert.equal(error.code, 'KEYPROVIDER_REQUEST_INVALID');
          assert.match(error.message, pattern);
          assert.ok(!error.message.includes('secret-bytes'));
          return true;
        },
      );
  });
});

describe('packets made by the sealers unwrap with the daemon’s KeyUnwrapper', () => {
  test('KEK: a v1 A256GCM packet; the KEK is copied and wiped on close', async () => {
    const kek = randomBytes(32);
    const sealer = new KekPacketSealer('kbs:///default/key/1', kek);
    const packet = packetOf(await answerKeyWrap(request(OPTIONS), sealer, ctx));
    assert.equal((await unwrapper(kek).unwrapPacket(packet, ctx)).toString(), OPTIONS);
    await sealer.close();
    assert.notEqual(
      kek.every((byte) => byte === 0),
      true,
      "the caller's buffer is the caller's",
    );
    await assert.rejects(sealer.seal(Buffer.from(OPTIONS)), { code: 'SHUTTING_DOWN' });
  });

  test('KEK: a wrong-length KEK or a kid that is no resource URI is refused up front', () => {
    assert.throws(() => new KekPacketSealer('kbs:///default/key/1', randomBytes(16)), {
      code: 'DATA_KEY_INVALID',
    });
    assert.throws(() => new KekPacketSealer('default/key/1', randomBytes(32)), {
      code: 'RESOURCE_URI_INVALID',
    });
  });

  test('KMS: a v2 packet naming the provider, its settings and the KMS key', async () => {
    const kms = fakeKms();
    let closed = false;
    const sealer = new KmsPacketSealer({
      provider: 'aliyun',
      providerSettings: { client_type: 'client_key' },
      keyId: 'key-1',
      encrypter: kms,
      close: () => void (closed = true),
    });
    const packet = packetOf(await answerKeyWrap(request(OPTIONS), sealer, ctx));
    const fields = JSON.parse(packet.toString()) as Record<string, unknown>;
    assert.equal(fields['provider'], 'aliyun');
    assert.equal(fields['kid'], 'key-1');
    assert.deepEqual(kms.keyIds, ['key-1']);
    assert.equal((await unwrapper(randomBytes(32), kms).unwrapPacket(packet, ctx)).toString(), OPTIONS);
    await sealer.close();
    assert.ok(closed);
  });
});
