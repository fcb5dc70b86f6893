import { existsSync } from 'node:fs';
import * as path from 'node:path';
import * as protobuf from 'protobufjs';

/**
 * The package's protos/ directory, found by walking up from this file, so the same code works
 * from src/server/ttrpc/ (ts-node, tests) and from dist/src/server/ttrpc/ (the build).
 */
export function protosDir(): string {
  for (let dir = __dirname; ; dir = path.dirname(dir)) {
    const candidate = path.join(dir, 'protos');
    if (existsSync(path.join(dir, 'package.json')) && existsSync(path.join(candidate, 'api.proto'))) {
      return candidate;
    }
    if (path.dirname(dir) === dir) throw new Error(`protos/api.proto not found above ${__dirname}`);
  }
}

/**
 * Loads proto files with the given include directories. Field names are kept exactly as
 * written in the .proto (`ResourcePath`, `timeout_nano`), as the dispatcher expects.
 */
export function loadProtos(files: readonly string[], includeDirs: readonly string[]): protobuf.Root {
  const root = new protobuf.Root();
  root.resolvePath = (origin, target) => {
    if (path.isAbsolute(target)) return target;
    for (const dir of includeDirs) {
      const candidate = path.join(dir, target);
      if (existsSync(candidate)) return candidate;
    }
    // google/protobuf/*.proto: protobufjs ships these and resolves them by name.
    return protobuf.util.path.resolve(origin, target);
  };
  root.loadSync([...files], { keepCase: true });
  root.resolveAll();
  return root;
}
