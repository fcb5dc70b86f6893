import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import * as net from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { tempDir } from '../../src/devtools/daemon';
import { spawnRest, type RestProcess } from '../support/rest';

/**
 * A caller that is not on loopback, for real: a network namespace joined to this one by a veth
 * pair carrying a private /30 (no other route in the namespace: nothing can leave the machine).
 * The REST front listens on this side's end of the pair; a client inside the namespace calls it.
 */

interface Netns {
  readonly name: string;
  readonly hostAddress: string;
  readonly peerAddress: string;
  remove(): void;
}

function ip(args: readonly string[]): void {
  execFileSync('ip', [...args], { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** The namespace and its veth pair, or why they cannot be made here. */
function makeNetns(): Netns | { skip: string } {
  if (process.getuid?.() !== 0) return { skip: 'making a network namespace needs root' };
  if (spawnSync('ip', ['-V']).status !== 0) return { skip: 'the ip command (iproute2) is not installed' };
  const id = process.pid % 100_000;
  const name = `cdhrest${id}`;
  const hostLink = `crh${id}`;
  const peerLink = `crn${id}`;
  const used = spawnSync('ip', ['-4', '-o', 'addr'], { encoding: 'utf8' }).stdout ?? '';
  const third = [...Array(250).keys()].map((n) => (id + n) % 250).find((n) => !used.includes(`10.231.${n}.`));
  if (third === undefined) return { skip: 'no free 10.231.x.0/30 subnet for the veth pair' };
  const hostAddress = `10.231.${third}.1`;
  const peerAddress = `10.231.${third}.2`;
  const remove = (): void => {
    spawnSync('ip', ['netns', 'del', name]);
    spawnSync('ip', ['link', 'del', hostLink]);
  };
  try {
    ip(['netns', 'add', name]);
  } catch (error) {
    return {
      skip: `cannot make a network namespace here: ${String((error as { stderr?: Buffer }).stderr ?? error).trim()}`,
    };
  }
  try {
    ip(['link', 'add', hostLink, 'type', 'veth', 'peer', 'name', peerLink]);
    ip(['link', 'set', peerLink, 'netns', name]);
    ip(['addr', 'add', `${hostAddress}/30`, 'dev', hostLink]);
    ip(['link', 'set', hostLink, 'up']);
    ip(['netns', 'exec', name, 'ip', 'addr', 'add', `${peerAddress}/30`, 'dev', peerLink]);
    ip(['netns', 'exec', name, 'ip', 'link', 'set', peerLink, 'up']);
    ip(['netns', 'exec', name, 'ip', 'link', 'set', 'lo', 'up']);
  } catch (error) {
    remove();
    return {
      skip: `cannot make a veth pair here: ${String((error as { stderr?: Buffer }).stderr ?? error).trim()}`,
    };
  }
  return { name, hostAddress, peerAddress, remove };
}

/** Runs an HTTP request with node inside the namespace; its status, body and error, if any. */
function requestFromNamespace(
  netns: Netns,
  url: string,
  options: { method?: string; bodyBytes?: number } = {},
): { status?: number; body?: string; error?: string } {
  const script = `
    const http = require('node:http');
    const req = http.request(process.argv[1], { method: process.argv[2], agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (c) => (body += c)).on('end', () => {
        console.log(JSON.stringify({ status: res.statusCode, body }));
      });
    });
    req.setTimeout(5000, () => req.destroy(new Error('timeout')));
    req.on('error', (e) => console.log(JSON.stringify({ error: e.code || e.message })));
    req.end(Number(process.argv[3]) > 0 ? Buffer.alloc(Number(process.argv[3]), 97) : undefined);
  `;
  const result = spawnSync(
    'ip',
    [
      'netns',
      'exec',
      netns.name,
      process.execPath,
      '-e',
      script,
      url,
      options.method ?? 'GET',
      String(options.bodyBytes ?? 0),
    ],
    { encoding: 'utf8', timeout: 15_000 },
  );
  const line = result.stdout.trim().split('\n').pop() ?? '';
  return line
    ? (JSON.parse(line) as { status?: number; body?: string; error?: string })
    : { error: result.stderr };
}

describe('api-server-rest and callers that are not on loopback', () => {
  let netns: Netns | undefined;
  let skip: string | undefined;
  let rest: RestProcess | undefined;
  let dir: { path: string; cleanup(): void };
  let daemonConnections = 0;
  const daemonStandIn = net.createServer((socket) => {
    daemonConnections++;
    socket.destroy();
  });

  before(async () => {
    dir = tempDir('rest-netns-');
    const made = makeNetns();
    if ('skip' in made) {
      skip = made.skip;
      return;
    }
    netns = made;
    // A socket that counts connections: nothing the outside caller sends may reach the daemon.
    const socketPath = join(dir.path, 'cdh.sock');
    await new Promise<void>((resolve) => daemonStandIn.listen(socketPath, resolve));
    rest = await spawnRest([
      '-b',
      `${netns.hostAddress}:0`,
      '-f',
      'all',
      '--cdh_addr',
      `unix://${socketPath}`,
    ]);
  });
  after(async () => {
    await rest?.stop();
    netns?.remove();
    await new Promise((resolve) => daemonStandIn.close(resolve));
    dir?.cleanup();
  });

  test('a request from another network namespace is answered 403 and nothing reaches the daemon', async (t) => {
    if (skip || !netns || !rest) return t.skip(`no network namespace: ${skip}`);
    for (const path of ['/cdh/resource/default/key/1', '/info', '/aa/token?token_type=kbs', '/unknown']) {
      const answer = requestFromNamespace(netns, `${rest.url}${path}`);
      assert.equal(answer.status, 403, `${path}: ${JSON.stringify(answer)}`);
      assert.equal(answer.body, 'Forbidden');
    }
    // A request with a body still gets its answer (the server drops the bytes, never parses them).
    const withBody = requestFromNamespace(netns, `${rest.url}/aa/aael`, {
      method: 'POST',
      bodyBytes: 32 * 1024,
    });
    assert.equal(withBody.status, 403, JSON.stringify(withBody));
    assert.equal(daemonConnections, 0);
    await rest.waitForLine((line) => line.includes(`"remote":"${netns?.peerAddress}"`), 5_000);
    const refused = rest.requestLogs().filter((entry) => entry.status === 403);
    assert.equal(refused.length, 5);
    for (const entry of refused) {
      assert.equal(entry.remote, netns.peerAddress);
      assert.equal(entry.path, undefined, 'the refused request was never parsed');
    }
  });
});
