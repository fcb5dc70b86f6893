import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadConfig, resolveConfig } from '../../../src/config/load';
import { defaultConfig } from '../../../src/config/types';
import { PACKAGE_ROOT } from '../../../src/package-info';

// smol-toml's type declarations are ESM-only; its CommonJS build is what runs here.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { parse: parseToml } = require('smol-toml') as { parse(text: string): Record<string, unknown> };

const EXAMPLE_TOML = join(PACKAGE_ROOT, 'deploy/config/cdh.toml');
const EXAMPLE_JSON = join(PACKAGE_ROOT, 'deploy/config/cdh.json');

/** Upstream keys the loader accepts that have no CdhConfig field (read and ignored). */
const ACCEPTED_WITHOUT_EFFECT: string[] = [];
/** Optional tables with no default (the example documents them in comments). */
const OPTIONAL_TABLES = new Set<string>([]);

function snakeCase(name: string): string {
  return name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

/** Dotted snake_case paths of every setting: the leaves of the defaults (arrays are leaves). */
function settingPaths(value: unknown, prefix = ''): string[] {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return [prefix];
  return Object.entries(value).flatMap(([key, child]) =>
    settingPaths(child, prefix === '' ? snakeCase(key) : `${prefix}.${snakeCase(key)}`),
  );
}

function lookup(raw: Record<string, unknown>, path: string): unknown {
  let node: unknown = raw;
  for (const part of path.split('.')) {
    if (typeof node !== 'object' || node === null || !(part in node)) return undefined;
    node = (node as Record<string, unknown>)[part];
  }
  return node;
}

/** The file's own text parsed, without the loader (to see which keys it writes). */
function rawFile(path: string): Record<string, unknown> {
  const text = readFileSync(path, 'utf8');
  const parsed = path.endsWith('.json') ? (JSON.parse(text) as unknown) : parseToml(text);
  return JSON.parse(JSON.stringify(parsed)) as Record<string, unknown>;
}

for (const file of [EXAMPLE_TOML, EXAMPLE_JSON]) {
  const name = file.slice(PACKAGE_ROOT.length + 1);

  test(`${name} is accepted by the loader, without warnings`, () => {
    const { warnings } = loadConfig(file, {});
    assert.deepEqual(warnings, []);
  });

  test(`${name} sets every key the configuration has`, () => {
    const raw = rawFile(file);
    const expected = [...settingPaths(defaultConfig()), ...ACCEPTED_WITHOUT_EFFECT].filter(
      (path) => !OPTIONAL_TABLES.has(path),
    );
    const missing = expected.filter((path) => lookup(raw, path) === undefined);
    assert.deepEqual(missing, [], `keys missing from ${name}`);
  });

  test(`${name} holds the defaults, so it runs as is`, () => {
    assert.deepEqual(loadConfig(file, {}).config, defaultConfig());
  });
}

test('the commented-out [[credentials]] example of the TOML file is valid once uncommented', () => {
  const uncommented = readFileSync(EXAMPLE_TOML, 'utf8')
    .split('\n')
    .filter((line) => /^# (\[\[credentials\]\]|resource_uri = .*|path = .*)$/.test(line))
    .map((line) => line.slice(2))
    .join('\n');
  const raw = parseToml(uncommented);
  const { config } = resolveConfig(raw, {});
  assert.ok(config.credentials.length >= 1);
  for (const { resourceUri, path } of config.credentials) {
    assert.match(resourceUri, /^kbs:\/\/\/[^/]+\/[^/]+\/[^/]+$/);
    assert.ok(path.startsWith(`${config.credentialsRoot}/`), `${path} lies under credentials_root`);
  }
});

test('the JSON example holds exactly the settings of the TOML example', () => {
  assert.deepEqual(rawFile(EXAMPLE_JSON), rawFile(EXAMPLE_TOML));
  assert.deepEqual(loadConfig(EXAMPLE_JSON, {}).config, loadConfig(EXAMPLE_TOML, {}).config);
});

test('the TOML example documents the upstream [image] table', () => {
  assert.match(readFileSync(EXAMPLE_TOML, 'utf8'), /^\[image\]$/m);
});
