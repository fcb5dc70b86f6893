import { aaCommand } from './aa/command';
import { aliyunCommand } from './aliyun/command';
import type { EmulatorCommand } from './command';
import { kbsCommand } from './kbs/command';

/** Every `cdh-emulator` subcommand: adding one is one file and one line here. */
export const EMULATOR_COMMANDS: readonly EmulatorCommand[] = [aliyunCommand, kbsCommand, aaCommand];
