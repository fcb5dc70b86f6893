import { existsSync } from 'node:fs';
import * as path from 'node:path';
import * as protobuf from 'protobufjs';

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
