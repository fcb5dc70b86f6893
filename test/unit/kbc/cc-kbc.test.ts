import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { CdhError } from '../../../src/errors';
import { CcKbc, type TokenSource } from '../../../src/kbc/cc-kbc';
import { KbsHttpClient } from '../../../src/kbc/kbs-http';
import { silentLogger } from '../../../src/log';
import { startKbsWorld, type KbsWorld } from '../../support/kbs-world';

const URI = 'kbs:///default/test/file';
let world: KbsWorld;

before(async () => {
  world = await startKbsWorld({ resources: { 'default/test/file': 'unit-resource' }, tokenTtlSeconds: 2 });
});
after(async () => world.close());

/** A token source over the AA emulator's real attestation, slowed down and observed. */
function slowSource(delayMs: number): TokenSource & { calls: number; aborted: number } {
  const source = {
    address: 'unix:///fake/aa.sock',
    calls: 0,
    aborted: 0,
    async getToken(_type: string, ctx: { signal: AbortSignal }): Promise<Buffer> {
      source.calls++;
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(resolve, delayMs);
        ctx.signal.addEventListener('abort', () => {
          clearTimeout(timer);
          source.aborted++;
          reject(new Error('aborted'));
        });
      });
      return world.aa.attest('ec-p256');
    },
  };
  return source;
}

function kbcWith(source: TokenSource): CcKbc {
  return new CcKbc(
    source,
    new KbsHttpClient(world.url, { maxBodyBytes: 1 << 20 }),
    world.url,
    silentLogger(),
  );
}

function leavingAfter(ms: number): { signal: AbortSignal } {
  const controller = new AbortController();
  setTimeout(() => controller.abort(new CdhError('DEADLINE_EXCEEDED', "the caller's deadline passed")), ms);
  return { signal: controller.signal };
}

test('the GetToken call is aborted when the only caller waiting for it leaves', async () => {
  const source = slowSource(2000);
  const kbc = kbcWith(source);
  try {
    await assert.rejects(kbc.getResource(URI, leavingAfter(100)), (error: unknown) => {
      assert.equal((error as CdhError).code, 'DEADLINE_EXCEEDED');
      assert.match((error as CdhError).message, /kbs:\/\/\/default\/test\/file/);
      return true;
    });
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(source.aborted, 1);
  } finally {
    kbc.close();
  }
});

test('one caller leaving does not abort the GetToken another caller shares', async () => {
  const source = slowSource(300);
  const kbc = kbcWith(source);
  try {
    const leaving = kbc.getResource(URI, leavingAfter(50));
    const staying = kbc.getResource(URI, { signal: new AbortController().signal });
    await assert.rejects(leaving);
    assert.equal((await staying).toString(), 'unit-resource');
    assert.equal(source.calls, 1);
    assert.equal(source.aborted, 0);
  } finally {
    kbc.close();
  }
});

test('a token is dropped when its exp passes and the next call gets a new one', async () => {
  const source = slowSource(0);
  const kbc = kbcWith(source);
  try {
    const ctx = { signal: new AbortController().signal };
    await kbc.getResource(URI, ctx);
    await kbc.getResource(URI, ctx);
    assert.equal(source.calls, 1, 'reused while valid');
    await new Promise((resolve) => setTimeout(resolve, 3100));
    await kbc.getResource(URI, ctx);
    assert.equal(source.calls, 2, 'a new token after exp');
  } finally {
    kbc.close();
  }
});

test('a GetToken answer without a usable token or key is UNAVAILABLE naming the AA, never its content', async () => {
  for (const answer of [
    'nope',
    '{"token":"t"}',
    '{"token":"t","tee_keypair":"-----BEGIN PRIVATE KEY-----\\nAAAA\\n-----END PRIVATE KEY-----"}',
  ]) {
    const kbc = kbcWith({ address: 'unix:///fake/aa.sock', getToken: async () => Buffer.from(answer) });
    try {
      await assert.rejects(
        kbc.getResource(URI, { signal: new AbortController().signal }),
        (error: unknown) => {
          assert.equal((error as CdhError).code, 'AA_UNAVAILABLE');
          assert.match((error as CdhError).message, /attestation agent at unix:\/\/\/fake\/aa\.sock/);
          assert.doesNotMatch((error as CdhError).message, /AAAA/);
          return true;
        },
      );
    } finally {
      kbc.close();
    }
  }
});
