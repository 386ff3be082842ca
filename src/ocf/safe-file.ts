/**
 * Files the agent writes as root in directories other users may own — the
 * state directory is the PostgreSQL OS user's home (DESIGN §4), and that
 * user (or any database superuser, through COPY … TO PROGRAM) can plant a
 * symbolic or hard link there for root to write through. Every writer of
 * the agent goes through this module:
 *  - a new file is created exclusively (O_EXCL), never through a link
 *    (O_NOFOLLOW), under an unpredictable temporary name, then renamed over
 *    the final name (which replaces a link there, never its target);
 *  - a file appended to is opened without following a link and kept only
 *    when it is the agent's own: a regular file, owned by this user, with
 *    one link (a hard link to /etc/shadow has two);
 *  - a directory that is a symbolic link, or writable by group or others
 *    without the sticky bit, is refused in one line (what, where, fix).
 */
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  constants as fsc,
  fchmodSync,
  fstatSync,
  fsyncSync,
  lstatSync,
  openSync,
  readFileSync,
  realpathSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeSync,
} from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { log } from './log';
import { OCF, OcfError } from './exit-codes';
import { shellWord } from './text';

/**
 * A path the agent refuses to write through; the message is the one line to
 * show. A configuration problem (6) where an action cannot do without the
 * file (start); the monitor and the cutover only warn and go on.
 */
export class UnsafePathError extends OcfError {
  constructor(message: string) {
    super(OCF.ERR_CONFIGURED, message);
    this.name = 'UnsafePathError';
  }
}

const code = (err: unknown) => (err as NodeJS.ErrnoException | null)?.code;

/**
 * Refuses a directory in which someone else could swap the agent's files:
 * a symbolic link, or writable by group or others without the sticky bit.
 */
export function checkDirectory(dir: string, what: string): void {
  let st;
  try {
    st = lstatSync(dir);
  } catch (err) {
    throw new UnsafePathError(`${what} ${dir} cannot be used (${code(err) ?? 'error'}); create it, owned by root or the PostgreSQL OS user, mode 0700`);
  }
  if (st.isSymbolicLink()) {
    let real = '';
    try {
      real = realpathSync(dir);
    } catch {
      // a dangling link: say so without a target
    }
    throw new UnsafePathError(`${what} ${dir} is a symbolic link; the agent writes only into real directories: name the directory itself${real ? ` (${real})` : ''}`);
  }
  if (!st.isDirectory()) throw new UnsafePathError(`${what} ${dir} is not a directory; name a directory`);
  if ((st.mode & 0o022) !== 0 && (st.mode & 0o1000) === 0) {
    const mode = (st.mode & 0o7777).toString(8).padStart(4, '0');
    throw new UnsafePathError(`${what} ${dir} is writable by group or others (mode ${mode}); chmod go-w ${shellWord(dir)}`);
  }
}

const NEW_FILE = fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW;

/** Writes all of `data` to `fd`. */
function writeAll(fd: number, data: string | Buffer): void {
  const buf = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  let off = 0;
  while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
}

/**
 * Replaces `file` with `content` atomically: a new file under an
 * unpredictable name beside it (exclusive, not through a link), synced, then
 * renamed over `file`. `what` names the directory in a refusal.
 */
export function writeFileAtomic(file: string, content: string, mode: number, what = 'directory'): void {
  const dir = dirname(file);
  checkDirectory(dir, what);
  const tmp = join(dir, `.${basename(file)}.${randomBytes(8).toString('hex')}.tmp`);
  const fd = openSync(tmp, NEW_FILE, mode);
  try {
    fchmodSync(fd, mode);
    writeAll(fd, content);
    fsyncSync(fd);
  } catch (err) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw err;
  }
  closeSync(fd);
  try {
    renameSync(tmp, file);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
}

/**
 * Opens `file` for appending (creating it), never through a link, and only
 * when it is the agent's own file; returns the descriptor.
 */
export function openAppend(file: string, mode: number, what = 'directory'): number {
  checkDirectory(dirname(file), what);
  let fd: number;
  try {
    // O_NONBLOCK: a FIFO planted under the name must not hang the agent.
    fd = openSync(file, fsc.O_WRONLY | fsc.O_APPEND | fsc.O_CREAT | fsc.O_NOFOLLOW | fsc.O_NONBLOCK, mode);
  } catch (err) {
    if (code(err) === 'ELOOP') throw new UnsafePathError(`${file} is a symbolic link; the agent does not write through links: remove it`);
    throw err;
  }
  const st = fstatSync(fd);
  const uid = process.geteuid?.() ?? st.uid;
  if (!st.isFile() || st.uid !== uid || st.nlink !== 1) {
    closeSync(fd);
    const why = !st.isFile() ? 'not a regular file' : st.uid !== uid ? `owned by uid ${st.uid}` : `a file with ${st.nlink} links`;
    throw new UnsafePathError(`${file} is not the agent's own file (${why}); the agent does not write to it: remove it`);
  }
  return fd;
}

/**
 * openAppend for an output file nothing depends on (a detached process's
 * stdout): when the name is not the agent's own, a warning names it and the
 * output goes to /dev/null instead.
 */
export function openAppendOrDevNull(file: string, mode: number, what = 'directory'): number {
  try {
    return openAppend(file, mode, what);
  } catch (err) {
    if (!(err instanceof UnsafePathError)) throw err;
    log().warn(`${err.message}; ${basename(file)} goes to /dev/null meanwhile`);
    return openSync('/dev/null', fsc.O_WRONLY);
  }
}

/** Appends `text` to a descriptor from openAppend. */
export function appendTo(fd: number, text: string): void {
  writeAll(fd, text);
}

/**
 * Reads a file the agent wrote, without following a link; undefined when it
 * does not exist.
 */
export function readOwnFile(file: string): string | undefined {
  let fd: number;
  try {
    fd = openSync(file, fsc.O_RDONLY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK);
  } catch (err) {
    if (code(err) === 'ENOENT') return undefined;
    if (code(err) === 'ELOOP') throw new UnsafePathError(`${file} is a symbolic link; the agent does not read through links: remove it`);
    throw err;
  }
  try {
    if (!fstatSync(fd).isFile()) throw new UnsafePathError(`${file} is not a regular file: remove it`);
    return readFileSync(fd, 'utf8');
  } finally {
    closeSync(fd);
  }
}

/** Points the symbolic link `link` at `target` (a name in the same directory), replacing whatever `link` was. */
export function replaceSymlink(link: string, target: string): void {
  const tmp = join(dirname(link), `.${basename(link)}.${randomBytes(8).toString('hex')}.tmp`);
  symlinkSync(target, tmp);
  try {
    renameSync(tmp, link);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
}
