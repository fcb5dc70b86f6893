import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createHmac, createPrivateKey, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { encodeBase64Url } from '../../../src/lib/base64';
import { CdhError } from '../../../src/errors';
import { splitSealedSecret } from '../../../src/secret/compact';
import { verifySealedParts } from '../../../src/secret/jws';
import { signSealedSecret } from '../../../src/secret/seal';
import { SigningKeyResolver, type VerificationKeyResolver } from '../../../src/secret/signing-keys';
import { publicKeyFromJwk } from '../../../src/secret/jwk';
import { upstreamJwk, vaultFixture } from '../../support/sealed-fixtures';
import { callContext, cdhError, temporaryDirectory } from '../../support/secret-helpers';

const testKey = upstreamJwk('test-key.json');
const testKey2 = upstreamJwk('test-key-2.json');
const payload = vaultFixture('db-password', 'aliyun');

const tmp = temporaryDirectory('cdh-jws-');
const goodDir = path.join(tmp.dir, 'good');
const wrongDir = path.join(tmp.dir, 'wrong');

before(() => {
  mkdirSync(goodDir);
  mkdirSync(wrongDir);
  writeFileSync(path.join(goodDir, 'key.json'), JSON.stringify(testKey));
  const { d: _private, ...publicPart } = testKey;
  writeFileSync(path.join(goodDir, 'key-public.json'), JSON.stringify(publicPart));
  writeFileSync(path.join(wrongDir, 'key.json'), JSON.stringify(testKey2));
});
after(() => tmp.remove());

function verify(secret: string, dir = goodDir): Promise<Buffer> {
  return verifySealedParts(splitSealedSecret(secret), new SigningKeyResolver(dir), callContext());
}

test('a JWS signed with test-key.json verifies against its private and its public JWK', async () => {
  for (const kid of ['key.json', 'key-public.json']) {
    const secret = signSealedSecret(payload, testKey, kid);
    assert.match(secret, /^sealed\.[\w-]+\.[\w-]+\.[\w-]+$/);
    const verified = await verify(secret);
    assert.deepEqual(JSON.parse(verified.toString()), payload);
  }
});

test('the same JWS fails against test-key-2.json', async () => {
  const secret = signSealedSecret(payload, testKey, 'key.json');
  await assert.rejects(verify(secret, wrongDir), cdhError('SIGNATURE_INVALID', '"key.json"'));
});

test('a JWS signed with test-key-2.json fails against test-key.json', async () => {
  const secret = signSealedSecret(payload, testKey2, 'key.json');
  await assert.rejects(verify(secret), cdhError('SIGNATURE_INVALID'));
});

const URL_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

function changeCharacter(text: string, index: number): string {
  const current = text[index] ?? 'A';
  const replacement = URL_ALPHABET[(URL_ALPHABET.indexOf(current) + 1) % URL_ALPHABET.length] ?? 'A';
  return text.slice(0, index) + replacement + text.slice(index + 1);
}

function withPart(secret: string, part: 1 | 2 | 3, change: (p: string) => string): string {
  const parts = secret.split('.');
  parts[part] = change(parts[part] ?? '');
  return parts.join('.');
}

test('one changed character in the header, payload or signature fails', async () => {
  const secret = signSealedSecret(payload, testKey, 'key.json');
  const [, header = '', body = '', signature = ''] = secret.split('.');
  for (let i = 0; i < header.length; i++) {
    await assert.rejects(verify(withPart(secret, 1, (p) => changeCharacter(p, i))), (error: unknown) => {
      assert.ok(error instanceof CdhError);
      assert.ok(['PERMISSION_DENIED', 'INVALID_ARGUMENT'].includes(error.status), error.message);
      return true;
    });
  }
  for (let i = 0; i < body.length; i += 7) {
    await assert.rejects(
      verify(withPart(secret, 2, (p) => changeCharacter(p, i))),
      cdhError('SIGNATURE_INVALID'),
    );
  }
  for (let i = 0; i < signature.length; i++) {
    await assert.rejects(
      verify(withPart(secret, 3, (p) => changeCharacter(p, i))),
      cdhError('SIGNATURE_INVALID'),
    );
  }
});

/** Resolves every kid to test-key.json's public key, counting look-ups. */
class CountingResolver implements VerificationKeyResolver {
  lookups = 0;
  private readonly key: KeyObject = publicKeyFromJwk(testKey, 'test');
  async resolve(): Promise<KeyObject> {
    this.lookups++;
    return this.key;
  }
}

function compact(header: unknown, signature: (input: string) => Buffer): string {
  const encodedHeader = encodeBase64Url(Buffer.from(JSON.stringify(header)));
  const encodedPayload = encodeBase64Url(Buffer.from(JSON.stringify(payload)));
  const input = `${encodedHeader}.${encodedPayload}`;
  return `sealed.${input}.${encodeBase64Url(signature(input))}`;
}

