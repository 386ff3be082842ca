/**
 * The write fence of a database (src/pg/sql/fence.sql): installed once in
 * every migrated database on both clusters, switched on where the production
 * address does not lead. Fencing waits for writes in flight (they hold the
 * locks the fence needs) up to a bound, then ends the sessions that hold them.
 *
 * The agent's own sessions run in session_replication_role = replica and so
 * pass the fence; they are recognised by backend PID, never by a name a
 * client could choose.
 */
import type pg from 'pg';
import FENCE_SQL from './sql/fence.sql';
import OWNER_CHECK_SQL from './sql/owner-check.sql';
import { sqlState } from './errors';

const DDL_FENCE = 'pgtwin_migrate_fence_ddl';

/** Creates or updates the fence's functions and event triggers; leaves the fence state as it is. */
export async function installFenceFunctions(c: pg.Client): Promise<void> {
  // One query string runs as one transaction: the owner check before and after the install, or nothing.
  await c.query(`${OWNER_CHECK_SQL}\n${FENCE_SQL}\n${OWNER_CHECK_SQL}`);
}

export interface FenceState {
  /** The DDL fence is on (the record of the database's state). */
  readonly fenced: boolean;
  readonly tables: number;
  /** Tables whose trigger is missing or in the other state. */
  readonly strays: readonly string[];
}

/** What the fence of the current database looks like now. */
export async function fenceState(c: pg.Client): Promise<FenceState | undefined> {
  const { rows } = await c.query<{ installed: boolean; fenced: boolean | null; tables: number; strays: string[] | null }>(
    `SELECT to_regproc('pgtwin_migrate.is_fenced') IS NOT NULL AS installed,
            (SELECT evtenabled <> 'D' FROM pg_event_trigger WHERE evtname = $1) AS fenced,
            (SELECT count(*)::int FROM pgtwin_migrate.fenceable_tables()) AS tables,
            (SELECT array_agg(f::text ORDER BY f::text) FROM pgtwin_migrate.fenceable_tables() f
              WHERE NOT pgtwin_migrate.fence_intact(f, coalesce((SELECT evtenabled <> 'D' FROM pg_event_trigger WHERE evtname = $1), false))) AS strays`,
    [DDL_FENCE],
  ).catch((err: unknown) => {
    if (sqlState(err) === '42883' || sqlState(err) === '3F000') return { rows: [{ installed: false, fenced: null, tables: 0, strays: null }] };
    throw err;
  });
  const r = rows[0]!;
  if (!r.installed || r.fenced === null) return undefined;
  return { fenced: r.fenced, tables: r.tables, strays: r.strays ?? [] };
}

/** Installs the fence in the given state (start), the tables' triggers included. */
export async function installFence(c: pg.Client, fenced: boolean, lockTimeoutMs: number): Promise<void> {
  await installFenceFunctions(c);
  if (fenced) await fence(c, { quiesceMs: lockTimeoutMs, agentPids: [], onEnd: () => undefined });
  else await lift(c, lockTimeoutMs);
}

export interface FenceOptions {
  /** How long writes in flight get before their sessions are ended. */
  readonly quiesceMs: number;
  /** Backends of the agent itself in this cluster (never waited for or ended). */
  readonly agentPids: readonly number[];
  /** Told about each session the fence ends. */
  readonly onEnd: (s: OpenTransaction) => void;
}

export interface OpenTransaction {
  readonly pid: number;
  readonly user: string;
  readonly since: Date | null;
  readonly backendType: string;
}

/**
 * Fences the current database: first DDL (no table can appear unseen), then,
 * once the transactions that had begun writing before are over, every
 * table. Returns the WAL insert position right after the fence: every write
 * of this database that was ever acknowledged lies before it.
 */
export async function fence(c: pg.Client, opts: FenceOptions): Promise<string> {
  const until = Date.now() + opts.quiesceMs;
  await c.query(`ALTER EVENT TRIGGER ${DDL_FENCE} ENABLE`);
  const { rows } = await c.query<{ t: Date }>('SELECT clock_timestamp() AS t');
  const fencedAt = rows[0]!.t;
  // Transactions that hold an xid and began before the DDL fence may still
  // create a table; wait for them (up to the bound), then end them.
  let open = await writersBefore(c, fencedAt, opts.agentPids);
  while (open.length > 0 && Date.now() < until) {
    await sleep(20);
    open = await writersBefore(c, fencedAt, opts.agentPids);
  }
  if (open.length > 0) {
    open.forEach(opts.onEnd);
    await terminate(c, open.map((t) => t.pid));
  }
  for (let attempt = 1; ; attempt++) {
    const left = Math.max(500, until - Date.now());
    try {
      await inTransaction(c, left, 'SELECT pgtwin_migrate.set_table_fences(true)');
      const { rows } = await c.query<{ lsn: string }>('SELECT pg_current_wal_insert_lsn()::text AS lsn');
      return rows[0]!.lsn;
    } catch (err) {
      const state = sqlState(err);
      // Lock not available (writes in flight past the bound) or a deadlock with one of them.
      if ((state !== '55P03' && state !== '40P01') || attempt >= 5) throw err;
      const holders = await lockHolders(c, opts.agentPids);
      const prepared = holders.find((h) => h.pid === 0);
      if (prepared) throw new Error(`a prepared transaction holds a lock on ${prepared.user}; COMMIT PREPARED or ROLLBACK PREPARED it first`);
      holders.forEach(opts.onEnd);
      await terminate(c, holders.map((h) => h.pid));
    }
  }
}

