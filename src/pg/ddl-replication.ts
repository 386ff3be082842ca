/**
 * DDL replication (DESIGN §8). The SQL it installs in every database —
 * capture, splitter, replay, privileges — is src/pg/sql/ddl-replication.sql,
 * bundled as text and reviewed as SQL; this module installs it, manages the
 * capture triggers and reads the log.
 *
 * The agent's own sessions are never captured: they run with
 * session_replication_role = replica (src/pg/connection.ts), in which event
 * triggers do not fire, and which only a superuser can set.
 */
import type pg from 'pg';
import { ident, literal, AGENT_SCHEMA } from './sql';
import { sqlState, SQLSTATE } from './errors';
import DDL_REPLICATION_SQL from './sql/ddl-replication.sql';
import OWNER_CHECK_SQL from './sql/owner-check.sql';

const S = ident(AGENT_SCHEMA);

/**
 * Creates (or updates) the agent's schema in one database: the log table,
 * the capture and replay functions, the replay trigger, and no privilege
 * for anyone else (src/pg/sql/ddl-replication.sql); `side` tells the
 * functions which cluster they run on. The session must be the agent's own
 * (session_replication_role = replica), so no event trigger sees it.
 */
export async function installDdlSchema(c: pg.Client, side: 'source' | 'target'): Promise<void> {
  await c.query('BEGIN');
  try {
    await c.query(OWNER_CHECK_SQL);
    await c.query(`CREATE SCHEMA IF NOT EXISTS ${S}`);
    await c.query(
      `CREATE OR REPLACE FUNCTION ${S}.side() RETURNS text LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$ SELECT ${literal(side)}::text $$`,
    );
    await c.query(DDL_REPLICATION_SQL);
    await c.query(OWNER_CHECK_SQL);
    await c.query('COMMIT');
  } catch (err) {
    await c.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}

export async function eventTriggerState(c: pg.Client, name: string): Promise<'enabled' | 'disabled' | undefined> {
  const { rows } = await c.query<{ evtenabled: string }>('SELECT evtenabled FROM pg_event_trigger WHERE evtname = $1', [name]);
  const r = rows[0];
  if (!r) return undefined;
  return r.evtenabled === 'D' ? 'disabled' : 'enabled';
}

/** The capture trigger of one direction, created enabled or disabled, idempotently. */
export async function ensureCaptureTrigger(c: pg.Client, name: string, enabled: boolean): Promise<void> {
  const state = await eventTriggerState(c, name);
  if (state === undefined) {
    await c.query(`CREATE EVENT TRIGGER ${ident(name)} ON ddl_command_end EXECUTE FUNCTION ${S}.capture_ddl()`);
    if (!enabled) await c.query(`ALTER EVENT TRIGGER ${ident(name)} DISABLE`);
    return;
  }
  if ((state === 'enabled') !== enabled) await c.query(`ALTER EVENT TRIGGER ${ident(name)} ${enabled ? 'ENABLE' : 'DISABLE'}`);
}

export async function dropCaptureTrigger(c: pg.Client, name: string): Promise<boolean> {
  const existed = (await eventTriggerState(c, name)) !== undefined;
  await c.query(`DROP EVENT TRIGGER IF EXISTS ${ident(name)}`);
  return existed;
}

export async function hasAgentSchema(c: pg.Client): Promise<boolean> {
  const { rowCount } = await c.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [AGENT_SCHEMA]);
  return (rowCount ?? 0) > 0;
}

/** Removes the agent's schema (log table, functions) from one database. */
export async function dropAgentSchema(c: pg.Client): Promise<boolean> {
  const existed = await hasAgentSchema(c);
  await c.query(`DROP SCHEMA IF EXISTS ${S} CASCADE`);
  return existed;
}

/** Empties the log before a fresh subscription copies it, so no old statement is replayed. */
export async function clearDdlLog(c: pg.Client): Promise<void> {
  await c.query(`TRUNCATE ${S}.ddl_log`);
}

export interface DdlReport {
  /**
   * Statements that arrived from the other side and need a DBA, not yet
   * marked handled: not replayable, refused, failed, or replayed with rows
   * that now differ between the clusters.
   */
  readonly notReplayed: number;
  readonly latest: { id: string; command: string; reason: string } | undefined;
}

/**
 * What needs a DBA here (see DdlReport). `diverges` is read through to_jsonb
 * so that a log table from before that column still answers.
 */
/** The report's latest statement in one line: its command, and why it was not replayed. */
export function describeLatest(report: DdlReport): string | undefined {
  const l = report.latest;
  return l ? (l.reason ? `${l.command}: ${l.reason}` : l.command) : undefined;
}

/** The DDL report, or undefined in a database without DDL capture (no log table, functions or schema). */
export async function ddlReportIfCaptured(c: pg.Client): Promise<DdlReport | undefined> {
  try {
    return await ddlReport(c);
  } catch (err) {
    if ([SQLSTATE.UNDEFINED_TABLE, SQLSTATE.UNDEFINED_FUNCTION, '3F000'].includes(sqlState(err) as never)) return undefined;
    throw err;
  }
}

export async function ddlReport(c: pg.Client): Promise<DdlReport> {
  const { rows } = await c.query<{ n: number; id: string | null; command_tag: string | null; reason: string | null }>(
    `SELECT count(*) OVER ()::int AS n, l.id::text, l.command_tag,
            coalesce(l.apply_error, l.not_replayable_reason, to_jsonb(l) ->> 'diverges') AS reason
       FROM ${S}.ddl_log l
      WHERE l.origin <> ${S}.side() AND NOT l.handled
        AND (NOT l.replayable OR l.apply_error IS NOT NULL OR to_jsonb(l) ->> 'diverges' IS NOT NULL)
      ORDER BY l.id DESC LIMIT 1`,
  );
  const r = rows[0];
  if (!r) return { notReplayed: 0, latest: undefined };
  return { notReplayed: r.n, latest: { id: r.id ?? '', command: r.command_tag ?? '', reason: r.reason ?? '' } };
}
