import { readFileSync } from 'node:fs';
import { rootCertificates } from 'node:tls';
import { Agent, ProxyAgent, type Dispatcher } from 'undici';

const SYSTEM_BUNDLES = ['/etc/ssl/certs/ca-certificates.crt', '/etc/pki/tls/certs/ca-bundle.crt'];

export interface ProxySettings {
  readonly httpsProxy: string;
  readonly httpProxy: string;
  readonly noProxy: string;
}

export interface RegistryTransportOptions {
  /** PEM certificates trusted besides the system roots. */
  readonly extraRootCertificates: readonly string[];
  readonly proxy: ProxySettings;
}

/** The HTTP agents for every registry: trust store and proxies, built once per settings. */
export class RegistryTransport {
  private readonly direct: Agent;
  private readonly proxies = new Map<string, ProxyAgent>();
  private readonly ca: string[];

  constructor(private readonly options: RegistryTransportOptions) {
    this.ca = [...rootCertificates, ...systemRoots(), ...options.extraRootCertificates];
    this.direct = new Agent({ connect: { ca: this.ca }, connections: 16 });
  }

  dispatcherFor(url: URL): Dispatcher {
    const proxy = url.protocol === 'https:' ? this.options.proxy.httpsProxy : this.options.proxy.httpProxy;
    if (proxy === '' || bypassesProxy(url.hostname, this.options.proxy.noProxy)) return this.direct;
    let agent = this.proxies.get(proxy);
    if (!agent) {
      agent = new ProxyAgent({ uri: proxy, requestTls: { ca: this.ca }, proxyTls: { ca: this.ca } });
      this.proxies.set(proxy, agent);
    }
    return agent;
  }

  async close(): Promise<void> {
    await Promise.all([this.direct.close(), ...[...this.proxies.values()].map((p) => p.close())]);
  }
}

function systemRoots(): string[] {
  for (const path of SYSTEM_BUNDLES) {
    try {
      return [readFileSync(path, 'utf8')];
    } catch {
      // next
    }
  }
  return [];
}

function bypassesProxy(host: string, noProxy: string): boolean {
  for (const raw of noProxy.split(',')) {
    const entry = raw.trim().toLowerCase().replace(/:\d+$/, '');
    if (entry === '') continue;
    if (entry === '*') return true;
    const bare = entry.startsWith('.') ? entry.slice(1) : entry;
    if (host === bare || host.endsWith(`.${bare}`)) return true;
  }
  return false;
}
