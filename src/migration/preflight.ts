/**
 * The pre-flight checks of DESIGN §7, run by validate-all at depth 10, by
 * `pgtwin-migrate preflight` and at every start. Each finding is one line:
 * what is wrong, where (cluster, address, database), how to fix it.
 */
import type pg from 'pg';
import type { Plan } from './plan';
import { connectOptions } from './plan';
import { connect, describe, type Endpoint } from '../pg/connection';
import { serverFacts, existingDatabases, type ServerFacts } from '../pg/server';
import { PgFailure, classify, type FailureKind } from '../pg/errors';
import { tablesWithoutIdentity, userTables, existingTables, nonEmptyTables, largeObjectCount, findPgDump, schemaCopyCommand } from '../pg/schema';
import { tableKey, type TableName } from '../pg/publication';
import { lookupPassword } from '../pg/pgpass';
import { readResourcesSection, findAttribute } from '../cluster/resources';
import { settleAll } from './parallel';
import type { DatabaseObjects } from './names';
import type { Logger } from '../ocf/log';
import { shellWord } from '../ocf/text';
import { ident } from '../pg/sql';

export interface Finding {
  readonly level: 'error' | 'warning';
  readonly where: string;
  readonly what: string;
  readonly fix: string;
  /** A connection that failed for lack of reach (transient), not configuration. */
  readonly unreachable?: boolean;
  /** What kind of failure, when the finding is a failed connection or a missing database. */
  readonly kind?: FailureKind | 'missing-database';
  readonly database?: string;
  /** The server's own words, for the log. */
  readonly serverMessage?: string;
}

/**
 * The lines the seed's troubleshooting guide shows for these failures,
 * logged beside the agent's own one-line reason so DBAs find them.
 */
export function seedLines(f: Finding): Array<['err' | 'warn', string]> {
  switch (f.kind) {
    case 'missing-database':
      return [
        ['err', `Failed to create subscription for database: ${f.database}`],
        ['err', `database "${f.database}" does not exist`],
      ];
    case 'no-password':
      return [['warn', 'Could not parse replication user from .pgpass']];
    case 'auth':
      return [['err', `connection failed: FATAL: ${f.serverMessage ?? /password authentication failed[^;]*/.exec(f.what)?.[0] ?? 'password authentication failed'}`]];
    default:
      return [];
  }
}

export const formatFinding = (f: Finding) => `${f.where}: ${f.what}${f.fix ? `; ${f.fix}` : ''}`;

export interface DatabaseFacts {
  readonly objects: DatabaseObjects;
  /** The forward subscription already exists: the database is adopted, not set up anew. */
  readonly subscribed: boolean;
  /** Published tables the target lacks (fresh databases only). */
  readonly missingOnTarget: readonly TableName[];
  readonly publishedCount: number;
}

export interface PreflightResult {
  readonly findings: readonly Finding[];
  readonly source?: ServerFacts;
  readonly target?: ServerFacts;
  readonly databases: ReadonlyMap<string, DatabaseFacts>;
}

const list = (tables: readonly TableName[], max = 5) =>
  tables.slice(0, max).map(tableKey).join(', ') + (tables.length > max ? ` and ${tables.length - max} more` : '');

function failureFinding(err: unknown, where: string): Finding {
  const f = err instanceof PgFailure ? err : classify(err, where);
  // The classified message already says what to do; only plain SQL errors get a pointer.
  const raw = String((err as Error)?.message ?? '').split('\n')[0];
  return {
    level: 'error',
    where,
    what: f.message.startsWith(`${where}: `) ? f.message.slice(where.length + 2) : f.message,
    fix: f.kind === 'sql' ? 'see the PostgreSQL log there' : '',
    unreachable: f.kind === 'unreachable' || f.kind === 'timeout',
    kind: f.kind,
    serverMessage: f.kind === 'auth' && !(err instanceof PgFailure) ? raw : undefined,
  };
}

