import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { lstat, mkdir, readFile, realpath, rm, writeFile } from 'node:fs/promises';
import { isAbsolute, join } from 'node:path';
import { promisify } from 'node:util';
import { CdhError } from '../errors';
import type { ImageConfig } from './manifest';
import { quote } from './reference';
import { resolveUser, type ProcessUser } from './users';

const run = promisify(execFile);

/** Refuses a bundle that already holds a config.json or a mounted rootfs (before anything is mounted). */
export async function checkBundle(bundlePath: string, label: string): Promise<void> {
  if (!isAbsolute(bundlePath) || bundlePath.includes('\0'))
    throw new CdhError(
      'IMAGE_REFERENCE_INVALID',
      `${label}: bundle_path ${quote(bundlePath)} is not an absolute path`,
    );
  const configJson = join(bundlePath, 'config.json');
  if (await exists(configJson))
    throw new CdhError(
      'IMAGE_BUNDLE_IN_USE',
      `${label}: bundle ${quote(bundlePath)} already holds a config.json`,
    );
  const rootfs = join(bundlePath, 'rootfs');
  if ((await exists(rootfs)) && (await isMountPoint(rootfs)))
    throw new CdhError('IMAGE_BUNDLE_IN_USE', `${label}: ${quote(rootfs)} is already a mount point`);
}

async function exists(path: string): Promise<boolean> {
  return lstat(path).then(
    () => true,
    () => false,
  );
}

async function isMountPoint(path: string): Promise<boolean> {
  const real = await realpath(path);
  const mountinfo = await readFile('/proc/self/mountinfo', 'utf8');
  for (const line of mountinfo.split('\n')) {
    const field = line.split(' ')[4];
    if (field !== undefined && unescapeMount(field) === real) return true;
  }
  return false;
}

function unescapeMount(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
}

/**
 * Mounts `<bundle>/rootfs` as an overlay: the layers (top first) as lowerdirs, a fresh
 * upperdir/workdir under `<work_dir>/overlay/`. mount(8) runs in work_dir so the options
 * hold short relative paths (the kernel caps them at one page).
 */
export async function mountRootfs(
  workDir: string,
  lowerTopFirst: readonly string[],
  bundlePath: string,
  label: string,
): Promise<{ rootfs: string; overlayDir: string }> {
  const rootfs = join(bundlePath, 'rootfs');
  await mkdir(rootfs, { recursive: true, mode: 0o755 });
  const id = randomBytes(12).toString('hex');
  const overlayRel = join('overlay', id);
  const overlayDir = join(workDir, overlayRel);
  await mkdir(join(overlayDir, 'upperdir'), { recursive: true, mode: 0o755 });
  await mkdir(join(overlayDir, 'workdir'), { recursive: true, mode: 0o700 });
  const lowers = [...lowerTopFirst];
  if (lowers.length === 0) {
    await mkdir(join(overlayDir, 'empty'), { mode: 0o755 });
    lowers.push(join(overlayRel, 'empty'));
  }
  const options = `lowerdir=${lowers.join(':')},upperdir=${join(overlayRel, 'upperdir')},workdir=${join(overlayRel, 'workdir')}`;
  try {
    await run('mount', ['-t', 'overlay', 'overlay', '-o', options, rootfs], {
      cwd: workDir,
      timeout: 30_000,
    });
  } catch (error) {
    await rm(overlayDir, { recursive: true, force: true }).catch(() => undefined);
    const e = error as { stderr?: unknown; code?: unknown };
    const why = typeof e.stderr === 'string' && e.stderr.trim() ? e.stderr.trim() : String(e.code);
    throw new CdhError(
      'IMAGE_MOUNT_FAILED',
      `${label}: cannot mount the overlay rootfs at ${quote(rootfs)}: ${why.slice(0, 300)}`,
    );
  }
  return { rootfs, overlayDir };
}

export async function unmountRootfs(rootfs: string, overlayDir: string): Promise<void> {
  await run('umount', [rootfs], { timeout: 30_000 }).catch(() => undefined);
  await rm(overlayDir, { recursive: true, force: true }).catch(() => undefined);
}

