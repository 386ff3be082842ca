/** Replication slots on a publisher: lag, health, proof of emptiness, removal. */
import type pg from 'pg';
import { ident } from './sql';

export interface SlotInfo {
  readonly name: string;
  readonly database: string;
  readonly active: boolean;
  readonly activePid: number | null;
  readonly confirmedFlushLsn: string | null;
  /** 'reserved' | 'extended' | 'unreserved' | 'lost' */
  readonly walStatus: string | null;
  /** Why the slot can no longer be used, when PostgreSQL says so. */
  readonly invalidated: string | null;
  /** The publisher's WAL position: current insert LSN, or replay LSN on a standby. */
  readonly walLsn: string;
  /** Bytes of WAL the subscriber has not confirmed (publisher-side lag). */
  readonly lagBytes: number | null;
  /** The walsender's replay lag in seconds, when it has measured one. */
  readonly replayLagSeconds: number | null;
}

type SlotRow = {
  slot_name: string;
  database: string;
  active: boolean;
  active_pid: number | null;
  confirmed_flush_lsn: string | null;
  wal_status: string | null;
  invalidated: string | null;
  wal_lsn: string;
  lag_bytes: string | null;
  replay_lag: number | null;
};

/** Several slots of one server in one query (slots are cluster-wide, any database sees them). */
export async function readSlots(c: pg.Client, names: readonly string[], serverMajor: number): Promise<Map<string, SlotInfo>> {
  const invalidation = serverMajor >= 17 ? 's.invalidation_reason' : serverMajor >= 16 ? "CASE WHEN s.conflicting THEN 'conflicting' END" : 'NULL::text';
  const { rows } = await c.query<SlotRow>(
    `WITH pos AS (SELECT CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END AS lsn)
     SELECT s.slot_name, s.database, s.active, s.active_pid, s.confirmed_flush_lsn::text,
            s.wal_status, ${invalidation} AS invalidated, pos.lsn::text AS wal_lsn,
            GREATEST(pg_wal_lsn_diff(pos.lsn, s.confirmed_flush_lsn), 0)::bigint::text AS lag_bytes,
            EXTRACT(epoch FROM r.replay_lag)::float8 AS replay_lag
       FROM pg_replication_slots s CROSS JOIN pos
       LEFT JOIN pg_stat_replication r ON r.pid = s.active_pid
      WHERE s.slot_name = ANY($1::text[])`,
    [names],
  );
  return new Map(
    rows.map((r) => [
      r.slot_name,
      {
        name: r.slot_name,
        database: r.database,
        active: r.active,
        activePid: r.active_pid,
        confirmedFlushLsn: r.confirmed_flush_lsn,
        walStatus: r.wal_status,
        invalidated: r.invalidated ?? (r.wal_status === 'lost' ? 'wal_removed' : null),
        walLsn: r.wal_lsn,
        lagBytes: r.lag_bytes === null ? null : Number(r.lag_bytes),
        replayLagSeconds: r.replay_lag,
      },
    ]),
  );
}

export async function readSlot(c: pg.Client, name: string, serverMajor: number): Promise<SlotInfo | undefined> {
  return (await readSlots(c, [name], serverMajor)).get(name);
}

export async function slotExists(c: pg.Client, name: string): Promise<boolean> {
  const { rowCount } = await c.query('SELECT 1 FROM pg_replication_slots WHERE slot_name = $1', [name]);
  return (rowCount ?? 0) > 0;
}

/**
 * Drops a slot if it exists. An active slot (a walsender still streaming
 * from it) is refused: end the subscription first.
 */
export async function dropSlot(c: pg.Client, name: string): Promise<boolean> {
  if (!(await slotExists(c, name))) return false;
  await c.query('SELECT pg_drop_replication_slot($1)', [name]);
  return true;
}

/**
 * Counts the data changes (Insert, Update, Delete, Truncate messages of the
 * pgoutput protocol) a slot still holds for a publication, without
 * consuming them. Only an inactive slot can be peeked.
 */
export async function pendingChanges(c: pg.Client, slot: string, publication: string, protoVersion: number): Promise<number> {
  const { rows } = await c.query<{ n: string }>(
    `SELECT count(*)::text AS n
       FROM pg_logical_slot_peek_binary_changes($1, NULL, NULL, 'proto_version', $2, 'publication_names', $3)
      WHERE get_byte(data, 0) IN (73, 85, 68, 84)`,
    [slot, String(protoVersion), ident(publication)],
  );
  return Number(rows[0]?.n ?? 0);
}

/**
 * The data changes an inactive slot holds for a publication in transactions
 * that began before `upto`, split by where they came from: `looped`, the
 * commit positions of the transactions applied there by the replication
 * origin named `origin` (pgoutput sends an Origin message, 'O' = 79: Int64
 * LSN then the name, NUL-terminated, in every transaction that has one), as
 * their Begin messages ('B' = 66, Int64 final LSN first) give them — what
 * ALTER SUBSCRIPTION … SKIP (lsn = …) takes —, and `other`, the number of
 * data changes of every other transaction.
 */
export async function changesByOrigin(
  c: pg.Client,
  slot: string,
  publication: string,
  protoVersion: number,
  origin: string,
  upto: string,
): Promise<{ looped: string[]; other: number }> {
  const { rows } = await c.query<{ looped: string[] | null; other: string }>(
    `WITH m AS (SELECT lsn, xid, data FROM pg_logical_slot_peek_binary_changes($1, $5::pg_lsn, NULL, 'proto_version', $2, 'publication_names', $3)),
          o AS (SELECT DISTINCT xid FROM m WHERE get_byte(data, 0) = 79 AND length(data) > 10
                  AND substring(data FROM 10 FOR length(data) - 10) = convert_to($4, 'UTF8'))
     SELECT (SELECT array_agg(f ORDER BY f::pg_lsn) FROM (
               SELECT coalesce(nullif(ltrim(upper(encode(substring(data FROM 2 FOR 4), 'hex')), '0'), ''), '0') || '/' ||
                      coalesce(nullif(ltrim(upper(encode(substring(data FROM 6 FOR 4), 'hex')), '0'), ''), '0') AS f
                 FROM m WHERE get_byte(data, 0) = 66 AND xid IN (SELECT xid FROM o)) b) AS looped,
            (SELECT count(*) FROM m WHERE get_byte(data, 0) IN (73, 85, 68, 84) AND xid NOT IN (SELECT xid FROM o))::text AS other`,
    [slot, String(protoVersion), ident(publication), origin, upto],
  );
  return { looped: rows[0]?.looped ?? [], other: Number(rows[0]?.other ?? 0) };
}

/** pgoutput protocol version a server of this major speaks (peeks need one it accepts). */
export function pgoutputProtoVersion(major: number): number {
  return major >= 16 ? 4 : major >= 15 ? 3 : major >= 14 ? 2 : 1;
}
