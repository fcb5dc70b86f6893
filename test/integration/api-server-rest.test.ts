import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as net from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { spawnDaemon, tempDir, type DaemonProcess } from '../../src/devtools/daemon';
import { writeResourceFile } from '../support/kbs';
import {
  buildGoAttestationAgent,
  request,
  spawnGoAttestationAgent,
  spawnRest,
  type LinedProcess,
  type RestProcess,
} from '../support/rest';

const KEY = Buffer.concat([Buffer.from('resource-bytes-'), Buffer.from([0, 1, 0xfe, 0xff]), randomBytes(16)]);
const LARGE = randomBytes(256 * 1024);

describe('api-server-rest in front of the daemon (offline_fs) and a Go ttrpc attestation agent', () => {
  let dir: { path: string; cleanup(): void };
  let daemon: DaemonProcess;
  let agent: LinedProcess | undefined;
  let agentSkip: string | undefined;
  let rest: RestProcess;
  let aaSocket: string;

  before(async () => {
    dir = tempDir('rest-');
    const resources = join(dir.path, 'resources.json');
    writeResourceFile(resources, { 'default/key/1': KEY, 'default/blob/large': LARGE });
    daemon = await spawnDaemon({
      dir: dir.path,
      config: { kbc: { name: 'offline_fs_kbc', offline_fs: { resource_files: [resources] } } },
    });
    aaSocket = join(dir.path, 'aa.sock');
    const built = buildGoAttestationAgent(dir.path);
    if ('skip' in built) agentSkip = built.skip;
    else agent = await spawnGoAttestationAgent(built.binary, aaSocket, ['-additional-tees', 'tdx,nvidia']);
    rest = await spawnRest(['-f', 'all', '--cdh_addr', daemon.target, '--aa_addr', `unix://${aaSocket}`]);
  });
  after(async () => {
    await rest?.stop();
    await agent?.stop();
    await daemon?.stop();
    dir?.cleanup();
  });

  describe('resources', () => {
    test('GET /cdh/resource/<repo>/<type>/<tag> answers the exact bytes as application/octet-stream', async () => {
      const answer = await request(`${rest.url}/cdh/resource/default/key/1`);
      assert.equal(answer.status, 200, answer.text);
      assert.equal(answer.headers['content-type'], 'application/octet-stream');
      assert.deepEqual(answer.body, KEY);
      const large = await request(`${rest.url}/cdh/resource/default/blob/large`);
      assert.equal(large.status, 200);
      assert.ok(large.body.equals(LARGE), 'the 256 KiB resource arrives unchanged');
    });

    test('a missing resource is 404 with the daemon catalogued code in a one-line body', async () => {
      const answer = await request(`${rest.url}/cdh/resource/default/key/absent`);
      assert.equal(answer.status, 404);
      assert.match(answer.text, /^RESOURCE_NOT_FOUND: .*default\/key\/absent/);
      assert.doesNotMatch(answer.text, /\n/);
    });

    test('a resource path the daemon rejects is 400 with its code', async () => {
      const answer = await request(`${rest.url}/cdh/resource/only-one`);
      assert.equal(answer.status, 400);
      assert.match(answer.text, /^RESOURCE_URI_INVALID: /);
    });

    test('/cdh paths other than /cdh/resource/... are 404', async () => {
      for (const path of ['/cdh', '/cdh/resource', '/cdh/other/a/b/c']) {
        const answer = await request(`${rest.url}${path}`);
        assert.equal(answer.status, 404, path);
        assert.equal(answer.text, 'URL NOT FOUND', path);
      }
    });
  });

  describe('attestation agent routes', () => {
    test('GET /info answers version, tee, additional_tees and feature as JSON', async (t) => {
      if (agentSkip) return t.skip(agentSkip);
      const answer = await request(`${rest.url}/info`);
      assert.equal(answer.status, 200, answer.text);
      assert.equal(answer.headers['content-type'], 'application/json');
      const info = JSON.parse(answer.text) as Record<string, unknown>;
      assert.deepEqual(Object.keys(info), ['version', 'tee', 'additional_tees', 'feature']);
      assert.match(String(info.version), /^\d+\.\d+\.\d+/);
      assert.equal(info.tee, 'sample');
      assert.deepEqual(info.additional_tees, ['tdx', 'nvidia']);
      assert.equal(info.feature, 'all');
    });

    test('GET /aa/token?token_type=kbs answers the agent token bytes; no token_type is 400', async (t) => {
      if (agentSkip) return t.skip(agentSkip);
      const answer = await request(`${rest.url}/aa/token?token_type=kbs`);
      assert.equal(answer.status, 200, answer.text);
      assert.equal(answer.headers['content-type'], 'application/octet-stream');
      const token = JSON.parse(answer.text) as { token: string; tee_keypair: string };
      assert.match(token.token, /^eyJ/);
      assert.match(token.tee_keypair, /BEGIN PRIVATE KEY/);
      const missing = await request(`${rest.url}/aa/token`);
      assert.equal(missing.status, 400);
      assert.match(missing.text, /^BAD REQUEST: .*token_type/);
      // The agent's own refusal (InvalidArgument) keeps its message and maps to 400.
      const refused = await request(`${rest.url}/aa/token?token_type=other`);
      assert.equal(refused.status, 400);
      assert.match(refused.text, /unsupported token type "other"/);
    });

    test('GET /aa/evidence passes runtime_data as its UTF-8 text, or decoded with encoding=base64', async (t) => {
      if (agentSkip) return t.skip(agentSkip);
      const plain = await request(`${rest.url}/aa/evidence?runtime_data=xxxx`);
      assert.equal(plain.status, 200, plain.text);
      assert.equal(plain.headers['content-type'], 'application/octet-stream');
      assert.deepEqual(JSON.parse(plain.text), { kind: 'evidence', report_data: 'eHh4eA==', svn: '1' });
      // Query decoding: + is a space, %21 is "!".
      const escaped = await request(`${rest.url}/aa/evidence?runtime_data=a+b%21`);
      assert.equal((JSON.parse(escaped.text) as { report_data: string }).report_data, 'YSBiIQ==');
      const binary = randomBytes(48);
      const encoded = await request(
        `${rest.url}/aa/evidence?runtime_data=${binary.toString('base64url')}&encoding=base64`,
      );
      assert.equal(encoded.status, 200, encoded.text);
      assert.equal(
        (JSON.parse(encoded.text) as { report_data: string }).report_data,
        binary.toString('base64'),
      );
    });

    test('GET /aa/evidence rejects bad runtime_data with 400 before calling the agent', async (t) => {
      if (agentSkip) return t.skip(agentSkip);
      for (const query of [
        '', // no runtime_data
        '?runtime_data=eHh4eA==&encoding=base64', // padding: upstream's decoder wants none
        '?runtime_data=eHh4e+&encoding=base64', // standard alphabet
        '?runtime_data=abc&encoding=hex',
      ]) {
        const answer = await request(`${rest.url}/aa/evidence${query}`);
        assert.equal(answer.status, 400, query);
        assert.match(answer.text, /^BAD REQUEST: /, query);
      }
    });

    test('GET /aa/additional-evidence answers the agent additional evidence', async (t) => {
      if (agentSkip) return t.skip(agentSkip);
      const answer = await request(`${rest.url}/aa/additional-evidence?runtime_data=eHh4eA&encoding=base64`);
      assert.equal(answer.status, 200, answer.text);
      assert.deepEqual(JSON.parse(answer.text), {
        kind: 'additional-evidence',
        report_data: 'eHh4eA==',
        svn: '1',
      });
    });

    test('POST /aa/aael extends the measurement with the entry and answers {"success":"true"}', async (t) => {
      if (agentSkip || !agent) return t.skip(agentSkip);
      const answer = await request(`${rest.url}/aa/aael`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ domain: 'test-domain', operation: 'op', content: 'some content' }),
      });
      assert.equal(answer.status, 200, answer.text);
      assert.equal(answer.headers['content-type'], 'application/json');
      assert.deepEqual(JSON.parse(answer.text), { success: 'true' });
      await agent.waitForLine((line) => line === 'aael test-domain op some content', 5_000);
    });

    test('POST /aa/aael with a bad or oversized body is 400 / 413', async (t) => {
      if (agentSkip) return t.skip(agentSkip);
      for (const body of [
        'not json',
        '[]',
        '{"domain":"d","operation":"o"}',
        '{"domain":1,"operation":"o","content":"c"}',
      ]) {
        const answer = await request(`${rest.url}/aa/aael`, { method: 'POST', body });
        assert.equal(answer.status, 400, body);
        assert.match(answer.text, /^BAD REQUEST: /, body);
      }
      const big = JSON.stringify({ domain: 'd', operation: 'o', content: 'x'.repeat(70 * 1024) });
      const tooLarge = await request(`${rest.url}/aa/aael`, { method: 'POST', body: big });
      assert.equal(tooLarge.status, 413);
    });
  });

  describe('methods and paths', () => {
    test('a method other than GET is 405 with Allow (POST only for /aa/aael)', async () => {
      for (const [method, path, allow] of [
        ['POST', '/cdh/resource/default/key/1', 'GET'],
        ['PUT', '/info', 'GET'],
        ['DELETE', '/aa/token?token_type=kbs', 'GET'],
        ['POST', '/aa/evidence?runtime_data=x', 'GET'],
        ['GET', '/aa/aael', 'POST'],
        ['HEAD', '/info', 'GET'],
      ] as const) {
        const answer = await request(`${rest.url}${path}`, { method });
        assert.equal(answer.status, 405, `${method} ${path}`);
        assert.equal(answer.headers.allow, allow, `${method} ${path}`);
      }
    });

    test('an unknown path is 404 "URL NOT FOUND"', async () => {
      for (const path of ['/', '/unknown', '/info/', '/aa/unknown', '/aa/token/extra', '/x/y/z']) {
        const answer = await request(`${rest.url}${path}`);
        assert.equal(answer.status, 404, path);
        assert.equal(answer.text, 'URL NOT FOUND', path);
      }
    });

    test('request headers over the size bound are 431 and the server keeps serving', async () => {
      const answer = await request(`${rest.url}/info`, { headers: { 'x-big': 'a'.repeat(16 * 1024) } });
      assert.equal(answer.status, 431);
      assert.equal((await request(`${rest.url}/cdh/resource/default/key/1`)).status, 200);
    });
  });

  test('each request is one JSON log line: method, path, query names, status, ms; never tokens or resource bytes', async () => {
    // Earlier tests' lines may still be on their way: start after a marker request's line.
    const marker = `/log-marker-${randomBytes(4).toString('hex')}`;
    await request(`${rest.url}${marker}`);
    await rest.waitForLine((line) => line.includes(`"path":"${marker}"`), 5_000);
    const before = rest.requestLogs().findIndex((entry) => entry.path === marker) + 1;
    await request(`${rest.url}/cdh/resource/default/key/1`);
    await request(`${rest.url}/aa/evidence?runtime_data=secret-looking-value`);
    await request(`${rest.url}/aa/token?token_type=kbs`);
    await rest.waitForLine(
      (line) => line.includes('"path":"/aa/token"') && rest.requestLogs().length >= before + 3,
      5_000,
    );
    const lines = rest.requestLogs().slice(before, before + 3);
    assert.deepEqual(
      lines.map(({ method, path, status }) => [method, path, status]),
      [
        ['GET', '/cdh/resource/default/key/1', 200],
        ['GET', '/aa/evidence', agentSkip ? 503 : 200],
        ['GET', '/aa/token', agentSkip ? 503 : 200],
      ],
    );
    assert.deepEqual(lines[1]?.query, ['runtime_data']);
    for (const line of lines) assert.equal(typeof line.ms, 'number');
    const all = rest.lines.join('\n');
    assert.ok(!all.includes('secret-looking-value'), 'a query value is never logged');
    assert.ok(!all.includes('eyJhbGciOiJFUzI1NiJ9'), 'the token is never logged');
    assert.ok(
      !all.includes(KEY.toString('base64')) && !all.includes('resource-bytes-'),
      'resource bytes are never logged',
    );
  });

  test('500 idle connections do not stop a fresh request from being answered', async () => {
    const idle = await openIdleConnections(rest.port, 500);
    try {
      const started = Date.now();
      const answer = await request(`${rest.url}/cdh/resource/default/key/1`, { timeoutMs: 5_000 });
      assert.equal(answer.status, 200);
      assert.deepEqual(answer.body, KEY);
      assert.ok(Date.now() - started < 5_000);
    } finally {
      for (const socket of idle) socket.destroy();
    }
  });

  test('at the connection limit the oldest idle connection makes room for a new one', async () => {
    const small = await spawnRest(['--cdh_addr', daemon.target, '--max-connections', '50']);
    const idle = await openIdleConnections(small.port, 500);
    try {
      const answer = await request(`${small.url}/cdh/resource/default/key/1`, { timeoutMs: 5_000 });
      assert.equal(answer.status, 200);
      assert.deepEqual(answer.body, KEY);
      const open = idle.filter((socket) => !socket.destroyed && socket.readyState === 'open').length;
      assert.ok(open < 500, `the server closed idle connections to stay at its limit (${open} still open)`);
    } finally {
      for (const socket of idle) socket.destroy();
      await small.stop();
    }
  });
});

