import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { status as GrpcStatus, type ServiceError } from '@grpc/grpc-js';
import { CdhClient } from '../../src/client/cdh-client';
import { defaultConfig, type CdhConfig } from '../../src/config/types';
import { ERROR_CATALOGUE } from '../../src/errors';
import { createLogger } from '../../src/log';
import { PACKAGE_ROOT } from '../../src/package-info';
import { aliyunProvider } from '../../src/providers/aliyun';
import { startDaemon, type DaemonHandle } from '../../src/app/daemon';
import { MAX_STATUS_MESSAGE_CHARS } from '../../src/server/status';
import { writeClientKeyCredentials } from '../../src/emulators/aliyun/client-key-files';
import { DkmsEmulator } from '../../src/emulators/aliyun/dkms-gateway';
import { snapshotTree, spyOnFileWrites } from '../support/fs-write-spy';
import {
  CORPUS_PLAINTEXT,
  CORPUS_RELATIVE_PATH,
  generateHostileCorpus,
  hostileMasterKey,
  HOSTILE_ENVIRONMENT,
  serializeCorpus,
  type CorpusMode,
  type HostileCase,
  type HostileCorpus,
} from '../support/hostile-corpus';
import { upstreamJwk } from '../support/sealed-fixtures';
import { TestKms } from '../support/test-provider';

/*
 * The hostile-input corpus (test/fixtures/hostile/corpus.json) against two in-process daemons on
 * real sockets, one checking signatures and one skipping verification, with the test KMS and
 * the real aliyun provider (client_key against the gateway emulator). Every case must get its
 * status and catalogue code, no case may crash the daemon or make it write a file, and the
 * daemons must still serve afterwards.
 */

const env = HOSTILE_ENVIRONMENT;
const corpusText = readFileSync(join(PACKAGE_ROOT, CORPUS_RELATIVE_PATH), 'utf8');
const corpus = JSON.parse(corpusText) as HostileCorpus;

function inputOf(c: HostileCase): Buffer {
  if (c.input_base64 !== undefined) return Buffer.from(c.input_base64, 'base64');
  return Buffer.from(c.input_utf8 ?? '', 'utf8');
}

interface World {
  readonly root: string;
  readonly emulator: DkmsEmulator;
  readonly daemons: Record<CorpusMode, { handle: DaemonHandle; client: CdhClient }>;
  readonly logLines: string[];
}

async function setUp(): Promise<World> {
  const root = mkdtempSync(join(tmpdir(), 'cdh-hostile-'));
  const keys = join(root, 'keys');
  const outside = join(root, 'outside');
  const credentials = join(root, 'credentials');
  for (const dir of [keys, outside, credentials, join(root, 'run')]) mkdirSync(dir);
  const { d: _private, ...publicJwk } = upstreamJwk('test-key.json');
  writeFileSync(join(keys, 'signer.json'), JSON.stringify(publicJwk));
  writeFileSync(join(keys, 'private-signer.json'), JSON.stringify(upstreamJwk('test-key.json')));
  writeFileSync(join(keys, 'not-a-key.json'), 'this is not a JWK');
  mkdirSync(join(keys, 'dir.json'));
  writeFileSync(join(outside, 'signer.json'), JSON.stringify(publicJwk));
  symlinkSync('../outside/signer.json', join(keys, 'escape-link.json'));
  symlinkSync('/dev/zero', join(keys, 'zero-link.json'));

  const emulator = await DkmsEmulator.start({ instanceId: env.aliyun.kms_instance_id });
  const clientKey = await writeClientKeyCredentials({
    dir: credentials,
    caPem: emulator.caPem,
    kmsInstanceId: env.aliyun.kms_instance_id,
    clientKeyId: env.aliyun.client_key_id,
  });
  emulator.addClientKey(clientKey.clientKeyId, clientKey.certificatePem);
  emulator.addKey(env.aliyun.key_id);
  for (const [name, value] of Object.entries(env.aliyun.secrets))
    emulator.putSecretVersion(name, 'v1', value);

  const kms = new TestKms({ name: env.test_provider.name, secrets: env.test_provider.secrets });
  kms.addKey(env.test_provider.key_id, hostileMasterKey());

  const logLines: string[] = [];
  const logger = createLogger('trace', { write: (line: string) => logLines.push(line) });
  const start = async (mode: CorpusMode): Promise<{ handle: DaemonHandle; client: CdhClient }> => {
    const config: CdhConfig = defaultConfig();
    config.socket = `unix://${join(root, 'run', `${mode}.sock`)}`;
    config.skipSealedSecretVerification = mode === 'skip';
    config.maxMessageBytes = env.max_message_bytes;
    config.sealedSecret.signingKeyDir = keys;
    config.aliyun.credentialDir = credentials;
    config.aliyun.dkmsConnectTo = emulator.connectTo;
    config.aliyun.openapiEndpoint = '127.0.0.1:9';
    config.aliyun.metadataEndpoint = 'http://127.0.0.1:9';
    config.aliyun.requestTimeoutMs = 5000;
    const handle = await startDaemon(config, {
      providers: [kms.factory, aliyunProvider],
      logger: logger.child({ daemon: mode }),
    });
    return { handle, client: new CdhClient(handle.address, { timeoutMs: 10_000 }) };
  };
  return {
    root,
    emulator,
    logLines,
    daemons: { verified: await start('verified'), skip: await start('skip') },
  };
}

interface Answer {
  readonly status: string;
  readonly details: string;
  readonly plaintext?: Buffer;
}

