/** Subscriptions on a subscriber: state, creation, switching, refresh, removal. */
import type pg from 'pg';
import { ident, literal, AGENT_SCHEMA } from './sql';
import { classify, PgFailure, sqlState, ALREADY_EXISTS } from './errors';

export interface SubscriptionInfo {
  readonly oid: number;
  readonly name: string;
  readonly enabled: boolean;
  readonly slotName: string | null;
  readonly conninfo: string;
  readonly publications: readonly string[];
  /** PID of the apply worker, when it runs. */
  readonly workerPid: number | null;
  readonly lastMsgReceiptTime: Date | null;
  readonly latestEndTime: Date | null;
  readonly tablesTotal: number;
  readonly tablesReady: number;
  /** Bytes the table-sync workers of this subscription have copied so far (running copies only). */
  readonly copyBytes: number;
  readonly applyErrorCount: number;
  readonly syncErrorCount: number;
  /** Tables of this database with rows of their own (outside system and agent schemas; partitions too) the subscription does not cover. */
  readonly unsubscribedTables: number;
}

/** The subscription named `name` in the current database, or undefined. */
export async function readSubscription(c: pg.Client, name: string, serverMajor: number): Promise<SubscriptionInfo | undefined> {
  // Parallel apply workers (16+) have a leader; the apply worker is its own leader.
  const leaderOnly = serverMajor >= 16 ? 'AND coalesce(w.leader_pid, w.pid) = w.pid' : '';
  const viaAncestor = serverMajor >= 12 ? 'c.relispartition AND r.srrelid IN (SELECT relid FROM pg_partition_ancestors(c.oid))' : 'false';
  const { rows } = await c.query<{
    oid: number;
    subname: string;
    subenabled: boolean;
    subslotname: string | null;
    subconninfo: string;
    subpublications: string[];
    worker_pid: number | null;
    last_msg_receipt_time: Date | null;
    latest_end_time: Date | null;
    total: number;
    ready: number;
    copy_bytes: string;
    apply_error_count: string | null;
    sync_error_count: string | null;
    unsubscribed: number;
  }>(
    `SELECT s.oid::int AS oid, s.subname, s.subenabled, s.subslotname::text, s.subconninfo, s.subpublications,
            w.pid AS worker_pid, w.last_msg_receipt_time, w.latest_end_time,
            (SELECT count(*)::int FROM pg_subscription_rel r WHERE r.srsubid = s.oid) AS total,
            (SELECT count(*)::int FROM pg_subscription_rel r WHERE r.srsubid = s.oid AND r.srsubstate = 'r') AS ready,
            (SELECT coalesce(sum(p.bytes_processed), 0)::text FROM pg_stat_progress_copy p
               JOIN pg_subscription_rel r ON r.srrelid = p.relid AND r.srsubid = s.oid
              WHERE p.datid = s.subdbid AND p.command = 'COPY FROM') AS copy_bytes,
            st.apply_error_count::text, st.sync_error_count::text,
            (SELECT count(*)::int FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE c.relkind = 'r' AND c.relpersistence = 'p'
                AND n.nspname NOT IN ('pg_catalog', 'information_schema', '${AGENT_SCHEMA}')
                AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'
                -- A partition is covered when it is subscribed itself, or its root is (a publication through the root).
                AND NOT EXISTS (SELECT 1 FROM pg_subscription_rel r
                                 WHERE r.srsubid = s.oid
                                   AND (r.srrelid = c.oid OR (${viaAncestor})))) AS unsubscribed
       FROM pg_subscription s
       LEFT JOIN pg_stat_subscription w ON w.subid = s.oid AND w.relid IS NULL AND w.pid IS NOT NULL ${leaderOnly}
       LEFT JOIN pg_stat_subscription_stats st ON st.subid = s.oid
      WHERE s.subname = $1 AND s.subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())`,
    [name],
  );
  const r = rows[0];
  if (!r) return undefined;
  return {
    oid: r.oid,
    name: r.subname,
    enabled: r.subenabled,
    slotName: r.subslotname,
    conninfo: r.subconninfo,
    publications: r.subpublications,
    workerPid: r.worker_pid,
    lastMsgReceiptTime: r.last_msg_receipt_time,
    latestEndTime: r.latest_end_time,
    tablesTotal: r.total,
    tablesReady: r.ready,
    copyBytes: Number(r.copy_bytes),
    applyErrorCount: Number(r.apply_error_count ?? 0),
    syncErrorCount: Number(r.sync_error_count ?? 0),
    unsubscribedTables: r.unsubscribed,
  };
}

