/**
 * Profiles one benchmark scenario with `node --cpu-prof` and prints where the CPU went:
 * self time by package (or file of ours) and the hottest functions.
 *
 * Usage: node dist/bench/profile.js SCENARIO [CONCURRENCY=16] [OUT_DIR]
 *   SCENARIO: uncached | cached | cached-ttrpc | health | per-call | in-process | cached-in-process | load-generator | startup
 *             | cached-vs-health (both profiled, then each function's self time per call, cached minus Health)
 *   (cached-ttrpc: the cached scenario with the load client on ttrpc; health: Health/Check calls instead of unseals). DAEMON_BIN=FILE profiles another daemon build.
 * The .cpuprofile files stay in OUT_DIR (default: a temp dir, printed) for Chrome DevTools.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CdhClient } from '../src/client/cdh-client';
import { childEnv, DAEMON_BIN } from '../src/devtools/daemon';
import { BENCH_DIR, prepareBench, runJson } from './harness';
import type { LoadResult } from './load';

const DURATION_MS = 4000;
const WARMUP_MS = 700;

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber?: number };
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** Self time (ms) by key, busiest first, idle left out. */
function selfTime(profile: CpuProfile, keyOf: (node: ProfileNode) => string): Array<[string, number]> {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const totals = new Map<string, number>();
  profile.samples.forEach((id, i) => {
    const node = byId.get(id);
    if (node === undefined || node.callFrame.functionName === '(idle)') return;
    const key = keyOf(node);
    totals.set(key, (totals.get(key) ?? 0) + (profile.timeDeltas[i] ?? 0) / 1000);
  });
  return [...totals].sort((a, b) => b[1] - a[1]);
}

interface ModuleStart {
  readonly line: number;
  readonly column: number;
  readonly path: string;
}

/**
 * Where each module begins in a bundle (esbuild wraps each one as `__commonJS({"<path>"(…` or
 * `__esm({"<path>"(…`), so that a bundle's samples are attributed to the module they ran in.
 */
const bundleModules = new Map<string, ModuleStart[] | undefined>();
function modulesOfBundle(url: string): ModuleStart[] | undefined {
  if (bundleModules.has(url)) return bundleModules.get(url);
  let starts: ModuleStart[] | undefined;
  try {
    const source = readFileSync(url.startsWith('file://') ? new URL(url) : url, 'utf8');
    if (source.includes('__commonJS({')) {
      starts = [];
      const lineStarts = [0];
      for (let i = source.indexOf('\n'); i >= 0; i = source.indexOf('\n', i + 1)) lineStarts.push(i + 1);
      const wrapper = /__(?:commonJS|esm)\(\{\s*"([^"]+)"/g;
      for (let m = wrapper.exec(source); m !== null; m = wrapper.exec(source)) {
        let line = lineStarts.length - 1;
        while ((lineStarts[line] as number) > m.index) line--;
        starts.push({ line, column: m.index - (lineStarts[line] as number), path: m[1] as string });
      }
    }
  } catch {
    starts = undefined;
  }
  bundleModules.set(url, starts);
  return starts;
}

/** The bundled module a position of a bundle lies in ('(bundle prelude)' before the first). */
function bundledModuleAt(starts: readonly ModuleStart[], line: number, column: number): string {
  let found = '(bundle prelude)';
  for (const start of starts) {
    if (start.line > line || (start.line === line && start.column > column)) break;
    found = start.path;
  }
  return found;
}

function packageOf(node: ProfileNode): string {
  let url = node.callFrame.url;
  const starts = url.endsWith('.js') && !url.startsWith('node:') ? modulesOfBundle(url) : undefined;
  if (starts !== undefined)
    url = `/${bundledModuleAt(starts, node.callFrame.lineNumber, node.callFrame.columnNumber ?? 0)}`;
  const inModules = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (inModules) return inModules[1] as string;
  if (url.includes('/dist/')) return `ours: ${url.slice(url.indexOf('/dist/') + 6)}`;
  if (url.startsWith('node:')) return `node: ${url.slice(5).split('/')[1] ?? url}`;
  return node.callFrame.functionName || '(native)';
}

