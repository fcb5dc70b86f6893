/**
 * The bundles' grpc.health.v1 without protobufjs: grpc-health-check's module top level calls
 * `@grpc/proto-loader`'s loadSync for its health.proto, which loads protobufjs, long and
 * @protobufjs/* at start-up (~60 ms of CPU and ~6 MB before SERVING). In the bundles that import is
 * answered by src/server/health-definition.ts (the same definition, from the protoc-gen-es types);
 * any other importer of proto-loader keeps the real one.
 *
 * Bundle-only: dist/src (tsc output, what most tests run) resolves the real proto-loader, so
 * test/unit/server/health-definition compares the two in one process.
 *
 * The build fails when protobufjs or proto-loader can still be reached at start-up of the
 * daemon or cdh-tool: from the bundle's entry through the esbuild metafile's imports, except
 * grpc-js's own requires of proto-loader, which run inside functions (channelz and ORCA, when
 * used; test/integration/bundle.test.ts checks they do not run).
 */
import type * as esbuild from 'esbuild';
import { basename, join } from 'node:path';
import { PACKAGE_ROOT } from '../src/package-info';

/** What grpc-health-check's `require('@grpc/proto-loader')` becomes (tsc output, bundled from). */
export const HEALTH_DEFINITION = join(PACKAGE_ROOT, 'dist', 'src', 'server', 'health-definition.js');
const FROM_HEALTH_CHECK = /[\\/]node_modules[\\/]grpc-health-check[\\/]/;

/** Bins (bundle names) whose start-up must not reach protobufjs or proto-loader. */
export const NO_PROTOBUFJS_AT_STARTUP: readonly string[] = ['confidential-data-hub', 'cdh-tool'];

/** protobufjs and what comes with it (metafile input paths, proto-loader nested in grpc-js too). */
export const PROTOBUFJS_FAMILY =
  /(^|\/)node_modules\/(protobufjs|@protobufjs\/[^/]+|@grpc\/proto-loader|long)\//;

/** Modules requiring proto-loader only inside a function: those edges are not start-up. */
export const LAZY_PROTO_LOADER_IMPORTERS: readonly string[] = [
  'node_modules/@grpc/grpc-js/build/src/channelz.js',
  'node_modules/@grpc/grpc-js/build/src/orca.js',
];

/** The protobufjs-family inputs reachable from the output's entry point, each with who imports it. */
export function protobufjsAtStartup(metafile: esbuild.Metafile): string[] {
  const entries = Object.values(metafile.outputs).flatMap((output) =>
    output.entryPoint === undefined ? [] : [output.entryPoint],
  );
  const seen = new Set<string>(entries);
  const found: string[] = [];
  const pending = [...entries];
  while (pending.length > 0) {
    const from = pending.pop() as string;
    for (const { path } of metafile.inputs[from]?.imports ?? []) {
      if (seen.has(path) || !(path in metafile.inputs)) continue;
      const family = PROTOBUFJS_FAMILY.test(path);
      if (family && LAZY_PROTO_LOADER_IMPORTERS.includes(from)) continue;
      seen.add(path);
      if (family && !PROTOBUFJS_FAMILY.test(from)) found.push(`${path} (imported by ${from})`);
      pending.push(path);
    }
  }
  return found.sort();
}

export function healthDefinitionPlugin(): esbuild.Plugin {
  return {
    name: 'health-definition',
    setup(build) {
      build.onResolve({ filter: /^@grpc\/proto-loader$/ }, (args) =>
        FROM_HEALTH_CHECK.test(args.importer) ? { path: HEALTH_DEFINITION } : undefined,
      );
      const bin = basename(build.initialOptions.outfile ?? '', '.js');
      if (!NO_PROTOBUFJS_AT_STARTUP.includes(bin)) return;
      build.onEnd((result) => {
        if (result.errors.length > 0) return undefined;
        if (result.metafile === undefined)
          return { errors: [{ text: `${bin}: no metafile, protobufjs at start-up cannot be ruled out` }] };
        const found = protobufjsAtStartup(result.metafile);
        if (found.length === 0) return undefined;
        const text = `${bin}: protobufjs / proto-loader would load at start-up:\n  ${found.join('\n  ')}`;
        return { errors: [{ text }] };
      });
    },
  };
}