/** What the cluster-wide views say about one subscription (no per-database catalog needed). */
export interface SubscriptionSummary {
  readonly oid: number;
  readonly name: string;
  readonly database: string;
  readonly enabled: boolean;
  readonly workerPid: number | null;
  /** Table-sync workers running now: an initial copy (or the copy of new tables) is under way. */
  readonly syncWorkers: number;
  readonly copyBytes: number;
  readonly applyErrorCount: number;
  readonly syncErrorCount: number;
}

/**
 * Several subscriptions through one session: pg_subscription and the
 * statistics views are shared by all databases of a server.
 */
export async function readSubscriptionSummaries(c: pg.Client, names: readonly string[], serverMajor: number): Promise<Map<string, SubscriptionSummary>> {
  const leaderOnly = serverMajor >= 16 ? 'AND coalesce(w.leader_pid, w.pid) = w.pid' : '';
  const { rows } = await c.query<{
    oid: number;
    subname: string;
    datname: string;
    subenabled: boolean;
    worker_pid: number | null;
    sync_workers: number;
    copy_bytes: string;
    apply_error_count: string | null;
    sync_error_count: string | null;
  }>(
    `SELECT s.oid::int AS oid, s.subname, d.datname, s.subenabled, w.pid AS worker_pid,
            (SELECT count(*)::int FROM pg_stat_subscription x WHERE x.subid = s.oid AND x.relid IS NOT NULL AND x.pid IS NOT NULL) AS sync_workers,
            (SELECT coalesce(sum(p.bytes_processed), 0)::text FROM pg_stat_progress_copy p WHERE p.datid = s.subdbid AND p.command = 'COPY FROM') AS copy_bytes,
            st.apply_error_count::text, st.sync_error_count::text
       FROM pg_subscription s JOIN pg_database d ON d.oid = s.subdbid
       LEFT JOIN pg_stat_subscription w ON w.subid = s.oid AND w.relid IS NULL AND w.pid IS NOT NULL ${leaderOnly}
       LEFT JOIN pg_stat_subscription_stats st ON st.subid = s.oid
      WHERE s.subname = ANY($1::text[])`,
    [names],
  );
  return new Map(
    rows.map((r) => [
      `${r.datname}\0${r.subname}`,
      {
        oid: r.oid,
        name: r.subname,
        database: r.datname,
        enabled: r.subenabled,
        workerPid: r.worker_pid,
        syncWorkers: r.sync_workers,
        copyBytes: Number(r.copy_bytes),
        applyErrorCount: Number(r.apply_error_count ?? 0),
        syncErrorCount: Number(r.sync_error_count ?? 0),
      },
    ]),
  );
}

export interface CreateSubscription {
  readonly name: string;
  readonly conninfo: string;
  readonly publication: string;
  readonly slot: string;
  readonly enabled: boolean;
  readonly copyData: boolean;
  readonly createSlot: boolean;
  /** The subscriber's major version: the origin option needs 16. */
  readonly subscriberMajor: number;
  /**
   * Which changes the subscription takes: `any` (also rows that reached the
   * publisher by its own logical replication: the forward direction must
   * carry them) or `none` (only rows written on the publisher itself: the
   * reverse direction, so forward-replicated rows are never sent back).
   * Default `none`. Subscribers before 16 take every change whatever is asked.
   */
  readonly origin?: 'any' | 'none';
}

/** CREATE SUBSCRIPTION; the slot is created on the publisher by the subscriber's server. */
export async function createSubscription(c: pg.Client, s: CreateSubscription): Promise<void> {
  const options = [
    `slot_name = ${literal(s.slot)}`,
    `create_slot = ${s.createSlot}`,
    `copy_data = ${s.copyData}`,
    `enabled = ${s.enabled}`,
    'disable_on_error = false',
  ];
  if (s.subscriberMajor >= 16) options.push(`origin = ${s.origin === 'any' ? 'any' : 'none'}`);
  try {
    await c.query(
      `CREATE SUBSCRIPTION ${ident(s.name)} CONNECTION ${literal(s.conninfo)} PUBLICATION ${ident(s.publication)} WITH (${options.join(', ')})`,
    );
  } catch (err) {
    if (ALREADY_EXISTS.has(sqlState(err) ?? '')) return;
    throw err;
  }
}

