/** A configuration problem found at start-up; `key` names the offending key (dotted path). */
export class ConfigError extends Error {
  constructor(
    readonly key: string,
    message: string,
  ) {
    super(key ? `config key "${key}": ${message}` : message);
    this.name = 'ConfigError';
  }
}
