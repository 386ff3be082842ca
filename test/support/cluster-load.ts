/**
 * The cluster tests' load: databases with the writer's tables and one with
 * pgbench's, the writer and pgbench running in the client namespace through
 * the production address, and the checks of what they saw against what a
 * cluster holds.
 */
import { mkdirSync } from 'node:fs';
import { expect } from 'vitest';
import {
  WRITER_SCHEMA,
  WRITER_SEED,
  PGBENCH_HISTORY_KEY,
  PGBENCH_STATE_SQL,
  startWriter,
  startPgbench,
  readWriterRows,
  writerProblems,
  writerSummary,
  twoWritableClusters,
  outages,
  pgbenchSummary,
  pgbenchProblems,
  type WriteRecord,
  type PgbenchLine,
  type PgbenchState,
  type ClientProcess,
} from './load/clients.mjs';
import { clusterRig, clientHolder, password, createDatabases, primaryOf, sqlOn, withSocket, type Side } from './cluster';
import { waitFor } from './migration';

export interface LoadDatabases {
  /** Databases with the writer's tables. */
  readonly writer: readonly string[];
  /** The database pgbench runs TPC-B in. */
  readonly bank: string;
}

export function allDatabases(d: LoadDatabases): string[] {
  return [...d.writer, d.bank];
}

/** The databases on both clusters: the writer's tables (seeded on the source) and pgbench's (scale 1 on the source, empty on the target). */
export async function createLoadDatabases(d: LoadDatabases): Promise<void> {
  await createDatabases(d.writer, WRITER_SCHEMA);
  const source = await primaryOf('source');
  for (const db of d.writer) await sqlOn(source, db, WRITER_SEED);
  await createDatabases([d.bank], 'SELECT 1');
  const r = clusterRig();
  const target = await primaryOf('target');
  await withSocket(source, [r.pgbench, '-i', '-q', '-s', '1', '-U', r.appUser, d.bank]);
  await withSocket(target, [r.pgbench, '-i', '-q', '-I', 'dtp', '-U', r.appUser, d.bank]);
  for (const node of [source, target]) await sqlOn(node, d.bank, PGBENCH_HISTORY_KEY);
}

export interface Load {
  readonly writer: ClientProcess<WriteRecord>;
  readonly pgbench: ClientProcess<PgbenchLine>;
  /** Ends both clients (by PID) and returns what they recorded. */
  stop(): Promise<{ writes: WriteRecord[]; bench: PgbenchLine[] }>;
}

/**
 * The writer (2 workers per database, ~20 writes/s each) and pgbench (2
 * clients, ~40 transactions/s) from the client namespace, both through the
 * production address: after a cutover they reach whatever holds it.
 */
export function startLoad(name: string, d: LoadDatabases, opts: { ratePerWorker?: number; workers?: number; pgbenchRate?: number } = {}): Load {
  const r = clusterRig();
  const dir = `${r.dir}/clients/${name}`;
  mkdirSync(dir, { recursive: true });
  const ns = { namespacePid: clientHolder(), password: password() };
  const writer = startWriter(
    { host: r.vips.production.ip, port: r.port, user: r.appUser, databases: [...d.writer], workers: opts.workers ?? 2, ratePerWorker: opts.ratePerWorker ?? 20, out: `${dir}/writer.jsonl` },
    ns,
  );
  const pgbench = startPgbench(
    { pgbench: r.pgbench, host: r.vips.production.ip, port: r.port, user: r.appUser, database: d.bank, clients: 2, rate: opts.pgbenchRate ?? 40, dir: `${dir}/pgbench`, out: `${dir}/pgbench.jsonl` },
    ns,
  );
  return {
    writer,
    pgbench,
    async stop() {
      const [writes, bench] = await Promise.all([writer.stop(), pgbench.stop()]);
      return { writes, bench };
    },
  };
}

/** The cluster's system_identifier (a primary and its standbys share it). */
export async function systemIdentifier(side: Side): Promise<string> {
  const rows = await sqlOn<{ s: string }>(await primaryOf(side), 'postgres', 'SELECT system_identifier::text AS s FROM pg_control_system()');
  return rows[0]!.s;
}

