/**
 * Where the detached worker's stdout and stderr go: `.pgtwin_migrate_cutover-worker.out`
 * in the state directory, opened for appending without following a symlink
 * (the directory belongs to the PostgreSQL OS user; the agent runs as root).
 */
import { openSync, closeSync, fstatSync, constants } from 'node:fs';
import { join } from 'node:path';

export const WORKER_OUTPUT = '.pgtwin_migrate_cutover-worker.out';

export function openWorkerOutput(stateDir: string): { fd: number; close(): void } {
  const path = join(stateDir, WORKER_OUTPUT);
  const fd = openSync(path, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW, 0o640);
  const st = fstatSync(fd);
  if (!st.isFile() || st.nlink !== 1 || (process.getuid?.() === 0 && st.uid !== 0)) {
    closeSync(fd);
    throw new Error(`${path} is not a regular file of root's own (links ${st.nlink}, owner ${st.uid}); remove it`);
  }
  return { fd, close: () => closeSync(fd) };
}
