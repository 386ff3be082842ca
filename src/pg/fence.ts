/**
 * The write fence on the source: read-only by default for every session
 * (ALTER SYSTEM + reload, so sessions already connected follow at their
 * next transaction), in-flight transactions given time, then ended.
 */
import type pg from 'pg';

/** Sessions of the agent carry this application_name prefix and are never waited for or ended. */
export const AGENT_APP_PREFIX = 'pgtwin-migrate';

export async function setDefaultReadOnly(c: pg.Client, on: boolean): Promise<void> {
  await c.query(on ? 'ALTER SYSTEM SET default_transaction_read_only = on' : 'ALTER SYSTEM RESET default_transaction_read_only');
  await c.query('SELECT pg_reload_conf()');
}

export async function readOnlyBySystem(c: pg.Client): Promise<boolean> {
  const { rows } = await c.query<{ v: string | null }>(
    "SELECT setting AS v FROM pg_file_settings WHERE name = 'default_transaction_read_only' AND sourcefile LIKE '%postgresql.auto.conf' AND applied ORDER BY seqno DESC LIMIT 1",
  );
  return rows[0]?.v === 'on';
}

export interface OpenTransaction {
  readonly pid: number;
  readonly database: string;
  readonly user: string;
  readonly since: Date;
  readonly wrote: boolean;
}

/** Client transactions that began before `before` (so may still write) and are still open. */
export async function transactionsBefore(c: pg.Client, before: Date): Promise<OpenTransaction[]> {
  const { rows } = await c.query<{ pid: number; datname: string; usename: string; xact_start: Date; wrote: boolean }>(
    `SELECT pid, datname, usename, xact_start, backend_xid IS NOT NULL AS wrote
       FROM pg_stat_activity
      WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()
        AND xact_start IS NOT NULL AND xact_start < $1
        AND coalesce(application_name, '') NOT LIKE $2`,
    [before, `${AGENT_APP_PREFIX}%`],
  );
  return rows.map((r) => ({ pid: r.pid, database: r.datname, user: r.usename, since: r.xact_start, wrote: r.wrote }));
}

/**
 * Client sessions of these databases that began before `before`: a session
 * idle since before the reload runs its next command with the configuration
 * it had (PostgreSQL rereads it only before reading the command after that),
 * so its next transaction could still write.
 */
export async function sessionsBefore(c: pg.Client, before: Date, databases: readonly string[]): Promise<OpenTransaction[]> {
  const { rows } = await c.query<{ pid: number; datname: string; usename: string; backend_start: Date; wrote: boolean }>(
    `SELECT pid, datname, usename, backend_start, backend_xid IS NOT NULL AS wrote
       FROM pg_stat_activity
      WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()
        AND backend_start < $1 AND datname = ANY($2::text[])
        AND coalesce(application_name, '') NOT LIKE $3`,
    [before, databases, `${AGENT_APP_PREFIX}%`],
  );
  return rows.map((r) => ({ pid: r.pid, database: r.datname, user: r.usename, since: r.backend_start, wrote: r.wrote }));
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
    await new Promise((r) => setTimeout(r, 10));
  }
}

export async function currentLsn(c: pg.Client): Promise<string> {
  const { rows } = await c.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn');
  return rows[0]!.lsn;
}

/** Bytes from `a` to `b` (negative when b is before a), computed by the server. */
export async function lsnDiff(c: pg.Client, b: string, a: string): Promise<number> {
  const { rows } = await c.query<{ d: string }>('SELECT pg_wal_lsn_diff($1::pg_lsn, $2::pg_lsn)::bigint::text AS d', [b, a]);
  return Number(rows[0]!.d);
}
