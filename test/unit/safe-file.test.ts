/** The safe file writes (src/ocf/safe-file.ts) against links and foreign files someone planted. */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, linkSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { appendTo, checkDirectory, openAppend, readOwnFile, writeFileAtomic, UnsafePathError } from '../../src/ocf/safe-file';
import { closeSync } from 'node:fs';

const root = process.geteuid?.() === 0;

describe('safe file writes', () => {
  let dir: string;
  let victim: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'pgtwin-safe-'));
    victim = join(mkdtempSync(join(tmpdir(), 'pgtwin-victim-')), 'secret');
    writeFileSync(victim, 'secret\n');
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('replaces a link at the final name, never writing its target, and leaves no temporary file', () => {
    symlinkSync(victim, join(dir, 'state'));
    writeFileAtomic(join(dir, 'state'), 'a=1\n', 0o640);
    expect(readFileSync(victim, 'utf8')).toBe('secret\n');
    expect(lstatSync(join(dir, 'state')).isFile()).toBe(true);
    expect(lstatSync(join(dir, 'state')).mode & 0o777).toBe(0o640);
    expect(readdirSync(dir)).toEqual(['state']);
  });

  it('appends only to its own regular file: a symbolic link, a hard link and a FIFO are refused', () => {
    symlinkSync(victim, join(dir, 'sym.log'));
    expect(() => openAppend(join(dir, 'sym.log'), 0o640)).toThrow(/sym\.log is a symbolic link/);
    linkSync(victim, join(dir, 'hard.log'));
    expect(() => openAppend(join(dir, 'hard.log'), 0o640)).toThrow(/hard\.log is not the agent's own file \(a file with 2 links\)/);
    execFileSync('mkfifo', [join(dir, 'fifo.log')]);
    expect(() => openAppend(join(dir, 'fifo.log'), 0o640)).toThrow();
    expect(readFileSync(victim, 'utf8')).toBe('secret\n');
    const fd = openAppend(join(dir, 'own.log'), 0o640);
    appendTo(fd, 'one\n');
    closeSync(fd);
    const again = openAppend(join(dir, 'own.log'), 0o640);
    appendTo(again, 'two\n');
    closeSync(again);
    expect(readFileSync(join(dir, 'own.log'), 'utf8')).toBe('one\ntwo\n');
  });

  it.runIf(root)("refuses to append to a file another user owns", () => {
    writeFileSync(join(dir, 'theirs.log'), '');
    chownSync(join(dir, 'theirs.log'), 65534, 65534);
    expect(() => openAppend(join(dir, 'theirs.log'), 0o640)).toThrow(/theirs\.log is not the agent's own file \(owned by uid 65534\)/);
  });

  it('refuses a directory that is a link or writable by others without the sticky bit; a sticky one is accepted', () => {
    const real = join(dir, 'real');
    mkdirSync(real, { mode: 0o700 });
    symlinkSync(real, join(dir, 'link'));
    expect(() => checkDirectory(join(dir, 'link'), 'state directory')).toThrow(UnsafePathError);
    expect(() => writeFileAtomic(join(dir, 'link', 'f'), 'x', 0o600, 'state directory')).toThrow(/state directory .*link is a symbolic link/);
    expect(readdirSync(real)).toEqual([]);
    const open = join(dir, 'open');
    mkdirSync(open);
    chmodSync(open, 0o777);
    expect(() => checkDirectory(open, 'state directory')).toThrow(`state directory ${open} is writable by group or others (mode 0777); chmod go-w ${open}`);
    chmodSync(open, 0o1777);
    expect(() => checkDirectory(open, 'state directory')).not.toThrow();
  });

  it('reads only regular files, never through a link', () => {
    symlinkSync(victim, join(dir, 'link'));
    expect(() => readOwnFile(join(dir, 'link'))).toThrow(/symbolic link/);
    expect(readOwnFile(join(dir, 'absent'))).toBeUndefined();
  });
});
