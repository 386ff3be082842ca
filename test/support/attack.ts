/**
 * Shared by the adversarial switch tests (test/integration/attack-*.test.ts):
 * a migration started by hand and copied, the switch launched through
 * reload-agent and steered with the agent's fault-injection hook
 * (PGTWIN_MIGRATE_TEST_PAUSE_AT), its CIB record and logs, the worker's PID,
 * and probes of which cluster takes a plain client's write.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { expect } from 'vitest';
import { Migration, waitFor, waitTablesSynchronised, type MigrationOptions } from './migration';
import { sql, type RigServer } from './rig';
import { cibQuery, migrationRecord, vipAddresses } from './pacemaker';
import type { AgentResult } from './agent';
import { Writer } from './writer';
import { followAddress, type Router } from './routing';

export const SCHEMA = 'CREATE TABLE orders (id bigserial PRIMARY KEY, token uuid NOT NULL UNIQUE, note text)';
export const SEED = "INSERT INTO orders (token, note) SELECT gen_random_uuid(), 'seed' FROM generate_series(1, 300)";
/** The rig's two VIP stand-ins: the production address sits on postgres-vip while production is on the source. */
export const VIPS = { production_vip_resource: 'postgres-vip', target_vip_resource: 'postgres-vip-18' } as const;

export async function record(instance: string): Promise<Record<string, string>> {
  return migrationRecord(await cibQuery(), instance);
}

/** A migration of `databases` (schema SCHEMA, 300 seed rows), started by hand and copied to the target. */
export async function copiedMigration(
  instance: string,
  databases: string[],
  opts: Partial<Pick<MigrationOptions, 'source' | 'target' | 'schema' | 'sourceData'>> & { params?: Record<string, string> } = {},
): Promise<Migration> {
  const m = new Migration({
    instance,
    databases,
    schema: opts.schema ?? SCHEMA,
    sourceData: opts.sourceData ?? SEED,
    source: opts.source,
    target: opts.target,
    params: { ...VIPS, ...opts.params },
  });
  await m.setUp();
  const start = await m.run('start');
  expect(start.code, start.stderr).toBe(0);
  for (const db of databases) {
    await waitFor(`${db} copied`, async () => (await count(m.target, db)) >= 300, 120_000, 250);
    await waitTablesSynchronised(m.target, db, 120_000);
  }
  return m;
}

export async function count(server: RigServer, db: string, table = 'orders'): Promise<number> {
  return Number((await sql<{ n: string }>(server, db, `SELECT count(*)::text AS n FROM ${table}`))[0]!.n);
}

/**
 * A copied migration of one database with an application writing through the
 * production address (25 ms apart), running for a second already.
 */
export async function copiedUnderLoad(
  instance: string,
  db: string,
  params: Record<string, string> = {},
): Promise<{ m: Migration; router: Router; app: Writer; vips: ReturnType<typeof vipAddresses> }> {
  const m = await copiedMigration(instance, [db], { params });
  const vips = vipAddresses(await cibQuery());
  const router = followAddress(vips.production!, m.source, m.target);
  const app = new Writer(router.route, [db], 'orders', 25).start();
  await new Promise((r) => setTimeout(r, 1_000));
  return { m, router, app, vips };
}

/** Asks for the switch the way Pacemaker applies cutover_ready=true (reload-agent); `env` reaches the detached worker. */
export async function launchSwitch(m: Migration, env: NodeJS.ProcessEnv = {}, extra: Record<string, string> = {}): Promise<void> {
  const r = await m.run('reload-agent', { cutover_ready: 'true', ...extra }, { env });
  expect(r.code, r.stderr).toBe(0);
}

/** cutover_ready=false as Pacemaker applies it: acknowledges a failed switch, arms the next one. */
export async function disarm(m: Migration): Promise<void> {
  const r = await m.run('reload-agent', { cutover_ready: 'false' });
  expect(r.code, r.stderr).toBe(0);
}

