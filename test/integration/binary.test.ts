/** The single executable, driven as Pacemaker and ocf-tester drive it. */
import { describe, expect, it, vi } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AGENT } from '../support/rig';
import { runAgent } from '../support/agent';

describe('dist/pgtwin-migrate', () => {
  it('answers meta-data as user nobody with no environment, valid for xmllint --valid', () => {
    const md = spawnSync('runuser', ['-u', 'nobody', '--', 'env', '-i', AGENT, 'meta-data'], { cwd: '/', encoding: 'utf8' });
    expect(md.status).toBe(0);
    expect(md.stderr).toBe('');
    const lint = spawnSync('xmllint', ['--noout', '--valid', '-'], { input: md.stdout, cwd: '/usr/share/resource-agents', encoding: 'utf8' });
    expect(lint.stderr).toBe('');
    expect(lint.status).toBe(0);
  });

  it('exits 6 with an exit reason naming the empty item of databases', async () => {
    const r = await runAgent('validate-all', { databases: 'a,,b', source_replication_vip: 'x', target_replication_vip: 'y' }, { clean: true });
    expect(r.code).toBe(6);
    expect(r.exitReason).toBe('databases: item 2 of "a,,b" is empty; remove the extra comma');
  });

  it('exits 6 when a required parameter is missing', async () => {
    const r = await runAgent('validate-all', { databases: 'a' }, { clean: true });
    expect(r.code).toBe(6);
    expect(r.exitReason).toMatch(/^source_replication_vip is required/);
  });

  it('passes validate-all with good parameters', async () => {
    const r = await runAgent('validate-all', { databases: 'postgres,my-app', source_replication_vip: 'x', target_replication_vip: 'y' });
    expect(r.stderr).not.toContain('ocf-exit-reason');
    expect(r.code).toBe(0);
  });

  it('exits 3 for an unknown action and 0 for usage', () => {
    const unknown = spawnSync(AGENT, ['promote-everything'], { encoding: 'utf8' });
    expect(unknown.status).toBe(3);
    expect(unknown.stderr).toMatch(/ocf-exit-reason:unknown action/);
    const usage = spawnSync(AGENT, ['usage'], { encoding: 'utf8' });
    expect(usage.status).toBe(0);
    expect(usage.stdout).toMatch(/^usage: pgtwin-migrate \{start\|stop\|monitor/);
  });

  it('prints the version stamped at build time', () => {
    const v = spawnSync(AGENT, ['--version'], { encoding: 'utf8', env: {} });
    expect(v.status).toBe(0);
    expect(v.stdout).toMatch(/^pgtwin-migrate \d+\.\d+\.\d+ \(commit ([0-9a-f]{12}(-dirty)?|unknown), built \d{4}-\d\d-\d\d\)\n$/);
  });

  it('logs to HA_LOGFILE in resource-agents format when Pacemaker says so', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'pgtwin-log-')), 'ha.log');
    const r = await runAgent('validate-all', { databases: 'x,x', source_replication_vip: 'x', target_replication_vip: 'y' }, {
      env: { HA_LOGFILE: file },
    });
    expect(r.code).toBe(6);
    expect(readFileSync(file, 'utf8')).toMatch(
      /^pgtwin-migrate\(migration-test\)\[\d+\]:\t\d{4}\/\d\d\/\d\d_\d\d:\d\d:\d\d ERROR: validate-all: databases: "x" is listed twice/,
    );
    expect(r.stderr).not.toMatch(/ERROR: validate-all/);
  });

  it.skipIf(existsSync('/dev/log'))('logs to syslog through logger when HA_LOGFACILITY is set', async () => {
    // No syslog daemon on this machine: listen on /dev/log for the test's duration.
    const listener = spawn('python3', ['-c', [
      'import socket,sys',
      's=socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)',
      's.bind("/dev/log")',
      'print("ready", flush=True)',
      'while True: print(s.recv(65536).decode(errors="replace"), flush=True)',
    ].join('\n')], { stdio: ['ignore', 'pipe', 'inherit'] });
    let received = '';
    listener.stdout.on('data', (d: Buffer) => (received += d.toString()));
    try {
      await vi.waitFor(() => expect(received).toContain('ready'));
      const r = await runAgent('validate-all', { databases: 'y,y', source_replication_vip: 'x', target_replication_vip: 'y' }, {
        env: { HA_LOGFACILITY: 'daemon' },
      });
      expect(r.code).toBe(6);
      // <27> = facility daemon (3) * 8 + severity err (3)
      await vi.waitFor(() => expect(received).toMatch(/<27>.*pgtwin-migrate\(migration-test\)\[\d+\]: ERROR: validate-all: databases: "y" is listed twice/));
      expect(r.stderr).not.toMatch(/ERROR: validate-all/);
    } finally {
      listener.kill();
      rmSync('/dev/log', { force: true });
    }
  });
});
