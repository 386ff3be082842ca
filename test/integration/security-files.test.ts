/**
 * Root and the postgres OS user's directory (issue 9, item 3): the state
 * directory is that user's home, so that user — or any database superuser,
 * through COPY … TO PROGRAM — can plant links there for root to write
 * through. The built executable runs start, monitor and a cutover launch
 * against a directory full of planted links; the file they point at must
 * never change. A directory that is a link, or writable by others, is refused.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  existsSync,
  lchownSync,
  linkSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Migration, waitFor } from '../support/migration';
import { rig, sql } from '../support/rig';
import { expectFailure } from '../support/checks';

const DB = 'sec_files';
const INSTANCE = 'migration-sec-files';
const SECRET = 'root:$6$not-to-be-touched:19000:0:99999:7:::\n';

/** The next process ids this PID namespace will hand out, from a process started now. */
function nextPids(count: number): number[] {
  const pid = Number(execFileSync('sh', ['-c', 'echo $$'], { encoding: 'utf8' }).trim());
  return Array.from({ length: count }, (_, i) => pid + 1 + i);
}

function stamp(d: Date): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}${p(d.getMonth() + 1)}${p(d.getDate())}-${p(d.getHours())}${p(d.getMinutes())}${p(d.getSeconds())}`;
}

describe('root never writes through a link planted in the state directory', () => {
  const victimDir = mkdtempSync(join(tmpdir(), 'pgtwin-sec-victim-'));
  const victim = join(victimDir, 'shadow');
  const metricsDir = mkdtempSync(join(tmpdir(), 'pgtwin-sec-metrics-'));
  const metrics = join(metricsDir, 'pgtwin_migrate.prom');
  const m = new Migration({
    instance: INSTANCE,
    databases: [DB],
    schema: 'CREATE TABLE items (id int PRIMARY KEY)',
    params: { metrics_file: metrics },
  });
  let uid = 0;

  /** A link the PostgreSQL OS user made: its own, in its own directory. */
  const plant = (dir: string, name: string) => {
    const path = join(dir, name);
    symlinkSync(victim, path);
    lchownSync(path, uid, uid);
  };

  beforeAll(async () => {
    uid = Number(execFileSync('id', ['-u', rig().user], { encoding: 'utf8' }).trim());
    writeFileSync(victim, SECRET, { mode: 0o600 });
    chmodSync(metricsDir, 0o755);
    // The state directory is the PostgreSQL OS user's home: its own, 0700.
    chownSync(m.stateDir, uid, uid);
    chmodSync(m.stateDir, 0o700);
    await m.setUp();
    // Every name the agent used to write under: the temporary names (by the
    // next process ids), the worker's output, the next minutes' cutover logs.
    for (const pid of nextPids(3000)) {
      plant(m.stateDir, `.migration_state_${DB}.tmp-${pid}`);
      plant(m.stateDir, `.pgtwin_migrate_databases_${INSTANCE}.tmp-${pid}`);
      plant(metricsDir, `pgtwin_migrate.prom.tmp-${pid}`);
    }
    plant(m.stateDir, '.pgtwin_migrate_cutover-worker.out');
    const now = Date.now();
    for (let s = 0; s < 600; s++) {
      const name = `.pgtwin_migrate_cutover-${stamp(new Date(now + s * 1000))}.log`;
      // Every other second a hard link, where the kernel lets root make one (the attacker's may not).
      if (s % 2 === 1) {
        try {
          linkSync(victim, join(m.stateDir, name));
          continue;
        } catch {
          // no hard links across file systems: a symbolic link instead
        }
      }
      plant(m.stateDir, name);
    }
  });
  afterAll(async () => {
    await m.cleanup();
    for (const d of [victimDir, metricsDir]) rmSync(d, { recursive: true, force: true });
  });

  const untouched = () => expect(readFileSync(victim, 'utf8')).toBe(SECRET);

  it('start writes the state file and the baseline, never through a planted link', async () => {
    const r = await m.run('start');
    expect(r.code, r.stderr).toBe(0);
    untouched();
    const state = join(m.stateDir, `.migration_state_${DB}`);
    expect(lstatSync(state).isFile()).toBe(true);
    expect(lstatSync(state).uid).toBe(0);
    expect(readFileSync(state, 'utf8')).toMatch(/^database=sec_files$/m);
    expect(lstatSync(join(m.stateDir, `.pgtwin_migrate_databases_${INSTANCE}`)).isFile()).toBe(true);
  });

  it('monitor writes state files and metrics, never through a planted link', async () => {
    await m.untilStreaming();
    untouched();
    expect(lstatSync(metrics).isFile()).toBe(true);
    expect(readFileSync(metrics, 'utf8')).toMatch(/pgtwin_migrate_phase/);
  });

  it('a cutover launch opens its log and the worker output never through a planted link (symbolic or hard)', async () => {
    // A statement the target cannot replay stops the cutover at its first check, before any fence.
    await sql(m.source, DB, "DO $$ BEGIN EXECUTE 'COMMENT ON TABLE items IS ''inside a DO block'''; END $$");
    await waitFor('the statement on the target', async () => (await sql(m.target, DB, 'SELECT 1 FROM pgtwin_migrate.ddl_log WHERE NOT replayable')).length === 1);
    m.lookAgain();
    const r = await m.run('monitor', { cutover_ready: 'true' }, { interval: 10_000 });
    expect(r.stderr).toMatch(/\.pgtwin_migrate_cutover-worker\.out is (a symbolic link|not the agent's own file)[^\n]*\/dev\/null/);
    const link = join(m.stateDir, '.pgtwin_migrate_cutover.log');
    await waitFor('the cutover log', async () => existsSync(link), 30_000, 200);
    const log = join(m.stateDir, readlinkSync(link));
    await waitFor('the cutover to end', async () => /rolled back|cutover (failed|abort)/i.test(readFileSync(log, 'utf8')), 60_000, 200);
    untouched();
    expect(lstatSync(log).isFile()).toBe(true);
    expect(lstatSync(log).nlink).toBe(1);
    expect(lstatSync(log).uid).toBe(0);
    // The failed cutover is acknowledged so teardown finds nothing running.
    await m.run('monitor', { cutover_ready: 'false' }, { interval: 10_000 });
  });
});

describe('a state directory or metrics path someone else could swap files in is refused', () => {
  const base = mkdtempSync(join(tmpdir(), 'pgtwin-sec-dirs-'));
  const real = join(base, 'real-home');
  const linked = join(base, 'home-link');
  const open = join(base, 'open-home');
  const m = new Migration({ instance: 'migration-sec-dirs', databases: ['sec_dirs'], schema: 'CREATE TABLE items (id int PRIMARY KEY)' });
  beforeAll(async () => {
    mkdirSync(real, { mode: 0o700 });
    symlinkSync(real, linked);
    mkdirSync(open);
    chmodSync(open, 0o777);
    await m.setUp();
  });
  afterAll(async () => {
    await m.cleanup();
    rmSync(base, { recursive: true, force: true });
  });

  it('start refuses a state directory that is a symbolic link, in one line, and writes nothing through it', async () => {
    const r = await m.run('start', { source_pghome: linked });
    expectFailure(r, 6, `state directory ${linked} is a symbolic link; the agent writes only into real directories: name the directory itself (${real})`);
    expect(readdirSync(real)).toEqual([]);
  });

  it('start refuses a state directory writable by others without the sticky bit', async () => {
    const r = await m.run('start', { source_pghome: open });
    expectFailure(r, 6, `state directory ${open} is writable by group or others (mode 0777); chmod go-w ${open}`);
    expect(readdirSync(open)).toEqual([]);
  });

  it('monitor refuses a metrics_file that is a symbolic link and leaves its target alone', async () => {
    const target = join(real, 'elsewhere.prom');
    writeFileSync(target, 'keep\n');
    const metricsLink = join(base, 'metrics.prom');
    symlinkSync(target, metricsLink);
    expect((await m.run('start')).code).toBe(0);
    const r = await m.run('monitor', { metrics_file: metricsLink }, { interval: 10_000 });
    expect(r.stderr).toContain(`metrics_file ${metricsLink} is a symbolic link; the agent does not write through links: set metrics_file to the real path`);
    expect(readFileSync(target, 'utf8')).toBe('keep\n');
  });
});
