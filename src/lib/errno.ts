/** The errno-style code of a Node error (`ENOENT`, `ECONNRESET`, …), or `fallback`. */
export function errnoCode(error: unknown, fallback = 'error'): string {
  const code = (error as NodeJS.ErrnoException | null | undefined)?.code;
  return typeof code === 'string' && code !== '' ? code : fallback;
}

/** True when a path (or one of its directories) does not exist. */
export function isMissingPath(error: unknown): boolean {
  const code = errnoCode(error, '');
  return code === 'ENOENT' || code === 'ENOTDIR';
}

/** What a failed file read means, to follow the file's name: `does not exist`, `is not readable (permission denied)`, … */
export function fileReadProblem(error: unknown): string {
  const code = errnoCode(error, '');
  switch (code) {
    case 'ENOENT':
      return 'does not exist';
    case 'EACCES':
    case 'EPERM':
      return 'is not readable (permission denied)';
    case 'EISDIR':
      return 'is not a regular file';
    default:
      return `could not be read${code ? ` (${code})` : ''}`;
  }
}
