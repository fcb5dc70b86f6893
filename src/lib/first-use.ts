/**
 * A value built at its first use and kept: for what start-up should not pay for (a schema
 * parsed only by calls, a generated proto file or a package that only calls need).
 */
export function atFirstUse<T>(build: () => T): () => T {
  let built: { readonly value: T } | undefined;
  return () => (built ??= { value: build() }).value;
}