/** `<bundle>/config.json`: an OCI runtime spec from the image config (written exclusively). */
export async function writeRuntimeConfig(
  bundlePath: string,
  image: ImageConfig,
  label: string,
): Promise<void> {
  const user = await resolveUser(join(bundlePath, 'rootfs'), image.user, label);
  const spec = runtimeSpec(image, user);
  try {
    await writeFile(join(bundlePath, 'config.json'), `${JSON.stringify(spec, null, 2)}\n`, {
      flag: 'wx',
      mode: 0o644,
    });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EEXIST')
      throw new CdhError(
        'IMAGE_BUNDLE_IN_USE',
        `${label}: bundle ${quote(bundlePath)} already holds a config.json`,
      );
    throw new CdhError(
      'IMAGE_MOUNT_FAILED',
      `${label}: cannot write ${quote(join(bundlePath, 'config.json'))} (${code ?? 'error'})`,
    );
  }
}

const DEFAULT_CAPS = [
  'CAP_CHOWN',
  'CAP_DAC_OVERRIDE',
  'CAP_FSETID',
  'CAP_FOWNER',
  'CAP_MKNOD',
  'CAP_NET_RAW',
  'CAP_SETGID',
  'CAP_SETUID',
  'CAP_SETFCAP',
  'CAP_SETPCAP',
  'CAP_NET_BIND_SERVICE',
  'CAP_SYS_CHROOT',
  'CAP_KILL',
  'CAP_AUDIT_WRITE',
];

const DEFAULT_MOUNTS = [
  { destination: '/proc', type: 'proc', source: 'proc' },
  {
    destination: '/dev',
    type: 'tmpfs',
    source: 'tmpfs',
    options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'],
  },
  {
    destination: '/dev/pts',
    type: 'devpts',
    source: 'devpts',
    options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'],
  },
  {
    destination: '/dev/shm',
    type: 'tmpfs',
    source: 'shm',
    options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'],
  },
  { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
  { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
];

const DEFAULT_LINUX = {
  namespaces: [{ type: 'pid' }, { type: 'network' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }],
  maskedPaths: [
    '/proc/acpi',
    '/proc/kcore',
    '/proc/keys',
    '/proc/latency_stats',
    '/proc/timer_list',
    '/proc/timer_stats',
    '/proc/sched_debug',
    '/sys/firmware',
    '/proc/scsi',
  ],
  readonlyPaths: ['/proc/asound', '/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'],
};

/** An OCI runtime spec for the image config; `user` is the resolved `User` (users.ts). */
export function runtimeSpec(image: ImageConfig, user: ProcessUser): Record<string, unknown> {
  const volumes = image.volumes.map((destination) => ({
    destination,
    type: 'tmpfs',
    source: 'tmpfs',
    options: ['nosuid', 'noexec', 'nodev', 'relatime', 'rw'],
  }));
  return {
    ociVersion: '1.0.2',
    process: {
      terminal: false,
      user,
      args: [...image.entrypoint, ...image.cmd],
      env:
        image.env.length > 0
          ? [...image.env]
          : ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'],
      cwd: image.workingDir === '' ? '/' : image.workingDir,
      capabilities: { bounding: DEFAULT_CAPS, effective: DEFAULT_CAPS, permitted: DEFAULT_CAPS },
      rlimits: [{ type: 'RLIMIT_NOFILE', hard: 1024, soft: 1024 }],
      noNewPrivileges: true,
    },
    root: { path: 'rootfs', readonly: false },
    hostname: 'cdh',
    mounts: [...volumes, ...DEFAULT_MOUNTS],
    annotations: annotations(image),
    linux: DEFAULT_LINUX,
  };
}

function annotations(image: ImageConfig): Record<string, string> {
  const out: Record<string, string> = {
    'org.opencontainers.image.os': image.os,
    'org.opencontainers.image.architecture': image.architecture,
  };
  const created = image.raw['created'];
  if (typeof created === 'string') out['org.opencontainers.image.created'] = created;
  return Object.assign(out, image.labels);
}