function functionOf(node: ProfileNode): string {
  const { functionName, lineNumber } = node.callFrame;
  let url = node.callFrame.url;
  const starts = url.endsWith('.js') && !url.startsWith('node:') ? modulesOfBundle(url) : undefined;
  if (starts !== undefined)
    url = `${url.slice(url.lastIndexOf('/') + 1)}[${bundledModuleAt(starts, lineNumber, node.callFrame.columnNumber ?? 0)}]`;
  const where = url.replace(/.*node_modules\//, '').replace(/.*\/dist\//, '');
  return `${functionName || '(anonymous)'} ${where ? `${where}:${lineNumber + 1}` : ''}`.trim();
}

function report(dir: string, label: string): void {
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'))) {
    const profile = JSON.parse(readFileSync(join(dir, file), 'utf8')) as CpuProfile;
    const byPackage = selfTime(profile, packageOf);
    const busy = byPackage.reduce((sum, [, ms]) => sum + ms, 0);
    console.log(`\n### ${label}: ${file} (${busy.toFixed(0)} ms busy)\n`);
    console.log('| self ms | % | package / file |\n| ---: | ---: | --- |');
    for (const [key, ms] of byPackage.slice(0, 15))
      console.log(`| ${ms.toFixed(0)} | ${((100 * ms) / busy).toFixed(1)} | ${key} |`);
    console.log('\n| self ms | % | function |\n| ---: | ---: | --- |');
    for (const [key, ms] of selfTime(profile, functionOf).slice(0, 20))
      console.log(`| ${ms.toFixed(0)} | ${((100 * ms) / busy).toFixed(1)} | ${key.replace(/\|/g, '\\|')} |`);
  }
}

/** The daemon (or the per-call bench daemon) under `node --cpu-prof`, serving on a temp socket. */
/**
 * A daemon under --cpu-prof, once it serves. `untilServingLine`: waited for by its "serving" log
 * line, with no call made (the start-up profile then holds start-up and shutdown only, not the
 * first call's lazy loading); otherwise by polling Health/Check.
 */
async function profiledDaemon(
  bin: string,
  config: Record<string, unknown>,
  profileDir: string,
  untilServingLine = false,
): Promise<{ target: string; stop(): Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), 'cdh-profiled-'));
  const configFile = join(dir, 'cdh.json');
  writeFileSync(configFile, JSON.stringify(config));
  const target = `unix://${join(dir, 'cdh.sock')}`;
  const child = spawn(
    process.execPath,
    ['--cpu-prof', `--cpu-prof-dir=${profileDir}`, bin, '--socket', target, '-c', configFile],
    { env: childEnv(), stdio: ['ignore', untilServingLine ? 'pipe' : 'ignore', 'inherit'] },
  );
  const exited = new Promise((resolve) => child.once('exit', resolve));
  if (untilServingLine) {
    await new Promise<void>((resolve, reject) => {
      let log = '';
      child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
        log += chunk;
        if (log.includes('"msg":"serving"')) resolve();
      });
      child.once('exit', () => reject(new Error(`the profiled daemon did not serve: ${log}`)));
    });
    child.stdout?.resume();
    return { target, stop: () => stopProfiled(child, exited, dir) };
  }
  const client = new CdhClient(target, { timeoutMs: 1000 });
  try {
    for (let tries = 0; ; tries++) {
      const status = await client.check('', 500).catch(() => 'DOWN');
      if (status === 'SERVING') break;
      if (tries > 600 || child.exitCode !== null) throw new Error('the profiled daemon did not serve');
      await new Promise((r) => setTimeout(r, 25));
    }
  } finally {
    client.close();
  }
  return { target, stop: () => stopProfiled(child, exited, dir) };
}

async function stopProfiled(child: ChildProcess, exited: Promise<unknown>, dir: string): Promise<void> {
  child.kill('SIGTERM');
  await exited;
  rmSync(dir, { recursive: true, force: true });
}

const LOAD_SCENARIOS = ['uncached', 'cached', 'cached-ttrpc', 'health', 'per-call', 'load-generator'];

/** The load of `scenario` against a daemon under --cpu-prof (its profile written to `dir`). */
async function profiledLoad(
  scenario: string,
  concurrency: number,
  dir: string,
  setup: Awaited<ReturnType<typeof prepareBench>>,
): Promise<LoadResult> {
  const cached = scenario === 'cached' || scenario === 'cached-ttrpc' || scenario === 'health';
  const config = cached ? setup.cachedConfig : setup.uncachedConfig;
  const bin =
    scenario === 'per-call'
      ? join(BENCH_DIR, 'daemon-per-call.js')
      : (process.env['DAEMON_BIN'] ?? DAEMON_BIN);
  // The load generator is profiled instead of the daemon: the daemon's profile goes elsewhere.
  const daemonDir = scenario === 'load-generator' ? mkdtempSync(join(tmpdir(), 'cdh-profile-')) : dir;
  const daemon = await profiledDaemon(bin, config, daemonDir);
  try {
    return await runJson<LoadResult>(
      'load.js',
      [daemon.target, cached ? setup.oneSecret : setup.manySecrets, concurrency, DURATION_MS, WARMUP_MS],
      {
        nodeFlags: scenario === 'load-generator' ? ['--cpu-prof', `--cpu-prof-dir=${dir}`] : [],
        ...(scenario === 'cached-ttrpc' ? { env: { BENCH_CLIENT: 'ttrpc' } } : {}),
        ...(scenario === 'health' ? { env: { BENCH_METHOD: 'health' } } : {}),
      },
    );
  } finally {
    await daemon.stop();
    if (daemonDir !== dir) rmSync(daemonDir, { recursive: true, force: true });
  }
}

