// The one value import of zod (eslint.config.mjs sends every other module here).
// eslint-disable-next-line no-restricted-imports
import { z } from 'zod';

/**
 * zod for the whole program, JIT off. zod 4 compiles a parser for each object schema with
 * `new Function` at its first parse (and probes `new Function` once to see whether it may):
 * that pays for a schema parsed thousands of times, not for a daemon that parses its config
 * once and a sealed secret's few small objects per call; and eval-like code generation is
 * nothing a TEE daemon should need. Measured (median of 9): the daemon's first parse of its
 * config takes 12 ms with the JIT, 6 ms without; a sealed-secret payload check 9 µs instead
 * of 5 once warm, paid only when the payload memo misses. zod reads the flag when a schema is
 * built, so it is set here, before any module builds one: every module takes `z` from here
 * (eslint.config.mjs; type-only imports of 'zod' are fine).
 */
z.config({ jitless: true });

export { z };
