import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  existsSync,
  readFileSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { layOutBundle } from '../../../scripts/bundle-program';
import { tempDir } from '../../../src/devtools/daemon';

/**
 * The bundles' loader (src/bundle/program-loader.ts) on small programs laid out by the build
 * (scripts/bundle-program.ts), run by node as real files: the program behaves as a module Node
 * loaded itself, V8's code cache is written on request and used when it is trustworthy, and a
 * cache that is not (another build, a link, another owner, writable by others, corrupt) is
 * passed over with the program still running.
 */

// esbuild's output shape: a shebang, then code holding "*/" in a string, a regex and a comment.
const PROGRAM = `#!/usr/bin/env node
var glob = "src/**/*.ts", stripped = "a\\0b".replace(/\\0.*/, "");
/*! a legal comment, kept */
module.exports.loaded = true;
const state = globalThis[Symbol.for('cdh.bundle.codeCache')];
const line = new Error('where').stack.split('\\n')[1];
console.log(JSON.stringify({ state, glob, stripped, main: require.main === module, file: __filename,
  dir: __dirname, path: require('node:path').basename(__filename), line }));
`;

interface Run {
  state: string;
  glob: string;
  stripped: string;
  main: boolean;
  file: string;
  dir: string;
  path: string;
  line: string;
}

function run(file: string, env: Record<string, string> = {}): Run {
  const result = spawnSync(process.execPath, [file], {
    encoding: 'utf8',
    env: { PATH: process.env['PATH'], ...env },
  });
  assert.equal(result.status, 0, result.stderr);
  return JSON.parse(result.stdout) as Run;
}

function bundleIn(dir: string, program = PROGRAM): string {
  const file = join(dir, 'program.js');
  writeFileSync(file, layOutBundle(program), { mode: 0o755 });
  return file;
}

describe('the bundle loader', () => {
  const dirs: Array<{ cleanup(): void }> = [];
  const scratch = (): { path: string } => {
    const dir = tempDir('cdh-loader-');
    dirs.push(dir);
    return dir;
  };
  after(() => dirs.forEach((dir) => dir.cleanup()));

  it('runs the program as the module Node loaded: exports, require, main, file names, file lines', () => {
    const dir = scratch();
    const file = bundleIn(dir.path);
    const seen = run(file);
    assert.equal(seen.glob, 'src/**/*.ts');
    assert.equal(seen.stripped, 'a');
    assert.equal(seen.main, true);
    assert.equal(seen.file, file);
    assert.equal(seen.dir, dir.path);
    // The Error is made on the program's 6th line; the stack names the bundle file's own line.
    const lines = readFileSync(file, 'utf8').split('\n');
    const at = lines.findIndex((text) => text.startsWith("const line = new Error('where')")) + 1;
    assert.match(seen.line, new RegExp(`${file.replace(/[.]/g, '\\.')}:${at}:`));
  });

  it('reports no cache, writes one on request, then starts from it', () => {
    const dir = scratch();
    const file = bundleIn(dir.path);
    assert.equal(run(file).state, 'absent');
    assert.equal(existsSync(`${file}.codecache`), false, 'a cache is written only on request');
    assert.equal(run(file, { CDH_CODE_CACHE_WRITE: '1' }).state, 'absent');
    assert.equal(statSync(`${file}.codecache`).mode & 0o777, 0o644);
    assert.equal(run(file).state, 'used');
  });

  it('passes over a cache made for another build of the program', () => {
    const dir = scratch();
    const file = bundleIn(dir.path);
    run(file, { CDH_CODE_CACHE_WRITE: '1' });
    bundleIn(dir.path, `${PROGRAM}module.exports.other = 1;\n`);
    assert.equal(run(file).state, 'stale');
  });

  it('refuses a cache that is a link, writable by others, or owned by another user', () => {
    const dir = scratch();
    const file = bundleIn(dir.path);
    run(file, { CDH_CODE_CACHE_WRITE: '1' });
    const cache = `${file}.codecache`;
    chmodSync(cache, 0o666);
    assert.equal(run(file).state, 'refused');
    chmodSync(cache, 0o644);
    assert.equal(run(file).state, 'used');
    if (process.getuid?.() === 0) {
      chownSync(cache, 65534, 65534);
      assert.equal(run(file).state, 'refused');
      chownSync(cache, 0, 0);
    }
    const linked = bundleIn(scratch().path);
    symlinkSync(cache, `${linked}.codecache`);
    assert.equal(run(linked).state, 'refused');
  });

  it('runs the program when V8 rejects a corrupt cache', () => {
    const dir = scratch();
    const file = bundleIn(dir.path);
    run(file, { CDH_CODE_CACHE_WRITE: '1' });
    const cache = readFileSync(`${file}.codecache`);
    const header = cache.indexOf(0x0a) + 1;
    cache.fill(0x5a, header);
    writeFileSync(`${file}.codecache`, cache);
    assert.equal(run(file).state, 'rejected');
  });

  it('refuses to lay out a program holding the escape character', () => {
    assert.throws(() => layOutBundle('var x = "\u0001";'), /U\+0001/);
  });
});
