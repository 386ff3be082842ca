/**
 * The packages: the .deb made by scripts/make-deb.sh is inspected, installed
 * with dpkg, asked for its parameters through crmsh, read as a man page, and
 * purged again; the RPM made by scripts/make-rpm.sh (when rpmbuild is
 * available) is inspected and its executable run.
 *
 * The rig installed dist/pgtwin-migrate at the agent's path, and other tests
 * run it there through Pacemaker: installing the .deb replaces that file, so
 * it is kept aside first and put back, byte for byte and mode 0755, once the
 * package is purged (also when a test fails half-way).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { PARAMS } from '../../src/ocf/params';
import { INSTALLED_AGENT, REPO } from '../support/rig';

const VERSION = (JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string }).version;
const MAN_PAGE = '/usr/share/man/man7/pgtwin-migrate.7.gz';
const DOC_DIR = '/usr/share/doc/pgtwin-migrate';
const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const versionLine = new RegExp(`^pgtwin-migrate ${escape(VERSION)} \\(commit `);

/** Runs a command to completion (C locale); throws with its output unless it exits 0 or `ok` allows its status. */
function run(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string; ok?: (status: number | null) => boolean } = {}): SpawnSyncReturns<string> {
  const r = spawnSync(cmd, args, {
    cwd: opts.cwd ?? REPO,
    encoding: 'utf8',
    env: { ...process.env, LC_ALL: 'C', ...opts.env },
    maxBuffer: 64 * 1024 * 1024,
  });
  if (r.error) throw r.error;
  if (!(opts.ok ?? ((s) => s === 0))(r.status)) {
    throw new Error(`${cmd} ${args.join(' ')} exited ${r.status ?? r.signal}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`);
  }
  return r;
}

const onPath = (tool: string) => spawnSync('sh', ['-c', `command -v ${tool}`]).status === 0;
const sha256 = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');
const modeOf = (file: string) => statSync(file).mode & 0o7777;
/** dpkg's status of the package: "install ok installed", "deinstall ok config-files", "" when dpkg does not know it, ... */
const debStatus = () => run('dpkg-query', ['-W', '-f=${Status}', 'pgtwin-migrate'], { ok: () => true }).stdout.trim();
/** Whether dpkg holds anything of the package (installed, or its configuration left): purge would act. */
const debKnown = () => debStatus() !== '' && !debStatus().endsWith(' not-installed');

/** The file the rig installed at the agent's path, kept aside while the package owns the path. */
interface Kept {
  readonly backup: string;
  readonly sha256: string;
  readonly mode: number;
}

