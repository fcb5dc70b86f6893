import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { spawnDaemon, tempDir } from '../../src/devtools/daemon';

/*
 * Socket permissions: 0600 by default, socket_mode and socket_group configurable (by number or
 * by name), a bad group refused at start-up without leaving a socket file, and a warning when
 * the socket's directory is writable by others.
 */

/** Group names of /etc/group by gid. */
function groupNames(): Map<number, string> {
  const names = new Map<number, string>();
  for (const line of readFileSync('/etc/group', 'utf8').split('\n')) {
    const [name, , gid] = line.split(':');
    if (name && gid !== undefined && !names.has(Number(gid))) names.set(Number(gid), name);
  }
  return names;
}

const WARNING = /socket directory is writable by others/;

describe('socket permissions', { concurrency: true }, () => {
  test('default: mode 0600, owned by the daemon user and group, no warning in a private dir', async () => {
    const daemon = await spawnDaemon();
    try {
      const stat = statSync(daemon.socketPath);
      assert.equal(stat.mode & 0o777, 0o600);
      assert.equal(stat.uid, process.getuid?.());
      assert.equal(stat.gid, process.getgid?.());
      assert.doesNotMatch(daemon.logLines.join('\n'), WARNING);
    } finally {
      await daemon.stop();
      daemon.cleanup();
    }
  });

  test('socket_mode "0660" and socket_group as a number (this process gid)', async () => {
    const gid = process.getgid?.() as number;
    const daemon = await spawnDaemon({ config: { socket_mode: '0660', socket_group: String(gid) } });
    try {
      const stat = statSync(daemon.socketPath);
      assert.equal(stat.mode & 0o777, 0o660);
      assert.equal(stat.gid, gid);
      assert.equal(await daemon.client().check(''), 'SERVING');
    } finally {
      await daemon.stop();
      daemon.cleanup();
    }
  });

  test('socket_group by name from /etc/group (another group when root may chown to it)', async (t) => {
    const names = groupNames();
    const root = process.getuid?.() === 0;
    const other = [...names].find(([gid]) => gid !== process.getgid?.());
    const [gid, name] =
      root && other ? other : [process.getgid?.() as number, names.get(process.getgid?.() as number)];
    if (name === undefined) {
      t.skip('no /etc/group entry for a group this process may use');
      return;
    }
    const daemon = await spawnDaemon({ config: { socket_mode: 0o660, socket_group: name } });
    try {
      assert.equal(statSync(daemon.socketPath).gid, gid, `group ${name}`);
    } finally {
      await daemon.stop();
      daemon.cleanup();
    }
  });

  test('an unknown socket_group stops start-up naming the key, and leaves no socket file', async () => {
    const daemon = await spawnDaemon({ config: { socket_group: 'no-such-group-cdh' }, waitReady: false });
    try {
      assert.notEqual(await daemon.exited(), 0);
      assert.match(daemon.stderr(), /socket_group.*no-such-group-cdh/);
      assert.equal(existsSync(daemon.socketPath), false, 'the socket file is removed again');
    } finally {
      daemon.cleanup();
    }
  });

  test('a socket directory writable by others is warned about in the log', async () => {
    const dir = tempDir();
    const shared = join(dir.path, 'shared');
    mkdirSync(shared);
    chmodSync(shared, 0o777);
    const daemon = await spawnDaemon({ dir: dir.path, socketPath: join(shared, 'cdh.sock') });
    try {
      const warning = daemon.logLines.find((line) => WARNING.test(line));
      assert.ok(warning, daemon.logLines.join('\n'));
      const entry = JSON.parse(warning) as { level: string; dir: string };
      assert.equal(entry.level, 'warn');
      assert.equal(entry.dir, shared);
      assert.equal(statSync(daemon.socketPath).mode & 0o777, 0o600, 'the socket itself stays private');
    } finally {
      await daemon.stop();
      dir.cleanup();
    }
  });

  test('a sticky world-writable directory (like /tmp) is not warned about', async () => {
    const dir = tempDir();
    const sticky = join(dir.path, 'sticky');
    mkdirSync(sticky);
    chmodSync(sticky, 0o1777);
    const daemon = await spawnDaemon({ dir: dir.path, socketPath: join(sticky, 'cdh.sock') });
    try {
      assert.doesNotMatch(daemon.logLines.join('\n'), WARNING);
    } finally {
      await daemon.stop();
      dir.cleanup();
    }
  });
});
