/** The registry and OCI image helpers live in src/devtools/ (shared with bench/). */
export * from '../../src/devtools/registry';