/** Self time per call (µs) by function in B's profile minus A's, largest first. */
function perCallDifference(dirA: string, callsA: number, dirB: string, callsB: number): void {
  const perCall = (dir: string, calls: number): Map<string, number> => {
    const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile')) as string;
    const profile = JSON.parse(readFileSync(join(dir, file), 'utf8')) as CpuProfile;
    return new Map(selfTime(profile, functionOf).map(([key, ms]) => [key, (1000 * ms) / calls]));
  };
  const [a, b] = [perCall(dirA, callsA), perCall(dirB, callsB)];
  const total = (m: Map<string, number>): number => [...m.values()].reduce((x, y) => x + y, 0);
  console.log(
    `\nself µs per call (profiled, so inflated): A ${total(a).toFixed(0)}, B ${total(b).toFixed(0)}`,
  );
  console.log('\n| B − A µs | A µs | B µs | function |\n| ---: | ---: | ---: | --- |');
  const keys = [...new Set([...a.keys(), ...b.keys()])];
  const rows = keys.map((k) => [(b.get(k) ?? 0) - (a.get(k) ?? 0), a.get(k) ?? 0, b.get(k) ?? 0, k] as const);
  for (const [diff, x, y, key] of rows.sort((r, q) => q[0] - r[0]).slice(0, 30))
    console.log(`| ${diff.toFixed(1)} | ${x.toFixed(1)} | ${y.toFixed(1)} | ${key.replace(/\|/g, '\\|')} |`);
}

async function main(): Promise<void> {
  const [scenario, concurrencyText, outDir] = process.argv.slice(2);
  const concurrency = Number(concurrencyText ?? 16);
  const dir = outDir ?? mkdtempSync(join(tmpdir(), 'cdh-profile-'));
  const profiling = ['--cpu-prof', `--cpu-prof-dir=${dir}`];
  const setup = await prepareBench();
  try {
    let result: LoadResult | undefined;
    if (scenario === 'in-process' || scenario === 'cached-in-process') {
      const cached = scenario === 'cached-in-process';
      result = await runJson<LoadResult>(
        'inprocess.js',
        [
          cached ? setup.cachedConfigFile : setup.uncachedConfigFile,
          cached ? setup.oneSecret : setup.manySecrets,
          concurrency,
          DURATION_MS,
          WARMUP_MS,
        ],
        { nodeFlags: profiling },
      );
    } else if (scenario === 'startup') {
      const daemon = await profiledDaemon(
        process.env['DAEMON_BIN'] ?? DAEMON_BIN,
        setup.uncachedConfig,
        dir,
        true,
      );
      await daemon.stop();
    } else if (LOAD_SCENARIOS.includes(scenario ?? '')) {
      result = await profiledLoad(scenario as string, concurrency, dir, setup);
    } else if (scenario === 'cached-vs-health') {
      // Two daemons, one profile each: what a cached unseal costs per call beyond a Health/Check.
      const [healthDir, cachedDir] = [join(dir, 'health'), join(dir, 'cached')];
      const health = await profiledLoad('health', concurrency, healthDir, setup);
      const cached = await profiledLoad('cached', concurrency, cachedDir, setup);
      console.log(
        `health c${concurrency}: ${JSON.stringify(health)}\ncached c${concurrency}: ${JSON.stringify(cached)}`,
      );
      perCallDifference(healthDir, health.allCalls, cachedDir, cached.allCalls);
      console.log(`\nprofiles in ${dir}`);
      return;
    } else {
      throw new Error(`unknown scenario ${String(scenario)} (see the usage in bench/profile.ts)`);
    }
    if (result) console.log(`${scenario} c${concurrency}: ${JSON.stringify(result)}`);
    report(dir, scenario as string);
    console.log(`\nprofiles in ${dir}`);
  } finally {
    await setup.close();
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`profile failed: ${(error as Error).stack ?? String(error)}\n`);
  process.exit(1);
});