describe('Debian package (scripts/make-deb.sh)', () => {
  let deb = '';
  let kept: Kept | undefined;
  let keptDir = '';

  /** Purges the package (when installed) and puts the rig's agent back; idempotent. */
  function purgeAndRestore(): void {
    if (debKnown()) run('dpkg', ['--purge', 'pgtwin-migrate']);
    if (!kept) return;
    if (existsSync(INSTALLED_AGENT) && sha256(INSTALLED_AGENT) === kept.sha256 && modeOf(INSTALLED_AGENT) === kept.mode) return;
    // Beside the target and renamed over it: never a half-written agent.
    const tmp = `${INSTALLED_AGENT}.pgtwin-test-restore`;
    copyFileSync(kept.backup, tmp);
    chmodSync(tmp, kept.mode);
    renameSync(tmp, INSTALLED_AGENT);
  }

  beforeAll(() => {
    if (debKnown()) {
      throw new Error(
        'the pgtwin-migrate package is installed already (left by an interrupted run?): ' +
          `dpkg -P pgtwin-migrate, then put the rig's agent back (an earlier run keeps it as ${tmpdir()}/pgtwin-packages-*/pgtwin-migrate): ` +
          `install -m 0755 <that file, or dist/pgtwin-migrate> ${INSTALLED_AGENT}`,
      );
    }
    if (existsSync(INSTALLED_AGENT)) {
      keptDir = mkdtempSync(join(tmpdir(), 'pgtwin-packages-'));
      const backup = join(keptDir, 'pgtwin-migrate');
      copyFileSync(INSTALLED_AGENT, backup);
      kept = { backup, sha256: sha256(INSTALLED_AGENT), mode: modeOf(INSTALLED_AGENT) };
      expect(sha256(backup)).toBe(kept.sha256);
    }
    // gzip -1: the payload is mostly the 95 MiB executable, and xz takes most of a minute on it.
    const r = run('scripts/make-deb.sh', [], { env: { DEB_COMPRESS: 'gzip', DEB_COMPRESS_LEVEL: '1' } });
    deb = r.stdout.trim().split('\n').pop() ?? '';
  });

  afterAll(() => {
    try {
      purgeAndRestore();
    } finally {
      // The copy stays when the agent could not be put back.
      if (keptDir && kept && existsSync(INSTALLED_AGENT) && sha256(INSTALLED_AGENT) === kept.sha256) rmSync(keptDir, { recursive: true, force: true });
    }
  });

  it('is dist/pgtwin-migrate_<version>_<arch>.deb with the control fields', () => {
    const arch = run('dpkg', ['--print-architecture']).stdout.trim();
    expect(deb).toBe(`dist/pgtwin-migrate_${VERSION}_${arch}.deb`);
    const field = (name: string) => run('dpkg-deb', ['-f', deb, name]).stdout.trim();
    expect(field('Package')).toBe('pgtwin-migrate');
    expect(field('Version')).toBe(VERSION);
    expect(field('Architecture')).toBe(arch);
    expect(field('Maintainer')).toMatch(/^.+ <[^@\s]+@[^@\s]+>$/);
    expect(field('Description')).toMatch(/^Pacemaker resource agent for PostgreSQL major-version migration\n /);
    const depends = field('Depends').split(/,\s*/);
    expect(depends).toContain('pacemaker-cli-utils | pacemaker');
    expect(depends).toContain('resource-agents');
    expect(field('Recommends').split(/,\s*/)).toContain('postgresql-client');
    expect(Number(field('Installed-Size'))).toBeGreaterThan(1000);
  });

  it('holds the agent (0755), the gzipped man page, README and copyright, all root-owned', () => {
    const entries = run('dpkg-deb', ['-c', deb])
      .stdout.trim()
      .split('\n')
      .map((l) => {
        const [perms, owner, , , , ...rest] = l.split(/\s+/);
        return { perms, owner, path: rest.join(' ').replace(/^\./, '') };
      });
    const files = Object.fromEntries(entries.filter((e) => !e.perms!.startsWith('d')).map((e) => [e.path, e.perms]));
    expect(files).toEqual({
      [INSTALLED_AGENT]: '-rwxr-xr-x',
      [MAN_PAGE]: '-rw-r--r--',
      [`${DOC_DIR}/README.md.gz`]: '-rw-r--r--',
      [`${DOC_DIR}/copyright`]: '-rw-r--r--',
    });
    expect(entries.filter((e) => e.owner !== 'root/root')).toEqual([]);
    expect(entries.filter((e) => e.perms!.startsWith('d') && e.perms !== 'drwxr-xr-x')).toEqual([]);
  });

  it('installs with dpkg -i, and crm ra info lists every parameter', () => {
    // --path-include: in case this machine's dpkg excludes man pages and docs (slim images do).
    run('dpkg', ['-i', `--path-include=${MAN_PAGE}`, `--path-include=${DOC_DIR}/*`, deb]);
    expect(debStatus()).toBe('install ok installed');
    const owned = run('dpkg', ['-L', 'pgtwin-migrate']).stdout.split('\n');
    expect(owned).toEqual(expect.arrayContaining([INSTALLED_AGENT, MAN_PAGE, `${DOC_DIR}/README.md.gz`, `${DOC_DIR}/copyright`]));
    expect(modeOf(INSTALLED_AGENT)).toBe(0o755);
    expect(gunzipSync(readFileSync(`${DOC_DIR}/README.md.gz`)).toString('utf8')).toMatch(/^# pgtwin-migrate\n/);

    const info = run('crm', ['ra', 'info', 'ocf:heartbeat:pgtwin-migrate']).stdout;
    expect(info).toMatch(/\(ocf:heartbeat:pgtwin-migrate\)/);
    // One line per parameter: `name (type...)`, `name* (...)` when required.
    const listed = new Set([...info.matchAll(/^([A-Za-z0-9_]+)\*? \(/gm)].map((m) => m[1]));
    const missing = PARAMS.map((p) => p.name).filter((n) => !listed.has(n));
    expect(missing, info).toEqual([]);
  });

  it('man 7 pgtwin-migrate renders the installed page', () => {
    expect(run('man', ['-w', '7', 'pgtwin-migrate']).stdout.trim()).toBe(MAN_PAGE);
    const man = run('man', ['7', 'pgtwin-migrate'], { env: { MANPAGER: 'cat', PAGER: 'cat', MANWIDTH: '80' } });
    expect(man.status).toBe(0);
    expect(man.stdout).toMatch(/^NAME\n\s+pgtwin-migrate - PostgreSQL major-version migration/m);
    expect(man.stdout).toContain('databases');
  });

  it('the installed agent prints the package version', () => {
    const v = run(INSTALLED_AGENT, ['--version'], { env: {} });
    expect(v.stdout).toMatch(versionLine);
  });

  it("is purged with dpkg -P, and the rig's agent is back byte for byte with mode 0755", () => {
    purgeAndRestore();
    expect(debKnown()).toBe(false);
    expect(existsSync(MAN_PAGE)).toBe(false);
    expect(existsSync(DOC_DIR)).toBe(false);
    if (!kept) return;
    expect(sha256(INSTALLED_AGENT)).toBe(kept.sha256);
    expect(modeOf(INSTALLED_AGENT)).toBe(0o755);
    expect(statSync(INSTALLED_AGENT).uid).toBe(0);
  });
});

describe('RPM (packaging/rpm/pgtwin-migrate.spec, scripts/make-rpm.sh)', () => {
  const haveRpmbuild = onPath('rpmbuild');
  const noRpmbuild = 'rpmbuild not found (on Debian: apt-get install rpm; scripts/rig.sh deps installs it)';
  let rpm = '';
  let unpacked = '';

  beforeAll(() => {
    if (!haveRpmbuild) return;
    // A gzip -1 payload, for the same reason as the .deb's.
    const r = run('scripts/make-rpm.sh', [], { env: { RPM_PAYLOAD: 'w1.gzdio' } });
    rpm = r.stdout.trim().split('\n').pop() ?? '';
  });

  afterAll(() => {
    if (unpacked) rmSync(unpacked, { recursive: true, force: true });
  });

  it('is dist/pgtwin-migrate-<version>-1.<arch>.rpm with the files and requirements', (ctx) => {
    ctx.skip(!haveRpmbuild, noRpmbuild);
    const arch = run('rpm', ['--eval', '%{_arch}']).stdout.trim();
    expect(rpm).toBe(`dist/pgtwin-migrate-${VERSION}-1.${arch}.rpm`);
    expect(run('rpm', ['-qp', '--queryformat', '%{NAME} %{VERSION} %{LICENSE}', rpm]).stdout).toBe(`pgtwin-migrate ${VERSION} GPL-2.0-or-later`);

    const files = run('rpm', ['-qlp', rpm]).stdout.trim().split('\n');
    expect(files).toContain(INSTALLED_AGENT);
    expect(files).toContain(MAN_PAGE);
    // %doc lands in the distribution's doc directory: /usr/share/doc/packages/NAME on SUSE, /usr/share/doc/NAME on RHEL.
    expect(files.filter((f) => /^\/usr\/share\/doc\/(packages\/)?pgtwin-migrate(-[^/]+)?\/README\.md$/.test(f))).toHaveLength(1);
    const modes = run('rpm', ['-qp', '--queryformat', '[%{FILEMODES:perms} %{FILEUSERNAME}:%{FILEGROUPNAME} %{FILENAMES}\n]', rpm]).stdout;
    expect(modes).toContain(`-rwxr-xr-x root:root ${INSTALLED_AGENT}\n`);

    const requires = run('rpm', ['-qp', '--requires', rpm]).stdout.split('\n').map((l) => l.trim());
    expect(requires).toContain('pacemaker-cli');
    expect(requires).toContain('resource-agents');
  });

  it('holds the executable unstripped: it still runs --version and meta-data', (ctx) => {
    ctx.skip(!haveRpmbuild, noRpmbuild);
    ctx.skip(!onPath('rpm2cpio') || !onPath('cpio'), 'rpm2cpio or cpio not found (Debian packages rpm2cpio, cpio)');
    unpacked = mkdtempSync(join(tmpdir(), 'pgtwin-rpm-'));
    run('sh', ['-c', 'rpm2cpio "$1" | cpio -idm --quiet', 'sh', join(REPO, rpm)], { cwd: unpacked });
    const bin = join(unpacked, INSTALLED_AGENT);
    expect(modeOf(bin)).toBe(0o755);
    // A stripped SEA executable loses its injected script (or crashes).
    expect(run(bin, ['--version'], { env: {} }).stdout).toMatch(versionLine);
    expect(run(bin, ['meta-data'], { env: {} }).stdout).toMatch(/^<\?xml[^]*<resource-agent name="pgtwin-migrate"/);
  });
});
