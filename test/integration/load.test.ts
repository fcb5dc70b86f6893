import assert from 'node:assert/strict';
import { test } from 'node:test';
import { describeLoadReport, runLoadWithFaults } from '../support/load-run';

/*
 * Load with faults: unseals at concurrency 64, valid and invalid mixed, the gateway failing 5 %
 * of its calls. CI runs CDH_LOAD_COUNT (default 1,500); `npm run load` runs 10,000 and prints the figures.
 */

const TOTAL = Number(process.env['CDH_LOAD_COUNT'] ?? 1500);

test(`${TOTAL} unseals at concurrency 64 with 5 % KMS failures: no crash, no wrong plaintext, every failure catalogued, memory stable`, async (t) => {
  const report = await runLoadWithFaults({ total: TOTAL });
  for (const line of describeLoadReport(report)) t.diagnostic(line);
  const summary = JSON.stringify(report);
  assert.equal(report.daemonAlive, true, summary);
  assert.equal(report.exitCode, 0, summary);
  assert.equal(report.wrongPlaintexts, 0, summary);
  assert.deepEqual(report.uncatalogued, [], summary);
  assert.deepEqual(report.unexpected, [], summary);
  assert.ok(report.ok > TOTAL * 0.5, summary);
  assert.ok(report.emulator.injectedFailures > 0, `the emulator injected failures: ${summary}`);
  // Stable: after warm-up the resident set grows by less than 60 MB.
  const growthMb = (report.memory.rssEndKb - report.memory.rssAfterWarmupKb) / 1024;
  assert.ok(growthMb < 60, `RSS grew ${growthMb.toFixed(1)} MB after warm-up: ${summary}`);
});
