import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { PACKAGE_ROOT } from '../../src/package-info';
import { runCli } from '../support/cli';

/** `npm run demo` is `npm run build && node dist/scripts/demo.js`: the second half, as CI runs it. */
const DEMO = join(PACKAGE_ROOT, 'dist/scripts/demo.js');

test('the demo runs offline, prints the recovered plaintext, cleans up and exits 0', async () => {
  const result = await runCli(DEMO, [], { timeoutMs: 60_000 });
  assert.equal(result.code, 0, `demo failed:\n${result.stdout}\n${result.stderr}`);
  assert.equal(result.stderr, '');
  const lines = result.stdout.split('\n');
  assert.ok(lines.includes('   plaintext: db-password: correct horse battery staple'), result.stdout);
  assert.ok(lines.includes('Demo complete.'));
  assert.ok(lines.includes('   daemon exit code 0'));
  // Each step is printed, the seed's seal command line among them.
  for (const step of ['1. ', '2. ', '3. ', '4. ', '5. ', '6. '])
    assert.ok(
      lines.some((line) => line.startsWith(step)),
      `step ${step}missing`,
    );
  assert.ok(
    lines.some((line) =>
      /\$ secret seal .*--file-path \S+ envelope --key-id \S+ ali --password-file-path/.test(line),
    ),
  );
  // Everything was in one temp dir, now gone.
  const workDir = /^Working in (\S+)$/m.exec(result.stdout)?.[1];
  assert.ok(workDir, 'the demo names its working dir');
  assert.equal(existsSync(workDir), false, 'the demo left its temp dir behind');
});

test('the --kbs demo unseals through cc_kbc: credentials and the signing key come from the KBS emulator', async () => {
  const result = await runCli(DEMO, ['--kbs'], { timeoutMs: 90_000 });
  assert.equal(result.code, 0, `demo failed:\n${result.stdout}\n${result.stderr}`);
  const lines = result.stdout.split('\n');
  assert.ok(lines.includes('   plaintext: db-password: correct horse battery staple'), result.stdout);
  assert.ok(lines.includes('   daemon exit code 0'));
  // The pod's REST front: the resource the KBS delivered, by curl.
  assert.ok(lines.includes('   200: workload key for the pod: 7f3c9a'), result.stdout);
  assert.ok(lines.includes('   api-server-rest exit code 0'), result.stdout);
  assert.ok(
    lines.some((line) =>
      /^ {3}kbs:\/\/\/default\/aliyun\/clientKey_\S+ -> \S+\/kbs\/kms-credential\/aliyun\//.test(line),
    ),
  );
  assert.ok(
    lines.some((line) => /KBS: 1 attestation\(s\)/.test(line)),
    result.stdout,
  );
  const workDir = /^Working in (\S+)$/m.exec(result.stdout)?.[1];
  assert.ok(workDir && !existsSync(workDir), 'the demo removed its temp dir');
});
