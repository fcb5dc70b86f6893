import { generateKeyPairSync, randomBytes } from 'node:crypto';
import forge from 'node-forge';

/** A throw-away certificate authority for the emulators' TLS (tests only). */
export interface TestCa {
  readonly certPem: string;
  readonly keyPem: string;
  issueServerCert(dnsNames: readonly string[], options?: { ipAddresses?: readonly string[] }): ServerCert;
}

export interface ServerCert {
  readonly certPem: string;
  readonly keyPem: string;
  /** certPem followed by the CA's certificate. */
  readonly chainPem: string;
}

function rsaKeyPair(): {
  privateKey: forge.pki.rsa.PrivateKey;
  publicKey: forge.pki.rsa.PublicKey;
  pem: string;
} {
  // Native key generation; forge only assembles and signs the certificates.
  const { privateKey } = generateKeyPairSync('rsa', {
    modulusLength: 2048,
    privateKeyEncoding: { type: 'pkcs1', format: 'pem' },
    publicKeyEncoding: { type: 'spki', format: 'pem' },
  });
  const forgeKey = forge.pki.privateKeyFromPem(privateKey);
  return {
    privateKey: forgeKey,
    publicKey: forge.pki.setRsaPublicKey(forgeKey.n, forgeKey.e),
    pem: privateKey,
  };
}

function baseCertificate(publicKey: forge.pki.rsa.PublicKey, commonName: string): forge.pki.Certificate {
  const cert = forge.pki.createCertificate();
  cert.publicKey = publicKey;
  cert.serialNumber = `01${randomBytes(8).toString('hex')}`;
  const now = Date.now();
  cert.validity.notBefore = new Date(now - 60 * 60 * 1000);
  cert.validity.notAfter = new Date(now + 7 * 24 * 60 * 60 * 1000);
  cert.setSubject([{ name: 'commonName', value: commonName }]);
  return cert;
}

export function createTestCa(commonName = 'CDH Test Root CA'): TestCa {
  const keys = rsaKeyPair();
  const caCert = baseCertificate(keys.publicKey, commonName);
  caCert.setIssuer(caCert.subject.attributes);
  caCert.setExtensions([
    { name: 'basicConstraints', cA: true, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  caCert.sign(keys.privateKey, forge.md.sha256.create());
  const caPem = forge.pki.certificateToPem(caCert);

  return {
    certPem: caPem,
    keyPem: keys.pem,
    issueServerCert(dnsNames, options = {}) {
      const leafKeys = rsaKeyPair();
      const leaf = baseCertificate(leafKeys.publicKey, dnsNames[0] ?? 'localhost');
      leaf.setIssuer(caCert.subject.attributes);
      const altNames: Array<{ type: number; value?: string; ip?: string }> = [
        ...dnsNames.map((value) => ({ type: 2, value })),
        ...(options.ipAddresses ?? []).map((ip) => ({ type: 7, ip })),
      ];
      leaf.setExtensions([
        { name: 'basicConstraints', cA: false },
        { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
        { name: 'extKeyUsage', serverAuth: true },
        { name: 'subjectAltName', altNames },
      ]);
      leaf.sign(keys.privateKey, forge.md.sha256.create());
      const certPem = forge.pki.certificateToPem(leaf);
      return { certPem, keyPem: leafKeys.pem, chainPem: certPem + caPem };
    },
  };
}