function serverFindings(where: string, side: 'source' | 'target', s: ServerFacts, n: number, plan: Plan): Finding[] {
  const out: Finding[] = [];
  const setting = (name: string) => Number(s.settings[name] ?? 'NaN');
  if (s.walLevel !== 'logical') {
    out.push({ level: 'error', where, what: `wal_level is ${s.walLevel}, logical replication needs logical`, fix: 'set wal_level = logical and restart PostgreSQL' });
  }
  if (!s.superuser) {
    out.push({ level: 'error', where, what: `${plan.cfg.migration_dbuser} is not a superuser (event triggers and subscriptions need it)`, fix: `ALTER ROLE ${ident(plan.cfg.migration_dbuser)} SUPERUSER` });
  }
  const needs: Array<[string, number, string]> = [
    ['max_replication_slots', 4 * n, `4 × ${n} databases`],
    ['max_wal_senders', 2 * n, `2 × ${n} databases`],
    ['max_worker_processes', 2 * n, `2 × ${n} databases`],
    ['max_logical_replication_workers', n + 1, `${n} databases + 1`],
  ];
  // PostgreSQL 18 counts replication origins (one per apply and per table-sync worker) on their own.
  if (s.major >= 18) needs.push(['max_active_replication_origins', 2 * n, `2 × ${n} databases`]);
  for (const [name, min, why] of needs) {
    if (setting(name) < min) {
      out.push({ level: 'error', where, what: `${name} is ${s.settings[name]}, needs at least ${min} (${why})`, fix: `set ${name} = ${min} and restart PostgreSQL` });
    }
  }
  if (side === 'source' && s.settings.max_slot_wal_keep_size === '-1') {
    out.push({
      level: 'warning',
      where,
      what: 'max_slot_wal_keep_size is unlimited: a stalled subscription retains WAL until the disk is full',
      fix: 'set max_slot_wal_keep_size (e.g. 50GB) to bound it',
    });
  }
  return out;
}

/**
 * After the cutover the target publishes the way back (reverse replication):
 * its slots retain WAL there as the forward ones did on the source.
 */
function reverseRetentionFindings(where: string, s: ServerFacts): Finding[] {
  if (s.settings.max_slot_wal_keep_size !== '-1') return [];
  return [
    {
      level: 'warning',
      where,
      what: 'max_slot_wal_keep_size is unlimited: after the cutover the target publishes the way back, and a stalled reverse subscription retains WAL until the disk is full',
      fix: 'set max_slot_wal_keep_size (e.g. 50GB) on the target to bound it',
    },
  ];
}

/**
 * A replication VIP must lead to its own cluster before and after the
 * cutover; the VIP resources' addresses are swapped by it. A replication
 * VIP equal to one of them points at the wrong cluster once the addresses
 * have moved: the cutover fails after its point of no return.
 */
async function replicationVipFindings(plan: Plan): Promise<Finding[]> {
  const { cfg } = plan;
  let resources;
  try {
    resources = await readResourcesSection(plan.deadline.stepMs(10_000));
  } catch {
    // Without the CIB (no Pacemaker here) there is nothing to compare; the cutover reads the VIPs itself.
    return [];
  }
  const addresses = [cfg.production_vip_resource, cfg.target_vip_resource].flatMap((rsc) => {
    const ref = rsc ? findAttribute(resources, rsc, cfg.vip_parameter) : undefined;
    return ref && ref !== 'no-resource' && ref.value ? [{ rsc, address: ref.value }] : [];
  });
  const same = (a: string, b: string) => a.trim().toLowerCase() === b.trim().toLowerCase();
  const out: Finding[] = [];
  for (const [param, side] of [['source_replication_vip', 'source'], ['target_replication_vip', 'target']] as const) {
    const value = cfg[param];
    const hit = addresses.find((a) => value && same(a.address, value));
    if (!hit) continue;
    out.push({
      level: 'error',
      where: `${param} ${value}`,
      what: `is the address (${cfg.vip_parameter}) of VIP resource ${hit.rsc}, which the cutover moves to the other cluster`,
      fix: `set ${param} to an address that always leads to the ${side} cluster`,
    });
  }
  return out;
}

/**
 * A session for the server-wide checks: the first listed database that
 * exists there (a missing one is reported by the database check, once).
 */