describe('api-server-rest feature gating', () => {
  test('--features resource: /aa/* is 404 "Attestation Feature Not Enabled"; /info has no tee', async () => {
    const dir = tempDir('rest-gating-');
    // No daemon is needed to answer these; nothing is dialled before a request needs it.
    const rest = await spawnRest(['-f', 'resource', '--cdh_addr', `unix://${join(dir.path, 'none.sock')}`]);
    try {
      for (const [method, path] of [
        ['GET', '/aa/token?token_type=kbs'],
        ['GET', '/aa/evidence?runtime_data=x'],
        ['POST', '/aa/aael'],
        ['GET', '/aa/unknown'],
      ] as const) {
        const answer = await request(`${rest.url}${path}`, { method });
        assert.equal(answer.status, 404, path);
        assert.equal(answer.text, 'Attestation Feature Not Enabled', path);
      }
      const info = await request(`${rest.url}/info`);
      assert.equal(info.status, 200);
      assert.deepEqual(JSON.parse(info.text), {
        version: JSON.parse(info.text).version,
        feature: 'resource',
      });
    } finally {
      await rest.stop();
      dir.cleanup();
    }
  });

  test('--features attestation: /cdh/* is 404 "Resource Feature Not Enabled"', async () => {
    const dir = tempDir('rest-gating-');
    const rest = await spawnRest([
      '--features=attestation',
      '--aa_addr',
      `unix://${join(dir.path, 'none.sock')}`,
    ]);
    try {
      for (const path of ['/cdh/resource/default/key/1', '/cdh/resource', '/cdh/unknown/a/b']) {
        const answer = await request(`${rest.url}${path}`);
        assert.equal(answer.status, 404, path);
        assert.equal(answer.text, 'Resource Feature Not Enabled', path);
      }
    } finally {
      await rest.stop();
      dir.cleanup();
    }
  });

  test('an unknown --features value fails at start-up', async () => {
    const { runCli } = await import('../support/cli.js');
    const { REST_BIN } = await import('../support/rest.js');
    const result = await runCli(REST_BIN, ['-f', 'everything']);
    assert.notEqual(result.code, 0);
    assert.match(result.stderr, /unknown features "everything": supported are resource, attestation, all/);
  });
});

