import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { spawnDaemon, type DaemonProcess } from '../support/daemon';
import { ccKbcConfig, ccKbcEnv, startKbsWorld, type KbsWorld } from '../support/kbs-world';
import { request, spawnRest, type RestProcess } from '../support/rest';

/**
 * The REST front over the real guest path: the daemon with cc_kbc (resources from the KBS
 * emulator over HTTPS, a token from the AA emulator that really attests), and the same AA
 * emulator behind the /aa routes.
 */

const RESOURCE = Buffer.concat([Buffer.from('kbs-delivered-'), randomBytes(32)]);

describe('api-server-rest with the daemon on cc_kbc and the AA emulator', () => {
  let world: KbsWorld;
  let daemon: DaemonProcess;
  let rest: RestProcess;

  before(async () => {
    world = await startKbsWorld({ tlsHost: 'kbs.cdh.test', resources: { 'default/key/rest': RESOURCE } });
    daemon = await spawnDaemon({ config: ccKbcConfig(world), env: ccKbcEnv(world) });
    rest = await spawnRest(['-f', 'all', '--cdh_addr', daemon.target, '--aa_addr', world.aaSocket]);
  });
  after(async () => {
    await rest?.stop();
    await daemon?.stop();
    await world?.close();
  });

  test('GET /cdh/resource answers the bytes the KBS delivered, exactly', async () => {
    const answer = await request(`${rest.url}/cdh/resource/default/key/rest`);
    assert.equal(answer.status, 200, answer.text);
    assert.equal(answer.headers['content-type'], 'application/octet-stream');
    assert.deepEqual(answer.body, RESOURCE);
  });

  test('a resource the KBS does not have is 404 with the daemon catalogued code', async () => {
    const answer = await request(`${rest.url}/cdh/resource/default/key/absent`);
    assert.equal(answer.status, 404, answer.text);
    assert.match(answer.text, /^RESOURCE_NOT_FOUND: .*default\/key\/absent.*at the KBS/);
  });

  test('GET /aa/token?token_type=kbs answers a token the KBS issued, and the TEE key', async () => {
    const before = world.aa.counters.getToken;
    const answer = await request(`${rest.url}/aa/token?token_type=kbs`);
    assert.equal(answer.status, 200, answer.text);
    const { token, tee_keypair: key } = JSON.parse(answer.text) as { token: string; tee_keypair: string };
    assert.equal(token.split('.').length, 3);
    assert.match(key, /BEGIN/);
    assert.equal(world.aa.counters.getToken, before + 1);
    assert.ok(!rest.lines.join('\n').includes(token), 'the token is never logged');
  });

  test('GET /info names the sample TEE; the agent has no additional TEEs to report', async () => {
    const answer = await request(`${rest.url}/info`);
    assert.equal(answer.status, 200, answer.text);
    const info = JSON.parse(answer.text) as Record<string, unknown>;
    assert.equal(info.tee, 'sample');
    assert.equal(info.additional_tees, undefined);
    assert.equal(info.feature, 'all');
  });

  test('GET /aa/evidence: plain and encoding=base64 runtime_data reach the agent as the same bytes', async () => {
    const plain = await request(`${rest.url}/aa/evidence?runtime_data=xxxx`);
    const encoded = await request(`${rest.url}/aa/evidence?runtime_data=eHh4eA&encoding=base64`);
    for (const answer of [plain, encoded]) {
      assert.equal(answer.status, 200, answer.text);
      assert.equal((JSON.parse(answer.text) as { report_data: string }).report_data, 'eHh4eA==');
    }
  });

  test('POST /aa/aael on an agent without runtime measurement answers success "false" with the reason', async () => {
    const answer = await request(`${rest.url}/aa/aael`, {
      method: 'POST',
      body: JSON.stringify({ domain: 'd', operation: 'o', content: 'c' }),
    });
    assert.equal(answer.status, 200, answer.text);
    assert.deepEqual(JSON.parse(answer.text), {
      success: 'false',
      message: 'The platform does not support runtime measurement',
    });
  });

  test('a method the agent does not implement is 500 with its one-line reason', async () => {
    const answer = await request(`${rest.url}/aa/additional-evidence?runtime_data=x`);
    assert.equal(answer.status, 500);
    assert.match(answer.text, /not implemented/);
  });
});