/** Lifts the fence of the current database: every table and DDL, in one transaction. */
export async function lift(c: pg.Client, lockTimeoutMs: number): Promise<void> {
  await inTransaction(c, lockTimeoutMs, `ALTER EVENT TRIGGER ${DDL_FENCE} DISABLE; SELECT pgtwin_migrate.set_table_fences(false)`);
}

/**
 * Runs `statements` in a transaction with a lock timeout, in two round trips
 * instead of one per statement: BEGIN with them, then COMMIT on its own. The
 * COMMIT never shares a message with a statement that may wait for a lock: a
 * worker killed during that wait leaves a backend that aborts at its next
 * read, instead of one that commits later, behind a rollback's back.
 */
async function inTransaction(c: pg.Client, lockTimeoutMs: number, statements: string): Promise<void> {
  try {
    await c.query(`BEGIN; SET LOCAL lock_timeout = ${Math.max(100, Math.ceil(lockTimeoutMs))}; ${statements}`);
    await c.query('COMMIT');
  } catch (err) {
    await c.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}

/**
 * Arms the table triggers of a fenced database once more: a table that became
 * visible since the fence (created by a transaction prepared before it and
 * committed since) got its trigger in the state of its creation, unarmed.
 */
export async function rearmTableFences(c: pg.Client, lockTimeoutMs: number): Promise<void> {
  await inTransaction(c, lockTimeoutMs, 'SELECT pgtwin_migrate.set_table_fences(true)');
}

/** Removes the fence (finish, teardown): triggers on every table, event triggers, functions. */
export async function removeFence(c: pg.Client, lockTimeoutMs: number): Promise<boolean> {
  const { rows } = await c.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_event_trigger WHERE evtname LIKE 'pgtwin\\_migrate\\_fence%'");
  const tables = await c.query<{ t: string }>(
    "SELECT tgrelid::regclass::text AS t FROM pg_trigger WHERE tgname = 'pgtwin_migrate_fence' AND NOT tgisinternal",
  );
  if (rows[0]!.n === 0 && tables.rows.length === 0) return false;
  await c.query('BEGIN');
  try {
    await c.query(`SET LOCAL lock_timeout = ${Math.max(100, Math.ceil(lockTimeoutMs))}`);
    await c.query(`DROP EVENT TRIGGER IF EXISTS ${DDL_FENCE}`);
    await c.query('DROP EVENT TRIGGER IF EXISTS pgtwin_migrate_fence_new_tables');
    await c.query('DROP EVENT TRIGGER IF EXISTS pgtwin_migrate_fence_drop');
    for (const t of tables.rows) await c.query(`DROP TRIGGER IF EXISTS pgtwin_migrate_fence ON ${t.t}`);
    for (const fn of ['fence_new_tables()', 'fence_dropped()', 'fence_intact(regclass, boolean)', 'set_table_fences(boolean)', 'fence_table(regclass, boolean)', 'is_fenced()', 'fenceable_tables()', 'refuse_ddl()', 'refuse_write()']) {
      await c.query(`DROP FUNCTION IF EXISTS pgtwin_migrate.${fn}`);
    }
    await c.query('COMMIT');
  } catch (err) {
    await c.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
  return true;
}

const OTHERS = `pid <> pg_backend_pid() AND NOT (pid = ANY($2::int[]))
  AND backend_type NOT LIKE 'logical replication%' AND backend_type NOT IN ('walsender', 'walreceiver', 'startup', 'checkpointer')`;

/** Sessions of this database whose transaction holds an xid and began before `before`. */
async function writersBefore(c: pg.Client, before: Date, agentPids: readonly number[]): Promise<OpenTransaction[]> {
  const { rows } = await c.query<{ pid: number; usename: string | null; xact_start: Date | null; backend_type: string }>(
    `SELECT pid, usename, xact_start, backend_type FROM pg_stat_activity
      WHERE datname = current_database() AND backend_xid IS NOT NULL AND xact_start < $1 AND ${OTHERS}`,
    [before, agentPids],
  );
  return rows.map((r) => ({ pid: r.pid, user: r.usename ?? '?', since: r.xact_start, backendType: r.backend_type }));
}

/**
 * Who holds a lock on a fenceable table that keeps the fence waiting. A
 * prepared transaction shows as pid 0 (it has no backend to end).
 */
async function lockHolders(c: pg.Client, agentPids: readonly number[]): Promise<OpenTransaction[]> {
  const { rows } = await c.query<{ pid: number | null; rel: string; usename: string | null; xact_start: Date | null; backend_type: string | null }>(
    `SELECT DISTINCT l.pid, l.relation::regclass::text AS rel, a.usename, a.xact_start, a.backend_type
       FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid
      WHERE l.granted AND l.locktype = 'relation' AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
        AND l.mode NOT IN ('AccessShareLock', 'RowShareLock')
        AND l.relation IN (SELECT f::oid FROM pgtwin_migrate.fenceable_tables() f)
        AND (l.pid IS NULL OR (l.pid <> pg_backend_pid() AND NOT (l.pid = ANY($1::int[]))))`,
    [agentPids],
  );
  return rows.map((r) => ({ pid: r.pid ?? 0, user: r.pid === null ? r.rel : (r.usename ?? '?'), since: r.xact_start, backendType: r.backend_type ?? 'prepared transaction' }));
}

/**
 * Ends the sessions and waits (up to `waitMs`) until they are gone: what
 * they committed is then behind us. All are signalled at once and exit in
 * parallel (pg_terminate_backend with a timeout would wait for each in turn).
 */
export async function terminate(c: pg.Client, pids: readonly number[], waitMs = 5_000): Promise<void> {
  if (pids.length === 0) return;
  await c.query('SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid', [pids]);
  const until = Date.now() + waitMs;
  for (;;) {
    const { rows } = await c.query<{ n: number }>('SELECT count(*)::int AS n FROM pg_stat_activity WHERE pid = ANY($1::int[])', [pids]);
    if (rows[0]!.n === 0 || Date.now() > until) return;
    await sleep(10);
  }
}

/** Client sessions of these databases, but the agent's own: after the hand-over they reconnect through the address. */
export async function clientSessions(c: pg.Client, databases: readonly string[], agentPids: readonly number[]): Promise<number[]> {
  const { rows } = await c.query<{ pid: number }>(
    `SELECT pid FROM pg_stat_activity
      WHERE backend_type = 'client backend' AND datname = ANY($1::text[]) AND pid <> pg_backend_pid() AND NOT (pid = ANY($2::int[]))`,
    [databases, agentPids],
  );
  return rows.map((r) => r.pid);
}

/** Prepared transactions of these databases: they survive the end of their session and could commit later. */
export async function preparedTransactions(c: pg.Client, databases: readonly string[]): Promise<Array<{ database: string; gid: string }>> {
  const { rows } = await c.query<{ database: string; gid: string }>(
    'SELECT database, gid FROM pg_prepared_xacts WHERE database = ANY($1::text[]) ORDER BY prepared',
    [databases],
  );
  return rows;
}

/**
 * The WAL insert position, and everything before it flushed: a walsender
 * sends only flushed WAL, and what was inserted after the last commit (a
 * page pruned by a read, a sequence value a refused write took, an
 * asynchronous commit) would otherwise wait for the WAL writer or the next
 * commit — seen: 8.6 s with every migrated database fenced. The flush is a
 * commit of this session's own that writes WAL (a transactional logical
 * message: a commit without WAL is never waited for) with
 * synchronous_commit=local; subscribers do not ask for messages, so it
 * reaches none of them.
 */
export async function insertLsn(c: pg.Client): Promise<string> {
  const results = (await c
    .query(
      "BEGIN; SET LOCAL synchronous_commit = local; SELECT pg_current_wal_insert_lsn()::text AS lsn, pg_logical_emit_message(true, 'pgtwin-migrate', 'flush') AS message; COMMIT",
    )
    .catch(async (err: unknown) => {
      await c.query('ROLLBACK').catch(() => undefined);
      throw err;
    })) as unknown as Array<pg.QueryResult<{ lsn: string }>>;
  return results.find((r) => r.rows?.[0]?.lsn !== undefined)!.rows[0]!.lsn;
}

/** Bytes from `a` to `b` (negative when b is before a), computed by the server. */
export async function lsnDiff(c: pg.Client, b: string, a: string): Promise<number> {
  const { rows } = await c.query<{ d: string }>('SELECT pg_wal_lsn_diff($1::pg_lsn, $2::pg_lsn)::bigint::text AS d', [b, a]);
  return Number(rows[0]!.d);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
