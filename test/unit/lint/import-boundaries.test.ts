import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ESLint } from 'eslint';
import { PACKAGE_ROOT } from '../../../src/package-info';

/** The project's ESLint config applied to `source` as if it were the file at `filePath`. */
async function restrictedImports(filePath: string, source: string): Promise<string[]> {
  const eslint = new ESLint({ cwd: PACKAGE_ROOT });
  const [result] = await eslint.lintText(source, { filePath });
  return (result?.messages ?? []).filter((m) => m.ruleId === 'no-restricted-imports').map((m) => m.message);
}

const cases: ReadonlyArray<{ file: string; source: string; refused: RegExp | undefined }> = [
  {
    file: 'src/providers/boundary-probe.ts',
    source: "import { DkmsEmulator } from '../emulators/aliyun/dkms-gateway';\nvoid DkmsEmulator;\n",
    refused: /must not import src\/emulators/,
  },
  {
    file: 'src/server/boundary-probe.ts',
    source: "import { spawnDaemon } from '../devtools/daemon';\nvoid spawnDaemon;\n",
    refused: /must not import src\/emulators\/ or src\/devtools/,
  },
  {
    file: 'src/emulators/boundary-probe.ts',
    source: "import { upstreamJwk } from '../../test/support/sealed-fixtures';\nvoid upstreamJwk;\n",
    refused: /src\/ must not import test\//,
  },
  {
    file: 'src/secret/boundary-probe.ts',
    source: "import { perCallFactory } from '../../bench/per-call-providers';\nvoid perCallFactory;\n",
    refused: /src\/ must not import test\/, bench\//,
  },
  {
    file: 'bench/boundary-probe.ts',
    source: "import { childEnv } from '../test/support/cli';\nvoid childEnv;\n",
    refused: /only test\/ may import test\//,
  },
  {
    file: 'src/bin/cdh-emulator.ts',
    source: "import { EMULATOR_COMMANDS } from '../emulators/commands';\nvoid EMULATOR_COMMANDS;\n",
    refused: undefined,
  },
  {
    file: 'scripts/boundary-probe.ts',
    source: "import { EmulatorProcess } from '../src/devtools/emulator-process';\nvoid EmulatorProcess;\n",
    refused: undefined,
  },
];

for (const { file, source, refused } of cases) {
  test(`import boundaries: ${file} ${refused ? 'may not' : 'may'} import ${/'([^']+)'/.exec(source)?.[1]}`, async () => {
    const messages = await restrictedImports(file, source);
    if (refused === undefined) assert.deepEqual(messages, []);
    else {
      assert.equal(messages.length, 1, JSON.stringify(messages));
      assert.match(messages[0] as string, refused);
    }
  });
}
