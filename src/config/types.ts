import { configSchema, type CdhConfig } from './schema';

export {
  DEFAULT_AA_SOCKET,
  DEFAULT_SOCKET,
  LOG_LEVELS,
  type AliyunConfig,
  type CdhConfig,
  type ImageSettings,
  type LogLevel,
} from './schema';

/** The built-in configuration: the schema's defaults. */
export function defaultConfig(): CdhConfig {
  return configSchema.parse({});
}
