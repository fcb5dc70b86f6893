/** The daemon-process helpers live in src/devtools/daemon.ts (shared with bench/ and scripts/). */
export * from '../../src/devtools/daemon';