/** The subscription's origin option (16+; undefined before, where every change is taken). */
export async function subscriptionOrigin(c: pg.Client, name: string, subscriberMajor: number): Promise<string | undefined> {
  if (subscriberMajor < 16) return undefined;
  const { rows } = await c.query<{ suborigin: string }>(
    `SELECT suborigin FROM pg_subscription
      WHERE subname = $1 AND subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())`,
    [name],
  );
  return rows[0]?.suborigin;
}

/** Changes the origin option; the apply worker restarts and resumes from its slot. */
export async function setSubscriptionOrigin(c: pg.Client, name: string, origin: 'any' | 'none'): Promise<void> {
  await c.query(`ALTER SUBSCRIPTION ${ident(name)} SET (origin = ${origin === 'any' ? 'any' : 'none'})`);
}

export async function setSubscriptionEnabled(c: pg.Client, name: string, enabled: boolean): Promise<void> {
  await c.query(`ALTER SUBSCRIPTION ${ident(name)} ${enabled ? 'ENABLE' : 'DISABLE'}`);
}

/**
 * How the apply worker commits: `off` (the default, what CREATE SUBSCRIPTION
 * leaves) or `local` (each applied transaction flushed at once). Taken up at
 * the worker's next transaction, without a restart.
 */
export async function setSubscriptionCommit(c: pg.Client, name: string, mode: 'off' | 'local'): Promise<void> {
  await c.query(`ALTER SUBSCRIPTION ${ident(name)} SET (synchronous_commit = ${literal(mode)})`);
}

export async function setSubscriptionConnection(c: pg.Client, name: string, conninfo: string): Promise<void> {
  await c.query(`ALTER SUBSCRIPTION ${ident(name)} CONNECTION ${literal(conninfo)}`);
}

/** Adds tables published since the last refresh and copies them; the subscription keeps running. */
export async function refreshSubscription(c: pg.Client, name: string): Promise<void> {
  await c.query(`ALTER SUBSCRIPTION ${ident(name)} REFRESH PUBLICATION WITH (copy_data = true)`);
}

export interface DropResult {
  readonly dropped: boolean;
  /** A slot the publisher still holds because it could not be reached. */
  readonly remoteSlotLeft: string | null;
  readonly publisherError: string | null;
}

/**
 * Drops the subscription and, through it, its slot on the publisher. When
 * the publisher cannot be reached, the subscription is detached from its
 * slot and dropped anyway; the slot is reported so it can be dropped later.
 */
export async function dropSubscription(c: pg.Client, name: string, where: string): Promise<DropResult> {
  const { rows } = await c.query<{ subslotname: string | null; subenabled: boolean }>(
    `SELECT subslotname::text, subenabled FROM pg_subscription
      WHERE subname = $1 AND subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())`,
    [name],
  );
  const sub = rows[0];
  if (!sub) return { dropped: false, remoteSlotLeft: null, publisherError: null };
  try {
    await c.query(`DROP SUBSCRIPTION IF EXISTS ${ident(name)}`);
    return { dropped: true, remoteSlotLeft: null, publisherError: null };
  } catch (err) {
    const failure = classify(err, where);
    if (!/could not connect|connection to server|could not drop replication slot|could not receive|could not translate|timeout/i.test(String((err as Error).message))) {
      throw failure;
    }
    await c.query(`ALTER SUBSCRIPTION ${ident(name)} DISABLE`);
    await c.query(`ALTER SUBSCRIPTION ${ident(name)} SET (slot_name = NONE)`);
    await c.query(`DROP SUBSCRIPTION IF EXISTS ${ident(name)}`);
    return { dropped: true, remoteSlotLeft: sub.subslotname, publisherError: failure.message };
  }
}

/** Tables in the subscription (pg_subscription_rel), with their sync state letter. */
export async function subscriptionTables(c: pg.Client, subOid: number): Promise<Array<{ schema: string; table: string; state: string }>> {
  const { rows } = await c.query<{ nspname: string; relname: string; srsubstate: string }>(
    `SELECT n.nspname, cl.relname, r.srsubstate
       FROM pg_subscription_rel r JOIN pg_class cl ON cl.oid = r.srrelid JOIN pg_namespace n ON n.oid = cl.relnamespace
      WHERE r.srsubid = $1`,
    [subOid],
  );
  return rows.map((r) => ({ schema: r.nspname, table: r.relname, state: r.srsubstate }));
}

export function isPgFailure(err: unknown): err is PgFailure {
  return err instanceof PgFailure;
}
