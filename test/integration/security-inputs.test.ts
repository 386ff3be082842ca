/**
 * Smaller leaks and crashes (issue 9, item 6) through the built executable:
 * bad numbers on the command line, timers past 2^31 ms, parameters with
 * line breaks, names that would forge a log line or a status row, a
 * malformed state file, and copy-paste commands that must stay one shell
 * word per value. (The PGTWIN_MIGRATE_TEST_PAUSE_AT hook is the lead's.)
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Migration } from '../support/migration';
import { AGENT } from '../support/rig';
import { runAgent } from '../support/agent';

const DB = 'sec_inputs';
const BASE = { source_replication_vip: '127.0.0.1', target_replication_vip: '127.0.0.1' };

/** Runs the executable with a hard limit: a busy loop or a hang fails the test instead of the suite. */
function runBounded(args: string[], env: NodeJS.ProcessEnv, limitMs = 15_000): Promise<{ code: number | null; stdout: string; stderr: string; ms: number }> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(AGENT, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), limitMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, ms: Date.now() - started });
    });
  });
}

describe('inputs that must not crash, hang, overflow or forge output', () => {
  const m = new Migration({ instance: 'migration-sec-inputs', databases: [DB], schema: 'CREATE TABLE items (id int PRIMARY KEY)' });
  const env = () => {
    const e: NodeJS.ProcessEnv = { ...process.env, OCF_RESOURCE_INSTANCE: m.opts.instance, HA_RSCTMP: m.rscTmp };
    for (const [k, v] of Object.entries(m.params)) e[`OCF_RESKEY_${k}`] = v;
    return e;
  };
  beforeAll(async () => {
    await m.setUp();
    expect((await m.run('start')).code).toBe(0);
  });
  afterAll(() => m.cleanup());

  it('status --timeout abc and status --watch --interval abc end at once with one line, no stack trace', async () => {
    for (const args of [['status', '--timeout', 'abc'], ['status', '--watch', '--interval', 'abc'], ['status', '--timeout', '-5'], ['cutover', '--wait', '--wait-seconds', 'x']]) {
      const r = await runBounded(args, env());
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(2);
      expect(r.stderr.trim().split('\n'), args.join(' ')).toHaveLength(1);
      expect(r.stderr).toMatch(new RegExp(`^pgtwin-migrate: --${args[args.length - 2]!.slice(2)} "${args[args.length - 1]}" is not a number of seconds`));
      expect(r.stderr).not.toMatch(/\n\s+at /);
      expect(r.ms).toBeLessThan(10_000);
    }
  });

  it('an operation timeout of 2^31 ms or more does not fire the watchdog at once', async () => {
    for (const timeout of ['2147483648', '4294967296', '99999999999999999999']) {
      const v = await runAgent('validate-all', { databases: DB, ...BASE }, { timeoutMs: undefined, env: { OCF_RESKEY_CRM_meta_timeout: timeout } });
      expect(v.code, `${timeout}: ${v.stderr}`).toBe(0);
      const mon = await m.run('monitor', {}, { interval: 10_000, env: { OCF_RESKEY_CRM_meta_timeout: timeout } });
      expect(mon.code, `${timeout}: ${mon.stderr}`).toBe(0);
    }
  });

  it('text parameters with a line break or a control character are refused, naming the parameter', async () => {
    const r = await runAgent('validate-all', { databases: DB, ...BASE, source_replication_vip: '10.0.0.1\nERROR: forged' });
    expect(r.code).toBe(6);
    expect(r.exitReason).toBe('source_replication_vip contains a line break at position 9; remove it');
    const esc = await runAgent('validate-all', { databases: DB, ...BASE, migration_dbuser: 'pg\u001b[2Jmigrate' });
    expect(esc.code).toBe(6);
    expect(esc.exitReason).toBe('migration_dbuser contains the control character U+001b at position 3; remove it');
  });

  it('a name with a line break cannot forge a log line or a status row', async () => {
    const forged = 'sec\nERROR: forged line';
    const v = await runAgent('validate-all', { databases: '', pgdatabase: forged, ...BASE });
    expect(v.stderr.split('\n').filter((l) => l.startsWith('ERROR: forged'))).toEqual([]);
    expect(v.stderr).toContain('pgdatabase=sec\\nERROR: forged line');
    const status = await runBounded(['status'], { ...env(), OCF_RESKEY_databases: `${DB},${forged}` });
    const lines = status.stdout.split('\n');
    expect(lines.filter((l) => l.startsWith('ERROR: forged'))).toEqual([]);
    expect(lines.some((l) => l.startsWith('sec\\nERROR: forged line'))).toBe(true);
  });

  it('a malformed state file is named in a warning and written anew by the next monitor', async () => {
    const file = join(m.stateDir, `.migration_state_${DB}`);
    writeFileSync(file, 'database="sec_inputs\nlag=12\n');
    const mon = await m.run('monitor', {}, { interval: 10_000 });
    expect(mon.code, mon.stderr).toBe(0);
    expect(mon.stderr).toContain(`state file ${file} is unusable (line 1: database holds a broken quoted value); ignoring it, the next monitor writes it anew`);
    const again = await m.run('monitor', {}, { interval: 10_000 });
    expect(again.stderr).not.toContain('is unusable');
  });

  it('copy-paste commands in reasons quote every value', async () => {
    const odd = "sec $(touch /tmp/pwned) 'x";
    const r = await runAgent('validate-all', { databases: `${DB},${odd}`, ...BASE, source_pgport: m.params.source_pgport!, target_pgport: m.params.target_pgport!, source_pgpassfile: m.params.source_pgpassfile!, target_pgpassfile: m.params.target_pgpassfile!, source_pghome: m.stateDir, target_pghome: m.stateDir }, { env: { OCF_CHECK_LEVEL: '10' } });
    expect(r.stderr).toContain(`(createdb 'sec $(touch /tmp/pwned) '\\''x')`);
  });
});
