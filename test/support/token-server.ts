import { createPrivateKey, randomBytes, sign, X509Certificate } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createTestCa } from '../../src/emulators/pki';

export interface TokenServer {
  /** `http://127.0.0.1:<port>/token` */
  readonly realm: string;
  readonly service: string;
  readonly issuer: string;
  /** PEM of the certificate whose key signs the tokens (the registry's rootcertbundle). */
  readonly certPem: string;
  /** Token requests seen: the scope asked for and whether the credentials were good. */
  readonly requests: Array<{ scope: string; authorized: boolean }>;
  close(): Promise<void>;
}

/**
 * A docker token service (the realm of a Bearer challenge): checks Basic credentials and
 * answers `{"token": <RS256 JWT with x5c>}` granting the requested repository actions.
 */
export async function startTokenServer(username: string, password: string): Promise<TokenServer> {
  const ca = createTestCa('CDH Test Token Signer');
  const key = createPrivateKey(ca.keyPem);
  const der = new X509Certificate(ca.certPem).raw.toString('base64');
  const service = 'cdh-test-registry';
  const issuer = 'cdh-test-token-issuer';
  const requests: TokenServer['requests'] = [];
  const expected = `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const scope = url.searchParams.get('scope') ?? '';
    const authorized = req.headers.authorization === expected;
    requests.push({ scope, authorized });
    if (!authorized) {
      res.writeHead(401, { 'content-type': 'application/json' });
      res.end('{"details":"bad credentials"}');
      return;
    }
    const access = scope
      .split(' ')
      .filter(Boolean)
      .map((s) => {
        const [type, name, actions] = s.split(':');
        return { type, name, actions: (actions ?? '').split(',') };
      });
    const now = Math.floor(Date.now() / 1000);
    const b64 = (v: object): string => Buffer.from(JSON.stringify(v)).toString('base64url');
    const head = b64({ alg: 'RS256', typ: 'JWT', x5c: [der] });
    const body = b64({
      iss: issuer,
      sub: username,
      aud: service,
      exp: now + 300,
      nbf: now - 10,
      iat: now,
      jti: randomBytes(8).toString('hex'),
      access,
    });
    const signature = sign('sha256', Buffer.from(`${head}.${body}`), key).toString('base64url');
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ token: `${head}.${body}.${signature}`, expires_in: 300 }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    realm: `http://127.0.0.1:${port}/token`,
    service,
    issuer,
    certPem: ca.certPem,
    requests,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
