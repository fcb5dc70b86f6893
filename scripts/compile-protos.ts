/**
 * Build step: compiles the protos the daemon serves into one FileDescriptorSet with a real
 * protobuf compiler (buf, whose binary ships in an npm package), so server reflection answers
 * with descriptors exactly as a compiler writes them.
 *
 * Compiled: every protos/*.proto (with whatever it imports from protos/), grpc.health.v1 and
 * grpc.reflection v1 / v1alpha, each under the path its own project publishes it at.
 *
 *   node dist/scripts/compile-protos.js [OUTPUT]   (default: DESCRIPTOR_SET)
 */
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { DESCRIPTOR_SET, PACKAGE_ROOT, PROTOS_DIR } from '../src/package-info';

/** A proto file copied into the compiler's tree: `path` is its name in the descriptor set. */
export interface ProtoInput {
  readonly source: string;
  readonly path: string;
}

/** The protos of other packages the daemon serves, under their published paths. */
export function thirdPartyProtos(root = PACKAGE_ROOT): ProtoInput[] {
  const modules = join(root, 'node_modules');
  return [
    {
      source: join(modules, 'grpc-health-check/proto/health/v1/health.proto'),
      path: 'grpc/health/v1/health.proto',
    },
    ...(['v1', 'v1alpha'] as const).map((version) => ({
      source: join(modules, `@grpc/reflection/build/proto/grpc/reflection/${version}/reflection.proto`),
      path: `grpc/reflection/${version}/reflection.proto`,
    })),
  ];
}

/** The daemon's own API protos: the .proto files at the top of protos/. */
export function servedProtoFiles(protosDir = PROTOS_DIR): string[] {
  return readdirSync(protosDir, { withFileTypes: true })
    .filter((entry) => entry.isFile() && entry.name.endsWith('.proto'))
    .map((entry) => entry.name)
    .sort();
}

export interface CompileOptions {
  /** A directory copied as the root of the tree (its files may import each other). */
  readonly protosDir?: string;
  /** Files (paths in the tree) to compile; their imports come along. */
  readonly targets?: readonly string[];
  readonly extra?: readonly ProtoInput[];
}

/** The buf binary of this platform's package (what @bufbuild/buf's own bin script runs). */
function bufBinary(): string {
  const arch = ({ arm64: 'aarch64', arm: 'armv7' } as Record<string, string>)[process.arch] ?? process.arch;
  const name = `@bufbuild/buf-${process.platform}-${arch}`;
  try {
    return require.resolve(`${name}/bin/buf${process.platform === 'win32' ? '.exe' : ''}`);
  } catch (error) {
    throw new Error(
      `the protobuf compiler is missing: ${name} (an optional dependency of @bufbuild/buf) is not installed`,
      {
        cause: error,
      },
    );
  }
}

/**
 * Runs buf on a temp tree and returns the FileDescriptorSet's bytes: imports included, no
 * source info (as `protoc --include_imports --descriptor_set_out` writes it).
 */
export function compileDescriptorSet(options: CompileOptions = {}): Buffer {
  const protosDir = options.protosDir ?? PROTOS_DIR;
  const extra = options.extra ?? thirdPartyProtos();
  const targets = options.targets ?? [...servedProtoFiles(protosDir), ...extra.map((input) => input.path)];
  const work = mkdtempSync(join(tmpdir(), 'cdh-protos-'));
  try {
    const tree = join(work, 'tree');
    cpSync(protosDir, tree, { recursive: true });
    for (const input of extra) {
      mkdirSync(dirname(join(tree, input.path)), { recursive: true });
      writeFileSync(join(tree, input.path), readFileSync(input.source));
    }
    const output = join(work, 'set.binpb');
    const args = ['build', tree, '--exclude-source-info', '--as-file-descriptor-set', '-o', output];
    for (const target of targets) args.push('--path', join(tree, target));
    const result = spawnSync(bufBinary(), args, {
      encoding: 'utf8',
      env: { ...process.env, BUF_CACHE_DIR: join(work, 'cache') },
    });
    if (result.error) throw result.error;
    if (result.status !== 0) {
      const errors = result.stderr.split(tree + '/').join('');
      throw new Error(`buf could not compile the protos:\n${errors}`);
    }
    return readFileSync(output);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

if (require.main === module) {
  const output = process.argv[2] ?? DESCRIPTOR_SET;
  mkdirSync(dirname(output), { recursive: true });
  writeFileSync(output, compileDescriptorSet());
}