/** Every cutover log of the migration (one per worker start), oldest first, as one text. */
export function switchLogs(m: Migration): string {
  if (!existsSync(m.stateDir)) return '';
  return readdirSync(m.stateDir)
    .filter((f) => /^\.pgtwin_migrate_cutover-\d{8}-\d{6}\.log$/.test(f))
    .sort()
    .map((f) => readFileSync(join(m.stateDir, f), 'utf8'))
    .join('');
}

/** How often `text` occurs in the switch logs so far (to wait for its next occurrence). */
export function occurrences(m: Migration, text: string): number {
  return switchLogs(m).split(text).length - 1;
}

/** Waits until the switch logs hold `text` more than `before` times. */
export async function untilLogged(m: Migration, text: string, before = 0, timeoutMs = 120_000): Promise<void> {
  await waitFor(`"${text}" in the cutover log`, async () => occurrences(m, text) > before, timeoutMs, 50).catch((err: Error) => {
    throw new Error(`${err.message}; cutover logs:\n${switchLogs(m).slice(-6000)}`);
  });
}

/** The worker has done `step` and holds there (PGTWIN_MIGRATE_TEST_PAUSE_AT); `before`: pauses seen earlier. */
export async function untilPausedAfter(m: Migration, step: string, before = 0, timeoutMs = 120_000): Promise<void> {
  await untilLogged(m, `paused after step ${step} `, before, timeoutMs);
}

export interface LeaseValue {
  node: string;
  pid: number;
  start: string;
  nonce: string;
  seq: number;
}

export async function lease(instance: string): Promise<LeaseValue | undefined> {
  const v = (await record(instance))['cutover-lease'];
  return v ? (JSON.parse(v) as LeaseValue) : undefined;
}

/** The PID of the worker holding the lease now. */
export async function workerPid(instance: string): Promise<number> {
  const l = await lease(instance);
  expect(l?.pid ?? 0, 'a worker holds the lease').toBeGreaterThan(0);
  return l!.pid;
}

export function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^\S+ \(.*\) [ZX] /.test(stat);
  } catch {
    return false;
  }
}

/** kill -9 of the worker, returned once the process is gone. */
export async function killWorker(pid: number): Promise<void> {
  process.kill(pid, 'SIGKILL');
  await waitFor(`worker ${pid} gone`, async () => !alive(pid), 20_000, 20);
}

/** For clean-up after a failed test: ends the worker that holds the lease, if it still runs. */
export async function endWorker(m: Migration): Promise<void> {
  const l = await lease(m.opts.instance).catch(() => undefined);
  if (l && l.pid > 0 && alive(l.pid)) await killWorker(l.pid).catch(() => undefined);
}

/** Clean-up of a migration of these tests: its worker ended first (a failed test may leave one acting), then everything it made. */
export async function dispose(m: Migration | undefined): Promise<void> {
  if (!m) return;
  await endWorker(m);
  await m.cleanup();
}

/** One monitor, as Pacemaker runs the recurring one. */
export function monitor(m: Migration, extra: Record<string, string> = {}, env: NodeJS.ProcessEnv = {}): Promise<AgentResult> {
  return m.run('monitor', { cutover_ready: 'true', ...extra }, { interval: 10_000, env });
}

/** Until the switch is no longer running (complete, failed or blocked); returns its record. */
export async function untilSwitchEnds(instance: string, timeoutMs = 240_000): Promise<Record<string, string>> {
  return waitFor('the switch ended', async () => {
    const r = await record(instance);
    return r['cutover-state'] !== 'running' ? r : undefined;
  }, timeoutMs, 200);
}

/**
 * Runs monitors, one after another as Pacemaker would (every `everyMs`),
 * until the switch's state is `state`; returns every monitor's result.
 */
