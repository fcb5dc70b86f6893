/**
 * Lays out a bundle file as src/bundle/program-loader.ts expects it: the shebang, the loader,
 * then the program (esbuild's output) inside a comment that V8 skips unparsed, so that
 * the loader can compile it with V8's code cache (deploy/prime-code-cache.sh makes the cache).
 */
import { createHash } from 'node:crypto';
import { CODE_CACHE_STATE_KEY } from '../src/bundle/code-cache-state';
import {
  bundledProgramSource,
  compileBundledProgram,
  readProgramCodeCache,
  runBundledProgram,
  type ProgramLayout,
} from '../src/bundle/program-loader';

const BEGIN = '\n/*@cdh-program\n';
const END = '\n@cdh-program*/\n';
/** "*\/" inside the comment; U+0001 is checked to be absent from the program. */
const ESCAPED_CLOSE = '*\u0001/';

export function layOutBundle(esbuildOutput: string): string {
  const code = esbuildOutput.startsWith('#!')
    ? esbuildOutput.slice(esbuildOutput.indexOf('\n') + 1)
    : esbuildOutput;
  if (code.includes('\u0001'))
    throw new Error('the program contains U+0001, the comment escape: pick another');
  // The program as a function of the module's variables, as Node itself would wrap it.
  const program = `(function (exports, require, module, __filename, __dirname) {${code}\n})`;
  const functions = [
    // Not strict: arguments.callee is the module wrapper, whose source is this file's text.
    ...[readProgramCodeCache, bundledProgramSource, compileBundledProgram, runBundledProgram].map(String),
    '',
  ].join('\n');
  const head = (lineOffset: number): string => {
    const layout: ProgramLayout = {
      begin: BEGIN,
      end: END,
      escapedClose: ESCAPED_CLOSE,
      lineOffset,
      cacheHeader: `CDHCC1 ${createHash('sha256').update(program).digest('hex').slice(0, 32)}\n`,
      stateKey: CODE_CACHE_STATE_KEY,
    };
    return `#!/usr/bin/env node\n${functions}runBundledProgram(arguments.callee.toString(), __filename, ${JSON.stringify(layout)}, require, module);${BEGIN}`;
  };
  // The program's first line is the line after the head's last newline (0-based: their count).
  const lineOffset = head(0).split('\n').length - 1;
  return `${head(lineOffset)}${program.split('*/').join(ESCAPED_CLOSE)}${END}`;
}
