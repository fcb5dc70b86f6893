import { readFileSync } from 'node:fs';
import { EmulatorUsageError, parseCommandArgs, type EmulatorCommand, type RunningEmulator } from '../command';
import { AaEmulator, TEE_KEY_TYPES, type TeeKeyType } from './server';

const HELP = `Options:
  --socket ADDR       unix:///path to listen on (required)
  --kbs-url URL       the KBS to attest to (required)
  --kbs-cert FILE     PEM trusted for an https KBS
  --connect-to H:P    dial this address for the KBS (keeps the URL's host name for TLS)
  --key-type TYPE     TEE key handed out with the token: ${TEE_KEY_TYPES.join(', ')} (default ec-p256)`;

const OPTIONS = {
  socket: { type: 'string' },
  'kbs-url': { type: 'string' },
  'kbs-cert': { type: 'string' },
  'connect-to': { type: 'string' },
  'key-type': { type: 'string' },
} as const;

/** `cdh-emulator aa`: an attestation agent (ttrpc) that attests to a KBS with sample evidence. */
export const aaCommand: EmulatorCommand = {
  name: 'aa',
  summary: 'an attestation agent (ttrpc GetToken: real sample-TEE attestation to a KBS)',
  help: HELP,
  async start(args): Promise<RunningEmulator> {
    const values = parseCommandArgs(args, OPTIONS);
    if (values.socket === undefined || values['kbs-url'] === undefined)
      throw new EmulatorUsageError('--socket and --kbs-url are required');
    const keyType = (values['key-type'] ?? 'ec-p256') as TeeKeyType;
    if (!TEE_KEY_TYPES.includes(keyType))
      throw new EmulatorUsageError(`--key-type is one of ${TEE_KEY_TYPES.join(', ')}`);
    let kbsCert: string | undefined;
    if (values['kbs-cert'] !== undefined) kbsCert = readFileSync(values['kbs-cert'], 'utf8');
    const aa = new AaEmulator({
      socket: values.socket,
      kbsUrl: values['kbs-url'],
      keyType,
      ...(kbsCert ? { kbsCert } : {}),
      ...(values['connect-to'] ? { kbsConnectTo: values['connect-to'] } : {}),
    });
    const socket = await aa.start();
    return {
      description: {
        emulator: 'aa',
        pid: process.pid,
        endpoints: { aa: socket },
        daemon_config: { aa: { aa_socket: socket } },
        env: { AA_SOCKET: socket },
      },
      stats: () => ({ aa: aa.counters }),
      async close() {
        await aa.close();
        aa.dispose();
      },
    };
  },
};