export async function monitorsUntil(m: Migration, state: string, timeoutMs = 300_000, everyMs = 2_000, env: NodeJS.ProcessEnv = {}): Promise<AgentResult[]> {
  const runs: AgentResult[] = [];
  await waitFor(`cutover-state ${state}`, async () => {
    if ((await record(m.opts.instance))['cutover-state'] === state) return true;
    runs.push(await monitor(m, {}, env));
    return (await record(m.opts.instance))['cutover-state'] === state;
  }, timeoutMs, everyMs).catch((err: Error) => {
    const last = runs[runs.length - 1];
    throw new Error(`${err.message}; last monitor (exit ${last?.code}): ${last?.stderr ?? ''}\ncutover logs:\n${switchLogs(m).slice(-6000)}`);
  });
  return runs;
}

/**
 * A plain client's write straight to `server` (no address, no special
 * setting), committed: its token when acknowledged, undefined when refused
 * as read-only (25006). Anything else is thrown.
 */
export async function plainWrite(server: RigServer, db: string, note = 'probe'): Promise<string | undefined> {
  const token = randomUUID();
  const c = new pg.Client({ host: server.socket, port: server.port, user: 'postgres', database: db, application_name: 'test-probe' });
  c.on('error', () => undefined);
  await c.connect();
  try {
    await c.query('INSERT INTO orders (token, note) VALUES ($1, $2)', [token, note]);
    return token;
  } catch (err) {
    if ((err as { code?: string }).code === '25006') return undefined;
    throw err;
  } finally {
    await c.end().catch(() => undefined);
  }
}

export interface ProbeRound {
  readonly at: number;
  /** Tokens acknowledged (undefined: refused as read-only; 'error': the server could not be asked). */
  readonly source: string | undefined | 'error';
  readonly target: string | undefined | 'error';
}

/**
 * Plain client writes to BOTH clusters at once, every `everyMs`, until
 * stopped: a round in which both acknowledged means two writable clusters.
 */
export class SplitProbe {
  readonly rounds: ProbeRound[] = [];
  private running = true;
  private readonly loop: Promise<void>;

  constructor(source: RigServer, target: RigServer, db: string, everyMs = 200) {
    const once = (s: RigServer) => plainWrite(s, db, 'split probe').catch(() => 'error' as const);
    this.loop = (async () => {
      while (this.running) {
        const at = Date.now();
        const [a, b] = await Promise.all([once(source), once(target)]);
        this.rounds.push({ at, source: a, target: b });
        await new Promise((r) => setTimeout(r, everyMs));
      }
    })();
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
  }

  /** Rounds in which both clusters took the write. */
  both(): ProbeRound[] {
    return this.rounds.filter((r) => isToken(r.source) && isToken(r.target));
  }

  /** Tokens acknowledged by either cluster. */
  acknowledged(): string[] {
    return this.rounds.flatMap((r) => [r.source, r.target]).filter(isToken);
  }
}

function isToken(v: string | undefined): v is string {
  return v !== undefined && v !== 'error';
}

/** Which of `tokens` are missing from orders on `server`. */
export async function missingTokens(server: RigServer, db: string, tokens: readonly string[]): Promise<string[]> {
  if (tokens.length === 0) return [];
  const rows = await sql<{ t: string }>(server, db, 'SELECT t::text FROM unnest($1::uuid[]) AS t WHERE NOT EXISTS (SELECT 1 FROM orders o WHERE o.token = t)', [tokens]);
  return rows.map((r) => r.t);
}

/** Apply and table-sync errors of the migration's subscriptions in one database of one server. */
export async function applyErrors(server: RigServer, db: string): Promise<number> {
  const rows = await sql<{ n: string }>(
    server,
    db,
    "SELECT coalesce(sum(apply_error_count + sync_error_count), 0)::text AS n FROM pg_stat_subscription_stats WHERE subname LIKE 'pgtwin_migrate%'",
  );
  return Number(rows[0]!.n);
}

/** A row written on the target (now production) reaches the source: the way back flows. */
export async function wayBackFlows(m: Migration, db: string, timeoutMs = 60_000): Promise<void> {
  const token = await plainWrite(m.target, db, 'way back check');
  expect(token, 'the target takes writes').toBeDefined();
  await waitFor(`${db}: a row written on the target reaches the source`, async () => (await missingTokens(m.source, db, [token!])).length === 0, timeoutMs, 100);
}
