import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { describe, test } from 'node:test';
import { cosignPublicKey } from '../../../src/image/policy-parse';
import { parseReference } from '../../../src/image/reference';
import { cosignPayloadProblem } from '../../../src/image/sigstore';

// A signature made by /usr/bin/cosign, from containers/image's test fixtures
// (signature/fixtures/cosign.pub and dir-img-cosign-valid/signature-1): public key, the
// simple signing payload (base64) and its signature annotation, as cosign stored them.
const COSIGN_PUB = `-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEFNLqFhf4fiN6o/glAuYnq2jYUeL0
vRuLu/z39pmbVwS9ff5AYnlwaP9sxREajdLY9ynM6G1sy6AAmb7Z63TsLg==
-----END PUBLIC KEY-----
`;
const PAYLOAD = Buffer.from(
  'eyJjcml0aWNhbCI6eyJpZGVudGl0eSI6eyJkb2NrZXItcmVmZXJlbmNlIjoiMTkyLjE2OC42NC4yOjUwMDAvY29zaWduLXNpZ25lZC1zaW5nbGUtc2FtcGxlIn0sImltYWdlIjp7ImRvY2tlci1tYW5pZmVzdC1kaWdlc3QiOiJzaGEyNTY6NjM0YThmMzViNWYxNmRjZjRhYWEwODIyYWRjMGIxOTY0YmI3ODZmY2ExMmY2ODMxZGU4ZGRjNDVlNTk4NmEwMCJ9LCJ0eXBlIjoiY29zaWduIGNvbnRhaW5lciBpbWFnZSBzaWduYXR1cmUifSwib3B0aW9uYWwiOm51bGx9',
  'base64',
);
const SIGNATURE = Buffer.from(
  'MEYCIQDmtamqYPjMg81nqeBhptrPls44aA/r7PwLmspINJY4MwIhANKRpqe2E9UCBtGFdPoz/8jAbaQm4uP4h+IpwKTE6ClR',
  'base64',
);
const DIGEST = 'sha256:634a8f35b5f16dcf4aaa0822adc0b1964bb786fca12f6831de8ddc45e5986a00';

describe('cosign signatures', () => {
  const key = cosignPublicKey(Buffer.from(COSIGN_PUB));
  const ref = parseReference(`192.168.64.2:5000/cosign-signed-single-sample@${DIGEST}`);

  test('a signature made by cosign verifies, payload checked (type, digest, identity)', () => {
    assert.equal(
      cosignPayloadProblem(PAYLOAD, SIGNATURE, key, DIGEST, { type: 'matchRepository' }, ref),
      undefined,
    );
    assert.equal(
      cosignPayloadProblem(PAYLOAD, SIGNATURE, key, DIGEST, { type: 'matchRepoDigestOrExact' }, ref),
      undefined,
    );
  });

  test('a changed payload byte, another digest, another identity each fail', () => {
    const changed = Buffer.from(PAYLOAD);
    changed.writeUInt8((changed.at(-3) ?? 0) ^ 1, changed.length - 3);
    assert.match(
      cosignPayloadProblem(changed, SIGNATURE, key, DIGEST, { type: 'matchRepository' }, ref) ?? '',
      /does not verify/,
    );
    const other = `sha256:${'1'.repeat(64)}`;
    assert.match(
      cosignPayloadProblem(PAYLOAD, SIGNATURE, key, other, { type: 'matchRepository' }, ref) ?? '',
      /another manifest digest/,
    );
    const elsewhere = parseReference(`192.168.64.2:5000/other@${DIGEST}`);
    assert.match(
      cosignPayloadProblem(PAYLOAD, SIGNATURE, key, DIGEST, { type: 'matchRepository' }, elsewhere) ?? '',
      /signed for/,
    );
  });

  test('only ECDSA P-256 keys are cosign keys here', () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey;
    assert.throws(
      () => cosignPublicKey(Buffer.from(rsa.export({ type: 'spki', format: 'pem' }))),
      /ECDSA P-256/,
    );
  });
});
