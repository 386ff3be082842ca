/**
 * The cutover log: one timestamped file per cutover in the state directory,
 * and the stable symlink `.pgtwin_migrate_cutover.log` to the latest one
 * (`tail -f` it to watch a cutover).
 */
import { appendFileSync, rmSync, symlinkSync, renameSync } from 'node:fs';
import { join, basename } from 'node:path';
import type { Level } from '../../ocf/log';

export const CUTOVER_LOG_LINK = '.pgtwin_migrate_cutover.log';

function stamp(d = new Date()): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}${p(d.getMonth() + 1)}${p(d.getDate())}-${p(d.getHours())}${p(d.getMinutes())}${p(d.getSeconds())}`;
}

export interface CutoverLog {
  readonly path: string;
  readonly sink: (level: Level, line: string) => void;
}

export function openCutoverLog(stateDir: string, now = new Date()): CutoverLog {
  const path = join(stateDir, `.pgtwin_migrate_cutover-${stamp(now)}.log`);
  appendFileSync(path, '', { mode: 0o640 });
  const link = join(stateDir, CUTOVER_LOG_LINK);
  const tmp = `${link}.tmp-${process.pid}`;
  rmSync(tmp, { force: true });
  symlinkSync(basename(path), tmp);
  renameSync(tmp, link);
  return {
    path,
    sink: (_level, line) => {
      try {
        appendFileSync(path, `${new Date().toISOString()} ${line}\n`);
      } catch {
        // The cutover goes on without its log file; syslog still has every line.
      }
    },
  };
}
