import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import * as esbuild from 'esbuild';
import {
  HEALTH_DEFINITION,
  healthDefinitionPlugin,
  protobufjsAtStartup,
} from '../../../scripts/bundle-health';
import { PACKAGE_ROOT } from '../../../src/package-info';

/** Bundles `source` (in memory) as bin `bin` with the plugin, as scripts/bundle.ts does. */
function bundle(source: string, bin: string): Promise<esbuild.BuildResult> {
  return esbuild.build({
    stdin: { contents: source, resolveDir: PACKAGE_ROOT, sourcefile: `${bin}.entry.js` },
    bundle: true,
    preserveSymlinks: true,
    platform: 'node',
    format: 'cjs',
    outfile: join(PACKAGE_ROOT, 'dist', 'bundle-health-probe', `${bin}.js`),
    write: false,
    metafile: true,
    logLevel: 'silent',
    plugins: [healthDefinitionPlugin()],
  });
}

const inputs = (result: esbuild.BuildResult): string[] => Object.keys(result.metafile?.inputs ?? {});

test("grpc-health-check's proto-loader becomes the health definition; grpc-js's lazy one is left", async () => {
  const result = await bundle(
    `require('grpc-health-check'); require('@grpc/grpc-js');`,
    'confidential-data-hub',
  );
  const all = inputs(result);
  assert.ok(all.includes('dist/src/server/health-definition.js'), HEALTH_DEFINITION);
  assert.ok(!all.some((input) => input.startsWith('node_modules/@grpc/proto-loader/')));
  // grpc-js's own (channelz, ORCA), required inside functions, stays in the bundle but not at start-up.
  assert.ok(
    all.some((input) => input.startsWith('node_modules/@grpc/grpc-js/node_modules/@grpc/proto-loader/')),
  );
  assert.deepEqual(protobufjsAtStartup(result.metafile as esbuild.Metafile), []);
});

test('the daemon and cdh-tool fail to build when proto-loader is reachable at start-up', async () => {
  for (const bin of ['confidential-data-hub', 'cdh-tool']) {
    await assert.rejects(
      bundle(`require('@grpc/proto-loader');`, bin),
      (error: Error) =>
        error.message.includes(`${bin}: protobufjs / proto-loader would load at start-up`) &&
        error.message.includes('node_modules/@grpc/proto-loader/build/src/index.js (imported by'),
    );
  }
  // Other bins are not held to it.
  await bundle(`require('@grpc/proto-loader');`, 'cdh-emulator');
});

test('start-up reachability: through any import but the lazy grpc-js ones', () => {
  const metafile = (imports: Record<string, string[]>): esbuild.Metafile => ({
    inputs: Object.fromEntries(
      Object.entries(imports).map(([path, to]) => [
        path,
        { bytes: 1, imports: to.map((p) => ({ path: p, kind: 'require-call' as const })) },
      ]),
    ),
    outputs: { 'out.js': { bytes: 1, inputs: {}, imports: [], exports: [], entryPoint: 'entry.js' } },
  });
  const channelz = 'node_modules/@grpc/grpc-js/build/src/channelz.js';
  const loader = 'node_modules/@grpc/grpc-js/node_modules/@grpc/proto-loader/build/src/index.js';
  const protobufjs = 'node_modules/protobufjs/index.js';
  const lazyOnly = { 'entry.js': [channelz], [channelz]: [loader], [loader]: [protobufjs], [protobufjs]: [] };
  assert.deepEqual(protobufjsAtStartup(metafile(lazyOnly)), []);
  const alsoEager = { ...lazyOnly, 'entry.js': [channelz, 'a.js'], 'a.js': ['b.js'], 'b.js': [protobufjs] };
  assert.deepEqual(protobufjsAtStartup(metafile(alsoEager)), [`${protobufjs} (imported by b.js)`]);
  const long = { 'entry.js': ['node_modules/long/umd/index.js'], 'node_modules/long/umd/index.js': [] };
  assert.equal(protobufjsAtStartup(metafile(long)).length, 1);
});
