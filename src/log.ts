import pino, { type Logger } from 'pino';
import type { LogLevel } from './config/types';

/**
 * Paths pino censors wherever they appear in a log object. Code never logs secret
 * material on purpose; this is the second line of defence.
 */
export const REDACT_PATHS: readonly string[] = [
  'plaintext',
  'secret',
  'dek',
  'dataKey',
  'password',
  'privateKey',
  'token',
  'securityToken',
  'accessKeySecret',
  'authorization',
  '*.plaintext',
  '*.secret',
  '*.dek',
  '*.dataKey',
  '*.password',
  '*.privateKey',
  '*.token',
  '*.securityToken',
  '*.accessKeySecret',
  '*.authorization',
  'headers.authorization',
  'req.headers.authorization',
];

export function createLogger(level: LogLevel, destination?: pino.DestinationStream): Logger {
  const options: pino.LoggerOptions = {
    level,
    base: { pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths: [...REDACT_PATHS], censor: '[redacted]' },
    formatters: { level: (label) => ({ level: label }) },
  };
  return destination ? pino(options, destination) : pino(options, pino.destination({ fd: 1, sync: false }));
}

/** A logger that drops everything (unit tests, the CLI). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