async function send(client: CdhClient, input: Buffer): Promise<Answer> {
  try {
    const plaintext = await client.unsealSecret(input);
    return { status: 'OK', details: '', plaintext };
  } catch (error) {
    const failure = error as ServiceError;
    return { status: GrpcStatus[failure.code] ?? String(failure.code), details: failure.details ?? '' };
  }
}

/** What is wrong with the answer to `c`, or undefined. */
function mismatch(c: HostileCase, answer: Answer): string | undefined {
  if (answer.status !== c.expected) return `got ${answer.status} (${answer.details.slice(0, 300)})`;
  if (c.expected === 'OK') {
    const expected =
      c.expected_plaintext_base64 !== undefined
        ? Buffer.from(c.expected_plaintext_base64, 'base64')
        : Buffer.from(c.expected_plaintext ?? '', 'utf8');
    return answer.plaintext?.equals(expected) ? undefined : 'wrong plaintext';
  }
  if (c.expected_code && !answer.details.startsWith(`${c.expected_code}:`))
    return `code: ${answer.details.slice(0, 300)}`;
  if (answer.details.length > MAX_STATUS_MESSAGE_CHARS) return 'status message too long';
  if (answer.details.includes(CORPUS_PLAINTEXT)) return 'plaintext in the status message';
  return undefined;
}

describe('the hostile-input corpus', () => {
  let world: World;

  before(async () => {
    world = await setUp();
  });
  after(async () => {
    for (const { handle, client } of Object.values(world.daemons)) {
      client.close();
      await handle.stop(1000);
    }
    await world.emulator.close();
    rmSync(world.root, { recursive: true, force: true });
  });

  // `npm run corpus:update` (CDH_UPDATE_CORPUS=1) rewrites the committed file from the generator.
  test('the committed corpus is exactly what the generator produces (deterministic, RFC 6979 signatures)', (t) => {
    const generated = serializeCorpus(generateHostileCorpus());
    if (process.env['CDH_UPDATE_CORPUS'] === '1') {
      writeFileSync(join(PACKAGE_ROOT, CORPUS_RELATIVE_PATH), generated);
      t.diagnostic(`${CORPUS_RELATIVE_PATH} rewritten; run the suite again to test the new cases`);
      return;
    }
    assert.equal(generated, corpusText);
  });

  test('has at least 200 cases covering every category, each with a catalogued expectation', () => {
    assert.ok(corpus.cases.length >= 200, `${corpus.cases.length} cases`);
    const categories = new Set(corpus.cases.map((c) => c.category));
    for (const category of [
      'structure',
      'truncated',
      'oversized',
      'nesting',
      'huge json',
      'huge numbers',
      'non-utf8',
      'duplicate keys',
      'prototype keys',
      'base64',
      'iv length',
      'data key',
      'kid traversal',
      'id traversal',
    ]) {
      assert.ok(categories.has(category), `category ${category}`);
    }
    const codes = new Set(Object.keys(ERROR_CATALOGUE));
    for (const c of corpus.cases) {
      assert.ok((c.input_utf8 === undefined) !== (c.input_base64 === undefined), c.name);
      if (c.expected_code) {
        assert.ok(codes.has(c.expected_code), `${c.name}: ${c.expected_code}`);
        assert.equal(
          ERROR_CATALOGUE[c.expected_code as keyof typeof ERROR_CATALOGUE].status,
          c.expected,
          c.name,
        );
      }
    }
  });

  test('every case gets its status; none crashes the daemon or writes a file', async () => {
    const before = snapshotTree(world.root);
    const rssBefore = process.memoryUsage().rss;
    let rssPeak = rssBefore;
    const spy = spyOnFileWrites();
    const failures: string[] = [];
    try {
      for (const c of corpus.cases) {
        const answer = await send(world.daemons[c.mode].client, inputOf(c));
        const problem = mismatch(c, answer);
        if (problem !== undefined) failures.push(`${c.name}: ${problem}`);
        rssPeak = Math.max(rssPeak, process.memoryUsage().rss);
      }
    } finally {
      spy.restore();
    }
    assert.deepEqual(failures, [], `${failures.length} of ${corpus.cases.length} cases failed`);
    // No case may make the daemon balloon (a token_path of /dev/zero once read ~600 MB per call).
    const growthMb = (rssPeak - rssBefore) / 2 ** 20;
    assert.ok(growthMb < 150, `resident memory grew by ${growthMb.toFixed(0)} MB during the corpus`);
    assert.deepEqual(spy.calls, [], 'no file was created, changed or removed');
    assert.deepEqual(snapshotTree(world.root), before, 'the daemon dirs are unchanged');
  });

  test('both daemons still serve, and nothing secret or unexpected was logged', async () => {
    const control = corpus.cases.filter((c) => c.category === 'control' && c.expected === 'OK');
    for (const c of control) {
      const answer = await send(world.daemons[c.mode].client, inputOf(c));
      assert.equal(mismatch(c, answer), undefined, c.name);
    }
    for (const { client } of Object.values(world.daemons)) assert.equal(await client.check(''), 'SERVING');
    const log = world.logLines.join('');
    assert.doesNotMatch(log, /"level":"(error|fatal)"/, 'no INTERNAL failure');
    for (const secret of [
      CORPUS_PLAINTEXT,
      ...Object.values(env.test_provider.secrets),
      ...Object.values(env.aliyun.secrets),
    ])
      assert.ok(!log.includes(secret), 'a secret value in the log');
  });
});