describe('api-server-rest when the daemon or the agent is down or slow', () => {
  test('daemon down: 503 with a one-line reason within 2 s', async () => {
    const dir = tempDir('rest-down-');
    const rest = await spawnRest([
      '-f',
      'all',
      '--cdh_addr',
      `unix://${join(dir.path, 'absent.sock')}`,
      '--aa_addr',
      `unix://${join(dir.path, 'absent-aa.sock')}`,
    ]);
    try {
      for (const path of ['/cdh/resource/default/key/1', '/aa/token?token_type=kbs', '/info']) {
        const started = Date.now();
        const answer = await request(`${rest.url}${path}`, { timeoutMs: 5_000 });
        assert.equal(answer.status, 503, path);
        assert.match(answer.text, /^(CDH|AA) unavailable: cannot connect to unix:\/\/.*ENOENT$/, path);
        assert.ok(Date.now() - started < 2_000, `${path} answered in ${Date.now() - started} ms`);
      }
    } finally {
      await rest.stop();
      dir.cleanup();
    }
  });

  test('a daemon that was stopped: 503 within 2 s, and served again once it is back', async () => {
    const dir = tempDir('rest-restart-');
    const resources = join(dir.path, 'resources.json');
    writeResourceFile(resources, { 'default/key/1': KEY });
    const config = { kbc: { name: 'offline_fs_kbc', offline_fs: { resource_files: [resources] } } };
    let daemon = await spawnDaemon({ dir: dir.path, config });
    const rest = await spawnRest(['--cdh_addr', daemon.target]);
    try {
      assert.equal((await request(`${rest.url}/cdh/resource/default/key/1`)).status, 200);
      await daemon.stop();
      const started = Date.now();
      const down = await request(`${rest.url}/cdh/resource/default/key/1`, { timeoutMs: 5_000 });
      assert.equal(down.status, 503);
      assert.ok(Date.now() - started < 2_000);
      daemon = await spawnDaemon({ dir: dir.path, config });
      const back = await request(`${rest.url}/cdh/resource/default/key/1`);
      assert.equal(back.status, 200);
      assert.deepEqual(back.body, KEY);
    } finally {
      await rest.stop();
      await daemon.stop();
      dir.cleanup();
    }
  });

  test('a daemon that accepts but never answers: 503 once the call deadline passes', async () => {
    const dir = tempDir('rest-slow-');
    const held: net.Socket[] = [];
    const silent = net.createServer((socket) => held.push(socket));
    const socketPath = join(dir.path, 'silent.sock');
    await new Promise<void>((resolve) => silent.listen(socketPath, resolve));
    const rest = await spawnRest(['--cdh_addr', `unix://${socketPath}`, '--timeout-ms', '800']);
    try {
      const started = Date.now();
      const answer = await request(`${rest.url}/cdh/resource/default/key/1`, { timeoutMs: 5_000 });
      const elapsed = Date.now() - started;
      assert.equal(answer.status, 503);
      assert.match(answer.text, /^CDH unavailable: .*no answer within 800 ms/);
      assert.ok(elapsed >= 700 && elapsed < 2_000, `answered after ${elapsed} ms`);
      // A caller that gives up first: the call is abandoned and the line says so, with no status.
      await assert.rejects(request(`${rest.url}/cdh/resource/default/key/2`, { timeoutMs: 200 }));
      const line = await rest.waitForLine((l) => l.includes('"path":"/cdh/resource/default/key/2"'), 5_000);
      assert.deepEqual(
        (({ status, aborted }) => ({ status, aborted }))(JSON.parse(line) as Record<string, unknown>),
        { status: null, aborted: true },
      );
    } finally {
      await rest.stop();
      for (const socket of held) socket.destroy();
      await new Promise((resolve) => silent.close(resolve));
      dir.cleanup();
    }
  });
});

/** Opens `count` connections that send nothing, resolved once all are connected (or refused). */
async function openIdleConnections(port: number, count: number): Promise<net.Socket[]> {
  const sockets: net.Socket[] = [];
  await Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<void>((resolve) => {
          const socket = net.connect(port, '127.0.0.1');
          sockets.push(socket);
          socket.on('error', () => resolve());
          socket.on('close', () => resolve());
          socket.once('connect', () => resolve());
        }),
    ),
  );
  return sockets;
}
