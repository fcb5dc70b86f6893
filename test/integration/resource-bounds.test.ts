import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startClientKeyWorld } from '../support/client-key-world';
import { spawnDaemon } from '../../src/devtools/daemon';
import { memoryOf } from '../support/load-run';

/*
 * Resource exhaustion through hostile provider_settings: an unknown extra field with a new
 * value per call must not make the client_key provider read and decrypt the PKCS#12 again and
 * open a new TLS connection (before the registry keyed instances by each provider's identity of
 * the settings, this cost 53 ms per call instead of 2.6 ms and +63 MB RSS after 300 calls).
 */

const CALLS = 150;

test('junk provider_settings fields do not build a provider instance (PKCS#12 load, TLS connection) per call', async () => {
  const world = await startClientKeyWorld();
  const daemon = await spawnDaemon({ config: world.daemonConfig(5000) });
  try {
    const sealed = await world.sealEnvelope('junk-settings');
    const client = daemon.client();
    const payload = sealed.payload as unknown as Record<string, unknown>;
    const settings = payload['provider_settings'] as Record<string, unknown>;
    const junkUnseal = async (i: number): Promise<void> => {
      const junk = world.sign({ ...payload, provider_settings: { ...settings, junk: `value-${i}` } });
      assert.equal((await client.unsealSecret(Buffer.from(junk))).toString(), 'junk-settings');
    };
    // Warm up first (first-call loading, JIT, heap growth; more of it under coverage), so the
    // RSS figure below measures what the calls themselves keep.
    for (let i = 0; i < 30; i++) await junkUnseal(-1 - i);
    const tlsBefore = world.emulator.stats.tlsConnections;
    const rssBefore = memoryOf(daemon.child.pid as number).rssKb;
    for (let i = 0; i < CALLS; i++) await junkUnseal(i);
    const connections = world.emulator.stats.tlsConnections - tlsBefore;
    const growthKb = memoryOf(daemon.child.pid as number).rssKb - rssBefore;
    assert.ok(connections <= 2, `${connections} TLS connections for ${CALLS} calls with one client key`);
    assert.ok(growthKb < 20 * 1024, `RSS grew ${growthKb} kB`);
  } finally {
    await daemon.stop();
    daemon.cleanup();
    await world.close();
  }
});
