import { createPrivateKey, type KeyObject } from 'node:crypto';
import forge from 'node-forge';

// PKCS#12 bag types (RFC 7292 section 4.2).
const OID_KEY_BAG = '1.2.840.113549.1.12.10.1.1';
const OID_SHROUDED_KEY_BAG = '1.2.840.113549.1.12.10.1.2';
const OID_CERT_BAG = '1.2.840.113549.1.12.10.1.3';

function bagsOfType(p12: forge.pkcs12.Pkcs12Pfx, bagType: string): forge.pkcs12.Bag[] {
  return p12.getBags({ bagType })[bagType] ?? [];
}

/** What a client key's PKCS#12 holds that the gateway client needs. */
export interface ClientKeyMaterial {
  /** The RSA private key, held natively (node:crypto signs ~100× faster than node-forge). */
  readonly privateKey: KeyObject;
  /** The client certificate (PEM), when the PKCS#12 carries one. */
  readonly certificatePem?: string;
}

/** Why a PKCS#12 could not be used; the caller turns it into a message naming the files. */
export class Pkcs12Error extends Error {
  constructor(
    readonly reason: 'not-pkcs12' | 'unsupported' | 'wrong-password' | 'no-key' | 'unsupported-key',
    message: string,
  ) {
    super(message);
    this.name = 'Pkcs12Error';
  }
}

/**
 * Opens a PKCS#12 with node-forge, which reads both what Alibaba issues (RC2-40 certificate
 * bag, 3DES key bag, SHA-1 MAC: refused by Node's OpenSSL 3) and the OpenSSL 3 default
 * (PBES2 / AES-256-CBC / SHA-256 MAC), then hands the key to node:crypto.
 */
export function openPkcs12(der: Buffer, password: string): ClientKeyMaterial {
  let asn1: forge.asn1.Asn1;
  try {
    asn1 = forge.asn1.fromDer(forge.util.createBuffer(der.toString('binary')));
  } catch {
    throw new Pkcs12Error('not-pkcs12', 'not a DER-encoded PKCS#12');
  }

  let p12: forge.pkcs12.Pkcs12Pfx;
  try {
    p12 = forge.pkcs12.pkcs12FromAsn1(asn1, false, password);
  } catch (error) {
    // A failing MAC is the usual sign of a wrong password; without a MAC, a wrong password
    // shows up as undecodable bags. Structural and algorithm problems are told apart by message.
    const text = error instanceof Error ? error.message : '';
    if (/Cannot read PKCS#12 PFX|not an? PKCS#12|PFX version/i.test(text)) {
      throw new Pkcs12Error('not-pkcs12', 'not a PKCS#12 structure');
    }
    if (/unsupported|unknown oid/i.test(text)) {
      throw new Pkcs12Error('unsupported', 'uses an encryption or MAC algorithm this daemon cannot read');
    }
    throw new Pkcs12Error('wrong-password', 'could not be decrypted with the password');
  }

  const keyBags = [...bagsOfType(p12, OID_SHROUDED_KEY_BAG), ...bagsOfType(p12, OID_KEY_BAG)];
  const forgeKey = keyBags.find((bag) => bag.key !== undefined && bag.key !== null)?.key;
  if (forgeKey === undefined || forgeKey === null) {
    // forge leaves `key` unset for key types it cannot represent (anything but RSA).
    if (keyBags.length > 0) throw new Pkcs12Error('unsupported-key', 'holds a private key that is not RSA');
    throw new Pkcs12Error('no-key', 'holds no private key');
  }

  const pkcs1Der = Buffer.from(
    forge.asn1.toDer(forge.pki.privateKeyToAsn1(forgeKey as forge.pki.rsa.PrivateKey)).getBytes(),
    'binary',
  );
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey({ key: pkcs1Der, format: 'der', type: 'pkcs1' });
  } finally {
    pkcs1Der.fill(0);
  }

  const certBag = bagsOfType(p12, OID_CERT_BAG).find((bag) => bag.cert !== undefined && bag.cert !== null);
  const certificatePem = certBag?.cert ? forge.pki.certificateToPem(certBag.cert) : undefined;
  return certificatePem === undefined ? { privateKey } : { privateKey, certificatePem };
}
