/**
 * Where DBAs look: Pacemaker's own view (crm_mon -A, transient node
 * attributes), a Prometheus textfile, and `status` (table, --json, --watch).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import parsePrometheus from 'parse-prometheus-text-format';
import { Migration, waitFor } from '../support/migration';
import { sql, AGENT } from '../support/rig';

const DBS = ['obs_app', 'obs "quoted" db'];
const ID = 'migration-obs';

type Family = { name: string; type: string; help: string; metrics: Array<{ value: string; labels?: Record<string, string> }> };

describe('observability', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pgtwin-metrics-'));
  const metricsFile = join(dir, 'pgtwin_migrate.prom');
  const m = new Migration({
    instance: ID,
    databases: DBS,
    schema: 'CREATE TABLE items (id bigserial PRIMARY KEY, v text)',
    sourceData: "INSERT INTO items (v) SELECT 'x' FROM generate_series(1, 500)",
    params: { metrics_file: metricsFile },
  });
  beforeAll(async () => {
    await m.setUp();
    expect((await m.run('start')).code).toBe(0);
    for (const db of DBS) await waitFor(`${db} copied`, async () => (await sql(m.target, db, "SELECT 1 FROM items WHERE id = 500")).length === 1);
    await m.untilStreaming();
  });
  afterAll(async () => {
    await m.run('stop');
    await m.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  const families = () => parsePrometheus(readFileSync(metricsFile, 'utf8')) as Family[];

  it('publishes phase, worst lag and databases in sync as node attributes that crm_mon -A shows', () => {
    const out = execFileSync('crm_mon', ['-A1'], { encoding: 'utf8', env: { ...process.env, LC_ALL: 'C' } });
    expect(out).toMatch(new RegExp(`pgtwin-migrate-${ID}-phase\\s*:\\s*forward`));
    expect(out).toMatch(new RegExp(`pgtwin-migrate-${ID}-in-sync\\s*:\\s*2/2`));
    expect(out).toMatch(new RegExp(`pgtwin-migrate-${ID}-worst-lag\\s*:\\s*(0 B|<1 KiB|\\d+(\\.\\d+)? [KMG]iB)`));
  });

  it('writes a Prometheus textfile that parses, with a lag series per database', () => {
    const f = families();
    const lag = f.find((x) => x.name === 'pgtwin_migrate_lag_bytes')!;
    expect(lag.type).toBe('GAUGE');
    expect(lag.metrics.map((x) => x.labels?.database).sort()).toEqual([...DBS].sort());
    for (const s of lag.metrics) {
      expect(s.labels?.resource).toBe(ID);
      expect(Number(s.value)).toBeGreaterThanOrEqual(0);
    }
    for (const name of ['pgtwin_migrate_lag_seconds', 'pgtwin_migrate_tables_synced', 'pgtwin_migrate_tables_total', 'pgtwin_migrate_copy_bytes', 'pgtwin_migrate_database_state', 'pgtwin_migrate_phase']) {
      expect(f.map((x) => x.name)).toContain(name);
    }
    const phase = f.find((x) => x.name === 'pgtwin_migrate_phase')!;
    expect(phase.metrics.find((x) => x.labels?.phase === 'forward')?.value).toBe('1');
    const streaming = f.find((x) => x.name === 'pgtwin_migrate_database_state')!.metrics.filter((x) => x.labels?.state === 'streaming');
    expect(streaming.map((x) => [x.labels?.database, x.value]).sort()).toEqual(DBS.map((d) => [d, '1']).sort());
  });

  it('status --json and the metrics agree', async () => {
    const status = JSON.parse((await m.cli(['status', '--json'])).stdout) as { databases: Array<{ database: string; state: string; tablesReady: number; tablesTotal: number; lagBytes: number }> };
    const f = families();
    const value = (name: string, db: string) => Number(f.find((x) => x.name === name)!.metrics.find((x) => x.labels?.database === db)!.value);
    for (const d of status.databases) {
      expect(value('pgtwin_migrate_tables_synced', d.database)).toBe(d.tablesReady);
      expect(value('pgtwin_migrate_tables_total', d.database)).toBe(d.tablesTotal);
      expect(f.find((x) => x.name === 'pgtwin_migrate_database_state')!.metrics.find((x) => x.labels?.database === d.database && x.labels?.state === d.state)?.value).toBe('1');
      // Both measure lag on the publisher; an idle source stays within a few hundred bytes.
      expect(Math.abs(value('pgtwin_migrate_lag_bytes', d.database) - d.lagBytes)).toBeLessThan(1024);
    }
  });

  it('status --watch prints plain blocks when stdout is not a terminal', async () => {
    const env: NodeJS.ProcessEnv = { ...process.env, OCF_RESOURCE_INSTANCE: ID, HA_RSCTMP: m.rscTmp };
    for (const [k, v] of Object.entries(m.params)) env[`OCF_RESKEY_${k}`] = v;
    const child = spawn(AGENT, ['status', '--watch', '--interval', '1'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    await waitFor('two blocks', async () => (out.match(/^--- \d{4}-/gm) ?? []).length >= 2, 30_000);
    child.kill('SIGINT');
    await new Promise((r) => child.on('close', r));
    expect(out).not.toContain('\x1b[');
    expect(out).toMatch(/^obs_app\s+streaming\s+2\/2\s+done/m);
  });

  it('stop withdraws the node attributes', async () => {
    expect((await m.run('stop')).code).toBe(0);
    const out = execFileSync('crm_mon', ['-A1'], { encoding: 'utf8', env: { ...process.env, LC_ALL: 'C' } });
    expect(out).not.toContain(`pgtwin-migrate-${ID}-`);
  });
});