async function serverSession(ep: Endpoint, dbs: readonly string[], plan: Plan, findings: Finding[]): Promise<pg.Client | undefined> {
  let first: { err: unknown; db: string } | undefined;
  for (const db of dbs) {
    try {
      return await connect(ep, db, connectOptions(plan));
    } catch (err) {
      first ??= { err, db };
      if (!(err instanceof PgFailure && err.kind === 'no-database')) break;
    }
  }
  if (first) findings.push(failureFinding(first.err, describe(ep, first.db)));
  return undefined;
}

async function tryConnect(ep: Endpoint, db: string, plan: Plan, findings: Finding[]): Promise<pg.Client | undefined> {
  try {
    return await connect(ep, db, connectOptions(plan));
  } catch (err) {
    findings.push(failureFinding(err, describe(ep, db)));
    return undefined;
  }
}

function passfileFindings(ep: Endpoint, databases: readonly string[]): Finding[] {
  const where = `${ep.role} ${ep.host}:${ep.port}`;
  const missing: string[] = [];
  for (const db of databases) {
    const r = lookupPassword(ep.passfile, { host: ep.host, port: ep.port, database: db, user: ep.user });
    if (!r.ok && r.problem !== 'no-entry') return [{ level: 'error', where, what: r.message.split(';')[0]!, fix: r.message.split('; ')[1] ?? 'fix it' }];
    if (!r.ok) missing.push(db);
  }
  if (missing.length === 0) return [];
  return [
    {
      level: 'warning',
      kind: 'no-password',
      where,
      what: `${ep.passfile} has no entry for ${ep.host}:${ep.port}:{${missing.slice(0, 3).map((d) => JSON.stringify(d)).join(',')}${missing.length > 3 ? ',…' : ''}}:${ep.user}`,
      fix: 'add the entries (needed unless the server trusts this host)',
    },
  ];
}

export async function preflight(plan: Plan): Promise<PreflightResult> {
  const { cfg } = plan;
  const findings: Finding[] = [];
  const dbs = cfg.databaseList;
  const sWhere = describe(plan.sourcePrimary);
  const tWhere = describe(plan.targetPrimary);

  findings.push(...passfileFindings(plan.sourcePrimary, dbs), ...passfileFindings(plan.targetPrimary, dbs));
  findings.push(...(await replicationVipFindings(plan)));

  // Server-wide facts, through the first database each side has.
  const [sc, tc] = await Promise.all([serverSession(plan.sourcePrimary, dbs, plan, findings), serverSession(plan.targetPrimary, dbs, plan, findings)]);
  let source: ServerFacts | undefined;
  let target: ServerFacts | undefined;
  const missing = new Set<string>();
  try {
    if (sc) {
      source = await serverFacts(sc);
      findings.push(...serverFindings(sWhere, 'source', source, dbs.length, plan));
      const have = await existingDatabases(sc, dbs);
      for (const db of dbs.filter((d) => !have.has(d))) {
        missing.add(db);
        findings.push({ level: 'error', where: sWhere, what: `database ${JSON.stringify(db)} does not exist`, fix: 'fix databases or create it' });
      }
    }
    if (tc) {
      target = await serverFacts(tc);
      findings.push(...serverFindings(tWhere, 'target', target, dbs.length, plan));
      findings.push(...reverseRetentionFindings(tWhere, target));
      const have = await existingDatabases(tc, dbs);
      for (const db of dbs.filter((d) => !have.has(d))) {
        missing.add(db);
        findings.push({
          level: 'error',
          where: tWhere,
          what: `database ${JSON.stringify(db)} does not exist`,
          fix: `create it on the target first (createdb ${shellWord(db)})`,
          kind: 'missing-database',
          database: db,
        });
      }
    }
  } catch (err) {
    findings.push(failureFinding(err, sc && !source ? sWhere : tWhere));
  } finally {
    await Promise.all([sc?.end().catch(() => undefined), tc?.end().catch(() => undefined)]);
  }
  if (source && target && target.major < source.major) {
    findings.push({ level: 'error', where: tWhere, what: `target runs PostgreSQL ${target.major}, older than the source's ${source.major}`, fix: 'migrate to the same or a newer major version' });
  }
  if (cfg.source_node_role === 'Unpromoted') {
    findings.push(...(await standbyFindings(plan, dbs.find((d) => !missing.has(d)) ?? dbs[0]!, source)));
  }
  if (findings.some((f) => f.level === 'error')) return { findings, source, target, databases: new Map() };

  const databases = new Map<string, DatabaseFacts>();
  const perDb = await settleAll(cfg.objects.filter((o) => !missing.has(o.database)), 8, async (objects) => {
    const f: Finding[] = [];
    const facts = await databaseChecks(plan, objects, f);
    if (facts) databases.set(objects.database, facts);
    return f;
  });
  for (const r of perDb) {
    if (r.status === 'fulfilled') findings.push(...r.value);
    else findings.push(failureFinding(r.reason, 'pre-flight'));
  }

  const fresh = [...databases.values()].filter((d) => !d.subscribed && d.missingOnTarget.length > 0);
  if (fresh.length > 0 && cfg.schema_copy === 'auto' && source) {
    const dump = await findPgDump(cfg.target_pg_bindir, plan.deadline.stepMs(5_000));
    const where = cfg.target_pg_bindir ? `${cfg.target_pg_bindir}/pg_dump` : 'pg_dump on PATH';
    if (!dump) {
      findings.push({ level: 'error', where, what: `not found, and ${fresh.length} database(s) need their schema copied`, fix: 'install the target version\'s client programs and set target_pg_bindir' });
    } else if (dump.major < source.major) {
      findings.push({ level: 'error', where, what: `pg_dump ${dump.major} cannot dump the PostgreSQL ${source.major} source`, fix: `set target_pg_bindir to PostgreSQL ${source.major} or later client programs` });
    }
  }
  return { findings, source, target, databases };
}