test('alg none, HS256, ES384, missing or not a string is refused before any key look-up', async () => {
  const es384 = generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey;
  const secrets = [
    compact({ alg: 'none', kid: 'key.json' }, () => Buffer.alloc(0)),
    compact({ alg: 'HS256', kid: 'key.json' }, (input) =>
      createHmac('sha256', 'shared').update(input).digest(),
    ),
    compact({ alg: 'ES384', kid: 'key.json' }, (input) =>
      sign('sha384', Buffer.from(input), { key: es384, dsaEncoding: 'ieee-p1363' }),
    ),
    compact({ alg: 'es256', kid: 'key.json' }, () => Buffer.alloc(64)),
    compact({ kid: 'key.json' }, () => Buffer.alloc(64)),
    compact({ alg: ['ES256'], kid: 'key.json' }, () => Buffer.alloc(64)),
  ];
  const resolver = new CountingResolver();
  for (const secret of secrets) {
    await assert.rejects(
      verifySealedParts(splitSealedSecret(secret), resolver, callContext()),
      cdhError('SIGNATURE_INVALID', 'only ES256'),
    );
  }
  assert.equal(resolver.lookups, 0);
});

test('a header without a string kid is SIGNATURE_INVALID', async () => {
  for (const header of [{ alg: 'ES256' }, { alg: 'ES256', kid: 5 }]) {
    await assert.rejects(
      verifySealedParts(
        splitSealedSecret(compact(header, () => Buffer.alloc(64))),
        new CountingResolver(),
        callContext(),
      ),
      cdhError('SIGNATURE_INVALID', 'kid'),
    );
  }
});

test('a header that is not a base64url JSON object is SEALED_SECRET_MALFORMED', async () => {
  const signed = signSealedSecret(payload, testKey, 'key.json');
  for (const header of [
    'e30=',
    '!!',
    encodeBase64Url(Buffer.from('[1]')),
    encodeBase64Url(Buffer.from('{"alg":')),
  ]) {
    await assert.rejects(
      verify(withPart(signed, 1, () => header)),
      cdhError('SEALED_SECRET_MALFORMED', 'JWS header'),
    );
  }
});

test('a header with a member name twice is SEALED_SECRET_MALFORMED, whichever value comes last', async () => {
  const privateKey = createPrivateKey({ key: testKey, format: 'jwk' });
  const signWith = (headerJson: string): string => {
    const header = encodeBase64Url(Buffer.from(headerJson));
    const body = encodeBase64Url(Buffer.from(JSON.stringify(payload)));
    const signature = sign('sha256', Buffer.from(`${header}.${body}`), {
      key: privateKey,
      dsaEncoding: 'ieee-p1363',
    });
    return `sealed.${header}.${body}.${encodeBase64Url(signature)}`;
  };
  for (const header of [
    '{"alg":"none","kid":"key.json","alg":"ES256"}',
    '{"alg":"ES256","kid":"../x","kid":"key.json"}',
    '{"alg":"ES256","kid":"key.json","kid":"key.json"}',
  ]) {
    await assert.rejects(verify(signWith(header)), cdhError('SEALED_SECRET_MALFORMED', 'twice'));
  }
});

test('a header with crit (critical extensions) is SIGNATURE_INVALID: none are understood', async () => {
  const privateKey = createPrivateKey({ key: testKey, format: 'jwk' });
  const secret = compact({ alg: 'ES256', kid: 'key.json', crit: ['exp'], exp: 1 }, (input) =>
    sign('sha256', Buffer.from(input), { key: privateKey, dsaEncoding: 'ieee-p1363' }),
  );
  await assert.rejects(verify(secret), cdhError('SIGNATURE_INVALID', 'crit'));
});

test('a byte order mark is not whitespace: before the secret it is SEALED_SECRET_MALFORMED', () => {
  const signed = signSealedSecret(payload, testKey, 'key.json');
  for (const input of [
    Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(signed)]),
    `\uFEFF${signed}`,
  ]) {
    assert.throws(() => splitSealedSecret(input), cdhError('SEALED_SECRET_MALFORMED'));
  }
  // Whitespace, Unicode's included, is trimmed.
  for (const input of [` \t${signed}\r\n`, `\u00a0${signed}\u2028`]) {
    assert.equal(splitSealedSecret(input).signature, signed.split('.')[3]);
  }
});

test('other header fields are ignored', async () => {
  const privateKey = createPrivateKey({ key: testKey, format: 'jwk' });
  const secret = compact({ typ: 'sealed-secret', alg: 'ES256', kid: 'key.json', x5u: 'ignored' }, (input) =>
    sign('sha256', Buffer.from(input), { key: privateKey, dsaEncoding: 'ieee-p1363' }),
  );
  assert.deepEqual(JSON.parse((await verify(secret)).toString()), payload);
});

test('a DER-encoded or truncated signature is SIGNATURE_INVALID', async () => {
  const privateKey = createPrivateKey({ key: testKey, format: 'jwk' });
  const der = compact({ alg: 'ES256', kid: 'key.json' }, (input) =>
    sign('sha256', Buffer.from(input), privateKey),
  );
  await assert.rejects(verify(der), cdhError('SIGNATURE_INVALID'));
  const signed = signSealedSecret(payload, testKey, 'key.json');
  await assert.rejects(
    verify(withPart(signed, 3, (s) => s.slice(0, 40))),
    cdhError('SIGNATURE_INVALID', '64 bytes'),
  );
  await assert.rejects(verify(withPart(signed, 3, () => '')), cdhError('SIGNATURE_INVALID'));
});
