import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { AaEmulator, type TeeKeyType } from '../../src/emulators/aa/server';
import type { JweProducer } from '../../src/emulators/kbs/jwe-producer';
import { KbsEmulator } from '../../src/emulators/kbs/server';
import { tempDir } from '../../src/devtools/daemon';
import { createTestCa, type TestCa } from '../../src/emulators/pki';

/** A KBS emulator and an AA emulator attesting to it, on loopback, with resources in a temp dir. */
export interface KbsWorld {
  readonly dir: string;
  readonly kbs: KbsEmulator;
  readonly aa: AaEmulator;
  /** The KBS base URL as the daemon is configured with it. */
  readonly url: string;
  /** `unix:///...` of the AA. */
  readonly aaSocket: string;
  /** The CA of an https KBS. */
  readonly ca?: TestCa;
  /** `<repo>/<type>/<tag>` → content. */
  putResource(name: string, content: string | Buffer): void;
  close(): Promise<void>;
}

export interface KbsWorldOptions {
  readonly producer?: JweProducer;
  readonly keyType?: TeeKeyType;
  /** HTTPS with a certificate for this host name (the daemon dials 127.0.0.1 through CDH_KBS_CONNECT_TO). */
  readonly tlsHost?: string;
  readonly resources?: Record<string, string | Buffer>;
  readonly tokenTtlSeconds?: number;
}

export async function startKbsWorld(options: KbsWorldOptions = {}): Promise<KbsWorld> {
  const temp = tempDir('cdh-kbs-world-');
  const resourceDir = join(temp.path, 'resources');
  mkdirSync(resourceDir);
  const putResource = (name: string, content: string | Buffer): void => {
    const file = join(resourceDir, ...name.split('/'));
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, content);
  };
  for (const [name, content] of Object.entries(options.resources ?? {})) putResource(name, content);

  const ca = options.tlsHost ? createTestCa('CDH Test KBS CA') : undefined;
  const serverCert = ca && options.tlsHost ? ca.issueServerCert([options.tlsHost]) : undefined;
  const kbs = new KbsEmulator({
    resourceDir,
    ...(serverCert ? { tls: { cert: serverCert.chainPem, key: serverCert.keyPem } } : {}),
    ...(options.producer ? { producer: options.producer } : {}),
    ...(options.tokenTtlSeconds ? { tokenTtlSeconds: options.tokenTtlSeconds } : {}),
  });
  const local = await kbs.start();
  const url = options.tlsHost ? `https://${options.tlsHost}:${kbs.port}` : local;
  const aa = new AaEmulator({
    socket: join(temp.path, 'aa.sock'),
    kbsUrl: url,
    ...(ca ? { kbsCert: ca.certPem, kbsConnectTo: `127.0.0.1:${kbs.port}` } : {}),
    keyType: options.keyType ?? 'ec-p256',
  });
  const aaSocket = await aa.start();
  return {
    dir: temp.path,
    kbs,
    aa,
    url,
    aaSocket,
    ...(ca ? { ca } : {}),
    putResource,
    async close() {
      await aa.close().catch(() => undefined);
      aa.dispose();
      await kbs.close();
      temp.cleanup();
    },
  };
}

/** Daemon config (file form) for cc_kbc against a world. */
export function ccKbcConfig(world: KbsWorld): Record<string, unknown> {
  return {
    aa: { aa_socket: world.aaSocket },
    kbc: { name: 'cc_kbc', url: world.url, ...(world.ca ? { kbs_cert: world.ca.certPem } : {}) },
  };
}

/** Environment a daemon needs for an https world (dial the loopback emulator). */
export function ccKbcEnv(world: KbsWorld): Record<string, string> {
  return world.ca ? { CDH_KBS_CONNECT_TO: `127.0.0.1:${world.kbs.port}` } : {};
}
