/**
 * `npm run demo -- --kbs`: the real guest path, offline, each step printed.
 *   1. `cdh-emulator aliyun`: the KMS gateway emulator; the user's client key files
 *   2. a signing key pair (`secret keygen`)
 *   3. the Key Broker Service holds the client key files and the public signing key:
 *      `cdh-emulator kbs` (HTTPS, its own CA) serving them from a directory
 *   4. `cdh-emulator aa`: an attestation agent that attests to it (sample TEE)
 *   5. the daemon with cc_kbc: [[credentials]] fetch the client key files through the KBS
 *   6. a secret sealed with `secret seal ... envelope ... ali ...`, signed under a kbs:/// kid
 *   7. unsealed through the socket with `cdh-tool unseal-secret`
 *   8. the pod's REST front, `api-server-rest`, in front of the daemon and the AA: a workload's
 *      `curl` of a resource the KBS delivered, `/info` and `/aa/token`
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as http from 'node:http';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { childEnv, REST_BIN, spawnDaemon, tempDir } from '../src/devtools/daemon';
import { EmulatorProcess } from '../src/devtools/emulator-process';
import { keygen, sealWithAliyun, startAliyunEmulator, unsealThroughSocket } from './demo-steps';

const KID = 'kbs:///default/signing-key/sealed-secret';
const KBS_HOST = 'kbs.demo.test';
const POD_RESOURCE = 'default/key/pod-demo';
const POD_RESOURCE_TEXT = 'workload key for the pod: 7f3c9a';
export async function runKbsDemo(): Promise<void> {
  const work = tempDir('cdh-demo-kbs-');
  console.log(`Working in ${work.path}\n`);
  const emulators: EmulatorProcess[] = [];
  let daemon: Awaited<ReturnType<typeof spawnDaemon>> | undefined;
  let rest: ChildProcess | undefined;
  try {
    console.log('1. Alibaba Cloud KMS gateway emulator; the client key files stay on the user side');
    const userDir = join(work.path, 'user/kms-credential');
    const { emulator: aliyun, kms } = await startAliyunEmulator(userDir);
    emulators.push(aliyun);
    console.log(`   KMS key ${kms.key_id} on instance ${kms.kms_instance_id}\n`);

    console.log('2. A signing key for sealed secrets');
    const sealerDir = join(work.path, 'user/sealer');
    const kid = await keygen('sealed-secret', sealerDir);
    console.log(`   the public half becomes the KBS resource ${KID}\n`);

    console.log('3. The KBS holds what the guest needs (client key, password, instance CA, signing key)');
    const resources = join(work.path, 'kbs/resources');
    const put = (name: string, file: string): void => {
      const target = join(resources, name);
      mkdirSync(join(target, '..'), { recursive: true });
      copyFileSync(file, target);
      console.log(`   kbs:///${name}`);
    };
    for (const file of Object.values(kms.credential_files)) put(`default/aliyun/${basename(file)}`, file);
    put('default/signing-key/sealed-secret', join(sealerDir, `${kid}-public.json`));
    const podResourceFile = join(work.path, 'user/pod-demo');
    writeFileSync(podResourceFile, POD_RESOURCE_TEXT);
    put(POD_RESOURCE, podResourceFile);
    console.log(`   $ cdh-emulator kbs --resources ${resources} --https ${KBS_HOST}`);
    const kbsProcess = await EmulatorProcess.start('kbs', ['--resources', resources, '--https', KBS_HOST]);
    emulators.push(kbsProcess);
    const kbs = kbsProcess.description as { url: string; kbs_cert: string; connect_to: string };
    const kbsCertFile = join(work.path, 'kbs/ca.pem');
    writeFileSync(kbsCertFile, kbs.kbs_cert);
    console.log(`   ${kbs.url} (served at ${kbs.connect_to}, certificate from the emulator's CA)\n`);

    console.log('4. The attestation agent, attesting to the KBS with sample evidence');
    const aaSocket = `unix://${join(work.path, 'aa.sock')}`;
    const aaArgs = [
      '--socket',
      aaSocket,
      '--kbs-url',
      kbs.url,
      '--kbs-cert',
      kbsCertFile,
      '--connect-to',
      kbs.connect_to,
    ];
    console.log(`   $ cdh-emulator aa ${aaArgs.join(' ')}`);
    const aa = await EmulatorProcess.start('aa', aaArgs);
    emulators.push(aa);
    console.log(`   GetToken on ${aaSocket}\n`);

    console.log('5. The daemon with cc_kbc; [[credentials]] come from the KBS before it serves');
    const root = join(work.path, 'guest/cdh');
    const credentialDir = join(root, 'kbs/kms-credential/aliyun');
    daemon = await spawnDaemon({
      dir: work.path,
      config: {
        aa: { aa_socket: aaSocket },
        kbc: { name: 'cc_kbc', url: kbs.url, kbs_cert: kbs.kbs_cert },
        credentials_root: root,
        credentials: Object.values(kms.credential_files).map((file) => ({
          resource_uri: `kbs:///default/aliyun/${basename(file)}`,
          path: join(credentialDir, basename(file)),
        })),
        aliyun: { ...kms.daemon_config.aliyun, credential_dir: credentialDir },
      },
      env: { CDH_KBS_CONNECT_TO: kbs.connect_to },
    });
    for (const line of daemon.logLines) {
      const entry = JSON.parse(line) as Record<string, unknown>;
      if (entry['msg'] === 'credential provisioned')
        console.log(`   ${String(entry['resourceUri'])} -> ${String(entry['path'])}`);
    }
    console.log(`   serving on ${daemon.target}\n`);

    console.log(`6. Seal a secret, signed under the kid ${KID}`);
    const sealedFile = join(work.path, 'sealed_secret.txt');
    const privateJwk = join(sealerDir, `${kid}-private.json`);
    await sealWithAliyun(kms, { kid: KID, privateJwk }, join(work.path, 'user/plaintext'), sealedFile);
    console.log('');

    console.log('7. Unseal through the socket');
    await unsealThroughSocket(daemon.target, sealedFile);
    const paths = kms.credential_files;
    if (!readFileSync(join(credentialDir, basename(paths.clientKey))).equals(readFileSync(paths.clientKey)))
      throw new Error('the provisioned client key differs');
    const kbsStats = (await kbsProcess.stats())['kbs'] as Record<string, unknown>;
    const aaStats = (await aa.stats())['aa'] as Record<string, unknown>;
    console.log(
      `   KBS: ${String(kbsStats['attest'])} attestation(s), ${String(kbsStats['resourceRequests'])} resource request(s); AA: ${String(aaStats['getToken'])} GetToken\n`,
    );

    console.log(
      "8. The pod's REST front: api-server-rest in front of the daemon and the AA; a workload curls it",
    );
    const restArgs = [
      '-b',
      '127.0.0.1:0',
      '--features',
      'all',
      '--cdh_addr',
      daemon.target,
      '--aa_addr',
      aaSocket,
    ];
    console.log(`   $ api-server-rest ${restArgs.join(' ')}`);
    const started = await startRest(restArgs);
    rest = started.child;
    console.log(`   listening on ${started.url} (loopback only: the pod's network namespace)`);
    const resource = await curl(`${started.url}/cdh/resource/${POD_RESOURCE}`);
    console.log(`   ${resource.status}: ${resource.body.toString('utf8')}`);
    if (resource.status !== 200 || resource.body.toString('utf8') !== POD_RESOURCE_TEXT)
      throw new Error('the resource through the REST front differs from what the KBS holds');
    const info = await curl(`${started.url}/info`);
    console.log(`   ${info.status}: ${info.body.toString('utf8')}`);
    const token = await curl(`${started.url}/aa/token?token_type=kbs`);
    if (token.status !== 200) throw new Error(`/aa/token answered ${token.status}: ${token.body.toString()}`);
    console.log(`   ${token.status}: a token and TEE key of ${token.body.length} bytes (not shown)\n`);
  } finally {
    console.log('9. Clean up: stop the REST front, the daemon, the emulators, remove the temp dir');
    if (rest) {
      const exited = new Promise((resolve) => rest?.once('exit', resolve));
      rest.kill('SIGTERM');
      console.log(`   api-server-rest exit code ${String(await exited)}`);
    }
    if (daemon) console.log(`   daemon exit code ${await daemon.stop()}`);
    for (const emulator of emulators.reverse()) await emulator.close();
    work.cleanup();
  }
  console.log('\nDemo complete.');
}

/** Starts api-server-rest and waits for its "listening" line; its address. */
function startRest(args: readonly string[]): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, [REST_BIN, ...args], {
    env: childEnv(),
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((resolve, reject) => {
    let buffered = '';
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      buffered += chunk;
      const line = buffered.split('\n').find((l) => l.includes('"API server listening"'));
      if (line) resolve({ child, url: String((JSON.parse(line) as { address: string }).address) });
    });
    child.once('exit', (code) => reject(new Error(`api-server-rest exited (${code})`)));
  });
}

/** What `curl URL` shows: the status and the body. */
function curl(url: string): Promise<{ status: number; body: Buffer }> {
  console.log(`   $ curl ${url}`);
  return new Promise((resolve, reject) => {
    http
      .get(url, { agent: false }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
      })
      .on('error', reject);
  });
}
