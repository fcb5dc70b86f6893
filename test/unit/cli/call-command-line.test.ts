import assert from 'node:assert/strict';
import { test } from 'node:test';
import { readCallCommandLine, UsageError, type CallCommandSpec } from '../../../src/cli/args';

const SPEC: CallCommandSpec = {
  commands: ['unseal-secret', 'get-resource', 'pull-image'],
  options: { socket: { type: 'string' }, ttrpc: { type: 'boolean' }, config: { type: 'string', short: 'c' } },
  defaultTimeoutMs: 30_000,
};

test('a command with its flags, the program options and the default deadlines', () => {
  const line = readCallCommandLine(['--socket', 'unix:///s', 'unseal-secret', '--secret-path', 'f'], SPEC);
  assert.equal(line.command, 'unseal-secret');
  assert.equal(line.need('secret-path'), 'f');
  assert.equal(line.option('socket'), 'unix:///s');
  assert.equal(line.flag('ttrpc'), false);
  assert.equal(line.timeoutMs, 30_000);
  const pull = readCallCommandLine(['pull-image', '--image-url', 'r', '--bundle-path', 'd', '-c', 'x'], SPEC);
  assert.equal(pull.timeoutMs, 1_200_000, 'a pull has the Kata agent deadline');
  assert.equal(pull.option('config'), 'x');
  assert.equal(
    readCallCommandLine(['--timeout-ms', '5', '--ttrpc', 'get-resource', '--resource-uri', 'u'], SPEC)
      .timeoutMs,
    5,
  );
});

test('--help and --version need no command', () => {
  assert.equal(readCallCommandLine(['--help'], SPEC).help, true);
  assert.equal(readCallCommandLine(['-V'], SPEC).version, true);
});

test('usage errors say what is wrong', () => {
  for (const [args, message] of [
    [[], /a command is required: unseal-secret, get-resource, pull-image/],
    [['health'], /unknown command "health"/],
    [['get-resource', 'extra'], /unexpected argument "extra"/],
    [['unseal-secret'], /unseal-secret needs --secret-path FILE/],
    [['pull-image', '--image-url', 'r'], /pull-image needs --bundle-path DIR/],
    [
      ['--timeout-ms', '0', 'get-resource', '--resource-uri', 'u'],
      /--timeout-ms must be a positive whole number/,
    ],
    [['--timeout-ms', '1.5', 'get-resource', '--resource-uri', 'u'], /positive whole number/],
    [['--nope', 'get-resource'], /--nope.*see --help/],
  ] as const) {
    assert.throws(
      () => readCallCommandLine(args, SPEC),
      (error: unknown) => {
        assert.ok(error instanceof UsageError);
        assert.match(error.message, message);
        return true;
      },
    );
  }
});