/** Until the writer has had `n` writes acknowledged by the cluster `sysid` (the load runs, through that cluster). */
export async function waitAcknowledgedBy(load: Load, sysid: string, n = 20, timeoutMs = 60_000): Promise<void> {
  const since = load.writer.records().filter((w) => w.ok && w.server?.sysid === sysid).length;
  await waitFor(`${n} more writes acknowledged by cluster ${sysid}`, async () => load.writer.records().filter((w) => w.ok && w.server?.sysid === sysid).length >= since + n, timeoutMs, 250);
}

/** Every acknowledged write of the writer is on the side's primary exactly once (and nothing refused is there). */
export async function expectWritesOn(side: Side, writes: WriteRecord[], d: LoadDatabases): Promise<void> {
  const node = await primaryOf(side);
  for (const db of d.writer) {
    const rows = await readWriterRows((q) => sqlOn(node, db, q));
    expect(writerProblems(writes, db, rows), `${side} (${node}) ${db}`).toEqual([]);
  }
}

export async function pgbenchState(side: Side, bank: string): Promise<PgbenchState> {
  return (await sqlOn<PgbenchState>(await primaryOf(side), bank, PGBENCH_STATE_SQL))[0]!;
}

/** TPC-B's invariant on the side, and its history against what pgbench reported committed. */
export async function expectPgbenchOn(side: Side, bench: PgbenchLine[], bank: string): Promise<void> {
  expect(pgbenchProblems(bench, await pgbenchState(side, bank)), `${side} ${bank}`).toEqual([]);
}

/** Until the side's tables hold as many rows as the other side's (replication caught up after the load stopped). */
export async function waitSameRows(from: Side, to: Side, d: LoadDatabases, timeoutMs = 120_000): Promise<void> {
  const count = async (side: Side, db: string, sql: string) => (await sqlOn<{ n: string }>(await primaryOf(side), db, sql))[0]!.n;
  const sql = {
    writer: 'SELECT (SELECT count(*) FROM w_items) || \'/\' || (SELECT count(*) FROM w_events) || \'/\' || (SELECT sum(n) FROM w_counters) AS n',
    bank: 'SELECT (SELECT count(*) FROM pgbench_history) || \'/\' || (SELECT sum(abalance) FROM pgbench_accounts) AS n',
  };
  for (const db of d.writer) await waitFor(`${db}: ${to} has ${from}'s rows`, async () => (await count(from, db, sql.writer)) === (await count(to, db, sql.writer)), timeoutMs, 500);
  await waitFor(`${d.bank}: ${to} has ${from}'s rows`, async () => (await count(from, d.bank, sql.bank)) === (await count(to, d.bank, sql.bank)), timeoutMs, 500);
}

/** One line for the test log: what the clients did and the longest outage they saw. */
export function describeLoad(writes: WriteRecord[], bench: PgbenchLine[], names: Record<string, string> = {}): string {
  const s = writerSummary(writes);
  const by = Object.entries(s.byCluster).map(([k, n]) => `${names[k] ?? k}: ${n}`).join(', ');
  const o = outages(writes);
  const worst = o.reduce((m, x) => (x.ms > m.ms ? x : m), { db: '-', ms: 0, from: undefined, to: undefined });
  const b = pgbenchSummary(bench);
  return `writer: ${s.attempts} writes, ${s.acknowledged} acknowledged (${by}), ${s.refused} refused, ${s.inDoubt} in doubt, ${s.connectFailures} failed connections; ` +
    `longest outage ${worst.ms} ms (${worst.db}; per database ${o.map((x) => `${x.db} ${x.ms}`).join(', ')}); ` +
    `pgbench: ${b.committed} committed, ${b.inDoubt} in doubt, longest gap ${b.longestGap.ms} ms`;
}

export { twoWritableClusters, outages, writerSummary, pgbenchSummary };

/**
 * A second writer that bypasses the production address: straight to a node's
 * own address (an application configured with a host name, a reporting job, an
 * administrator's session). Its workers are numbered from 100.
 */
export function startBypassWriter(name: string, d: LoadDatabases, address: string): ClientProcess<WriteRecord> {
  const r = clusterRig();
  const dir = `${r.dir}/clients/${name}`;
  mkdirSync(dir, { recursive: true });
  return startWriter(
    { host: address, port: r.port, user: r.appUser, databases: [...d.writer], workers: 1, ratePerWorker: 10, workerBase: 100, out: `${dir}/bypass.jsonl` },
    { namespacePid: clientHolder(), password: password() },
  );
}
