/**
 * The cutover log: one timestamped file per cutover in the state directory,
 * and the stable symlink `.pgtwin_migrate_cutover.log` to the latest one
 * (`tail -f` it to watch a cutover). The state directory belongs to the
 * PostgreSQL OS user, so the file is opened through ../../ocf/safe-file:
 * never through a link, and kept only when it is the agent's own; a name
 * someone else holds (the timestamp is predictable) gives way to a fresh one.
 */
import { randomBytes } from 'node:crypto';
import { join, basename } from 'node:path';
import { log, type Level } from '../../ocf/log';
import { appendTo, openAppend, replaceSymlink, UnsafePathError } from '../../ocf/safe-file';

export const CUTOVER_LOG_LINK = '.pgtwin_migrate_cutover.log';

function stamp(d = new Date()): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}${p(d.getMonth() + 1)}${p(d.getDate())}-${p(d.getHours())}${p(d.getMinutes())}${p(d.getSeconds())}`;
}

export interface CutoverLog {
  readonly path: string;
  readonly sink: (level: Level, line: string) => void;
}

/**
 * Opens this cutover's log. A refused state directory does not stop the
 * cutover: an error line says why and the log goes to syslog only.
 */
export function openCutoverLog(stateDir: string, now = new Date()): CutoverLog {
  let path = join(stateDir, `.pgtwin_migrate_cutover-${stamp(now)}.log`);
  let fd: number;
  try {
    try {
      fd = openAppend(path, 0o640, 'state directory');
    } catch (err) {
      if (!(err instanceof UnsafePathError) || !err.message.startsWith(path)) throw err;
      path = join(stateDir, `.pgtwin_migrate_cutover-${stamp(now)}-${randomBytes(4).toString('hex')}.log`);
      fd = openAppend(path, 0o640, 'state directory');
    }
  } catch (err) {
    if (!(err instanceof UnsafePathError)) throw err;
    log().err(`${err.message}; the cutover log goes to syslog only`);
    return { path: 'syslog (no cutover log file)', sink: () => undefined };
  }
  replaceSymlink(join(stateDir, CUTOVER_LOG_LINK), basename(path));
  return {
    path,
    sink: (_level, line) => {
      try {
        appendTo(fd, `${new Date().toISOString()} ${line}\n`);
      } catch {
        // The cutover goes on without its log file; syslog still has every line.
      }
    },
  };
}