async function standbyFindings(plan: Plan, db: string, source: ServerFacts | undefined): Promise<Finding[]> {
  const out: Finding[] = [];
  const where = describe(plan.slotHost);
  if (source && source.major < 16) {
    out.push({ level: 'error', where: describe(plan.sourcePrimary), what: `source_node_role=Unpromoted needs PostgreSQL 16 or later, the source runs ${source.major}`, fix: 'set source_node_role=Promoted' });
    return out;
  }
  const c = await tryConnect(plan.slotHost, db, plan, out);
  if (!c) return out;
  try {
    const s = await serverFacts(c);
    if (!s.inRecovery) {
      out.push({ level: 'error', where, what: 'source_replication_vip leads to a primary, not a standby', fix: 'point source_replication_vip at the Unpromoted node or set source_node_role=Promoted' });
    }
    if (s.settings.hot_standby_feedback !== 'on') {
      out.push({ level: 'error', where, what: 'hot_standby_feedback is off: the primary may remove rows the standby\'s slots still need', fix: 'set hot_standby_feedback = on on the standby and reload' });
    }
    if (s.walLevel !== 'logical') {
      out.push({ level: 'error', where, what: `wal_level is ${s.walLevel}`, fix: 'set wal_level = logical and restart the standby' });
    }
  } catch (err) {
    out.push(failureFinding(err, where));
  } finally {
    await c.end().catch(() => undefined);
  }
  return out;
}

