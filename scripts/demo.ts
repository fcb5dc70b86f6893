/**
 * `npm run demo`: the daemon on a temp socket, checked with cdh-tool. (Grows into the full
 * seal/unseal walkthrough once the CLI lands.)
 */
import { execFileSync } from 'node:child_process';
import { CDH_TOOL_BIN, spawnDaemon } from '../test/support/daemon';

async function main(): Promise<void> {
  console.log('1. starting confidential-data-hub on a temp socket');
  const daemon = await spawnDaemon();
  try {
    console.log(`   listening on ${daemon.target}`);
    console.log('2. cdh-tool health');
    const status = execFileSync(process.execPath, [CDH_TOOL_BIN, '--socket', daemon.target, 'health'], {
      encoding: 'utf8',
    });
    console.log(`   ${status.trim()}`);
  } finally {
    console.log('3. stopping the daemon (SIGTERM)');
    const code = await daemon.stop();
    daemon.cleanup();
    console.log(`   exit code ${code}`);
  }
}

void main();