/** Per-database checks; returns the facts start needs, or undefined when a side could not be reached. */
async function databaseChecks(plan: Plan, objects: DatabaseObjects, findings: Finding[]): Promise<DatabaseFacts | undefined> {
  const db = objects.database;
  const [sc, tc] = await Promise.all([tryConnect(plan.sourcePrimary, db, plan, findings), tryConnect(plan.targetPrimary, db, plan, findings)]);
  try {
    if (!sc || !tc) return undefined;
    const sWhere = describe(plan.sourcePrimary, db);
    const tWhere = describe(plan.targetPrimary, db);
    const { rowCount } = await tc.query(
      'SELECT 1 FROM pg_subscription WHERE subname = $1 AND subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())',
      [objects.forwardSub],
    );
    const subscribed = (rowCount ?? 0) > 0;
    const noIdentity = await tablesWithoutIdentity(sc);
    if (noIdentity.length > 0) {
      findings.push({
        level: 'error',
        where: sWhere,
        what: `${noIdentity.length} table(s) without primary key or replica identity: ${list(noIdentity)}; once published, their UPDATE and DELETE would fail`,
        fix: 'add a primary key, or ALTER TABLE … REPLICA IDENTITY FULL',
      });
    }
    const unlogged = await userTables(sc, 'u');
    if (unlogged.length > 0) {
      findings.push({ level: 'warning', where: sWhere, what: `unlogged tables are not replicated: ${list(unlogged)}`, fix: 'make them logged (ALTER TABLE … SET LOGGED) or recreate them after cutover' });
    }
    const los = await largeObjectCount(sc);
    if (los > 0) {
      findings.push({ level: 'warning', where: sWhere, what: `${los} large object(s) are not replicated by logical replication`, fix: 'copy them separately (pg_dump --large-objects) before cutover' });
    }
    const published = await userTables(sc);
    let missing: TableName[] = [];
    if (!subscribed) {
      const present = await existingTables(tc, published);
      missing = published.filter((t) => !present.has(tableKey(t)));
      const partial = missing.length > 0 && missing.length < published.length;
      if (partial || (missing.length > 0 && plan.cfg.schema_copy === 'never')) {
        findings.push({
          level: 'error',
          where: tWhere,
          what: `${missing.length} of ${published.length} published table(s) missing: ${list(missing)}`,
          fix: `create them first: ${schemaCopyCommand(plan.sourcePrimary, plan.targetPrimary, db, missing)}`,
        });
      }
      if (missing.length === 0) findings.push(...(await partitionFindings(plan, sc, tc, db)));
      const nonEmpty = await nonEmptyTables(tc, published.filter((t) => present.has(tableKey(t))));
      if (nonEmpty.length > 0) {
        findings.push({
          level: 'error',
          where: tWhere,
          what: `${nonEmpty.length} table(s) already hold rows, the initial copy would duplicate them: ${list(nonEmpty)}`,
          fix: 'empty them on the target (TRUNCATE) before the first start',
        });
      }
    }
    return { objects, subscribed, missingOnTarget: missing, publishedCount: published.length };
  } catch (err) {
    findings.push(failureFinding(err, `database ${JSON.stringify(db)}`));
    return undefined;
  } finally {
    await Promise.all([sc?.end().catch(() => undefined), tc?.end().catch(() => undefined)]);
  }
}

/**
 * Partitions are published as tables of their own (see createPublication):
 * each must exist on the target under its name, so a target whose
 * partitioned tables exist but are partitioned differently is refused here,
 * before a subscription fails on it. (Tables the target lacks altogether are
 * the schema copy's.)
 */
async function partitionFindings(plan: Plan, sc: pg.Client, tc: pg.Client, db: string): Promise<Finding[]> {
  const { rows } = await sc.query<{ nspname: string; relname: string }>(
    `SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind = 'r' AND c.relispartition AND c.relpersistence = 'p'
        AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'
      ORDER BY 1, 2`,
  );
  const partitions = rows.map((r) => ({ schema: r.nspname, table: r.relname }));
  const present = await existingTables(tc, partitions);
  const missing = partitions.filter((t) => !present.has(tableKey(t)));
  if (missing.length === 0) return [];
  return [
    {
      level: 'error',
      where: describe(plan.targetPrimary, db),
      what: `${missing.length} partition(s) of the source missing: ${list(missing)}; partitions are replicated as tables of their own, so the target must be partitioned like the source`,
      fix: `create them first: ${schemaCopyCommand(plan.sourcePrimary, plan.targetPrimary, db, missing)}`,
    },
  ];
}

/** Logs every finding, with the seed's own lines for the failures its guide describes. */
export function logFindings(log: Logger, findings: readonly Finding[]): void {
  for (const f of findings) {
    for (const [level, line] of seedLines(f)) log[level](line);
    (f.level === 'error' ? log.err : log.warn).call(log, formatFinding(f));
  }
}
