/**
 * DDL replication (DESIGN §8). On the capturing side an event trigger writes
 * each DDL statement into pgtwin_migrate.ddl_log inside the same
 * transaction; the table is published like any other, so the statement
 * reaches the other side in commit order with the data, where a trigger
 * that fires only for replicated rows (ENABLE REPLICA) executes it.
 *
 * A statement is replayed only when it can be isolated safely: a query
 * string holding several statements is split (quotes, dollar quotes and
 * comments respected) and the n-th DDL firing is matched to the n-th DDL
 * statement; DDL run inside a function or DO block, and CREATE TABLE AS,
 * are recorded as not replayable and reported, never silently dropped.
 */
import type pg from 'pg';
import { ident, literal, AGENT_SCHEMA } from './sql';

const S = ident(AGENT_SCHEMA);

/** Session setting the agent's own sessions carry so their DDL is not captured. */
export const CAPTURE_OFF_OPTION = '-c pgtwin_migrate.capture=off';

const SCHEMA_SQL = `
CREATE SCHEMA IF NOT EXISTS ${S};
COMMENT ON SCHEMA ${S} IS 'pgtwin-migrate: DDL replication of a running migration; removed by pgtwin-migrate teardown';
CREATE TABLE IF NOT EXISTS ${S}.ddl_log (
  id bigserial PRIMARY KEY,
  origin text NOT NULL,
  captured_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  backend_pid int NOT NULL DEFAULT pg_backend_pid(),
  statement_at timestamptz NOT NULL DEFAULT statement_timestamp(),
  query_md5 text NOT NULL,
  role_name text NOT NULL DEFAULT current_user,
  search_path text NOT NULL DEFAULT current_setting('search_path'),
  command_tag text NOT NULL,
  statement text NOT NULL,
  replayable boolean NOT NULL,
  not_replayable_reason text,
  applied_at timestamptz,
  apply_error text,
  handled boolean NOT NULL DEFAULT false
);

-- Statements of a query string, split at top-level semicolons; quotes,
-- E'' strings, quoted identifiers, dollar quotes and comments respected.
CREATE OR REPLACE FUNCTION ${S}.split_statements(q text) RETURNS text[]
LANGUAGE plpgsql IMMUTABLE AS $fn$
DECLARE
  out text[] := '{}';
  n int := length(q);
  i int := 1;
  start int := 1;
  c text;
  nxt text;
  tag text;
  pos int;
  depth int;
  seen boolean := false;
  estring boolean;
BEGIN
  WHILE i <= n LOOP
    c := substr(q, i, 1);
    nxt := substr(q, i + 1, 1);
    IF c = '''' THEN
      estring := i > 1 AND upper(substr(q, i - 1, 1)) = 'E' AND (i = 2 OR substr(q, i - 2, 1) !~ '[A-Za-z0-9_]');
      i := i + 1;
      WHILE i <= n LOOP
        c := substr(q, i, 1);
        IF estring AND c = '\\' THEN
          i := i + 2;
          CONTINUE;
        ELSIF c = '''' THEN
          IF substr(q, i + 1, 1) = '''' THEN i := i + 2; CONTINUE; END IF;
          EXIT;
        END IF;
        i := i + 1;
      END LOOP;
      seen := true;
    ELSIF c = '"' THEN
      i := i + 1;
      WHILE i <= n LOOP
        IF substr(q, i, 1) = '"' THEN
          IF substr(q, i + 1, 1) = '"' THEN i := i + 2; CONTINUE; END IF;
          EXIT;
        END IF;
        i := i + 1;
      END LOOP;
      seen := true;
    ELSIF c = '-' AND nxt = '-' THEN
      pos := strpos(substr(q, i), chr(10));
      i := CASE WHEN pos = 0 THEN n ELSE i + pos - 1 END;
    ELSIF c = '/' AND nxt = '*' THEN
      depth := 1;
      i := i + 2;
      WHILE i <= n AND depth > 0 LOOP
        IF substr(q, i, 2) = '/*' THEN depth := depth + 1; i := i + 2;
        ELSIF substr(q, i, 2) = '*/' THEN depth := depth - 1; i := i + 2;
        ELSE i := i + 1;
        END IF;
      END LOOP;
      i := i - 1;
    ELSIF c = '$' AND (i = 1 OR substr(q, i - 1, 1) !~ '[A-Za-z0-9_]') THEN
      tag := substring(substr(q, i) FROM '^\\$([A-Za-z_][A-Za-z_0-9]*)?\\$');
      IF tag IS NOT NULL OR substr(q, i, 2) = '$$' THEN
        tag := '$' || coalesce(tag, '') || '$';
        pos := strpos(substr(q, i + length(tag)), tag);
        i := CASE WHEN pos = 0 THEN n ELSE i + length(tag) + pos + length(tag) - 2 END;
      END IF;
      seen := true;
    ELSIF c = ';' THEN
      IF seen THEN out := out || btrim(substr(q, start, i - start), E' \\t\\r\\n'); END IF;
      start := i + 1;
      seen := false;
    ELSIF c !~ '\\s' THEN
      seen := true;
    END IF;
    i := i + 1;
  END LOOP;
  IF seen THEN out := out || btrim(substr(q, start), E' \\t\\r\\n'); END IF;
  RETURN out;
END
$fn$;

-- The leading keywords of a statement, comments removed, upper case.
CREATE OR REPLACE FUNCTION ${S}.leading_words(stmt text, how_many int) RETURNS text[]
LANGUAGE sql IMMUTABLE AS $fn$
  SELECT (regexp_split_to_array(
            upper(btrim(regexp_replace(regexp_replace(stmt, '/\\*.*?\\*/', ' ', 'g'), '--[^\\n]*', ' ', 'g'))),
            '\\s+'))[1:how_many]
$fn$;

-- DDL statements whose execution fires ddl_command_end (global objects do not).
CREATE OR REPLACE FUNCTION ${S}.fires_event_trigger(stmt text) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $fn$
  SELECT w[1] IN ('CREATE', 'ALTER', 'DROP', 'COMMENT', 'GRANT', 'REVOKE', 'SECURITY', 'IMPORT', 'REFRESH')
     AND NOT (array_to_string(w, ' ') ~ '^(CREATE|ALTER|DROP) (DATABASE|ROLE|USER|GROUP|TABLESPACE|SYSTEM|EVENT TRIGGER|SUBSCRIPTION)( |$)')
  FROM (SELECT ${S}.leading_words(stmt, 3) AS w) s
$fn$;

-- The event trigger's function runs with the rights of whoever ran the DDL;
-- it only gathers what must be read in that context and hands it to
-- log_ddl, which runs with the owner's rights (authors need no privileges
-- on the agent's schema).
CREATE OR REPLACE FUNCTION ${S}.capture_ddl() RETURNS event_trigger
LANGUAGE plpgsql AS $fn$
BEGIN
  IF current_setting('pgtwin_migrate.capture', true) = 'off' THEN RETURN; END IF;
  IF tg_tag LIKE '%SUBSCRIPTION' OR tg_tag LIKE '%PUBLICATION' THEN RETURN; END IF;
  -- Objects of the migration itself and temporary objects are not replicated.
  -- (DROP reports no objects here; a DROP of something the other side lacks is a no-op there.)
  IF EXISTS (SELECT 1 FROM pg_event_trigger_ddl_commands())
     AND NOT EXISTS (SELECT 1 FROM pg_event_trigger_ddl_commands() d
                      WHERE coalesce(d.schema_name, '') <> ${literal(AGENT_SCHEMA)}
                        AND coalesce(d.schema_name, '') NOT LIKE 'pg\\_temp%') THEN
    RETURN;
  END IF;
  PERFORM ${S}.log_ddl(coalesce(current_query(), ''), tg_tag, current_user::text, current_setting('search_path'));
END
$fn$;

CREATE OR REPLACE FUNCTION ${S}.log_ddl(q text, tag text, author text, author_path text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  parts text[] := ${S}.split_statements(q);
  ddl text[] := '{}';
  part text;
  k int;
  stmt text;
  ok boolean := true;
  why text;
  tag_words text[] := regexp_split_to_array(tag, ' ');
  words text[];
BEGIN
  FOREACH part IN ARRAY parts LOOP
    IF ${S}.fires_event_trigger(part) THEN ddl := ddl || part; END IF;
  END LOOP;
  -- This is the (k+1)-th DDL firing of this query string.
  SELECT count(*) INTO k FROM ${S}.ddl_log
   WHERE backend_pid = pg_backend_pid() AND statement_at = statement_timestamp() AND query_md5 = md5(q);
  IF k < coalesce(array_length(ddl, 1), 0) THEN
    stmt := ddl[k + 1];
    words := ${S}.leading_words(stmt, 8);
    IF words[1] <> tag_words[1] OR NOT (tag_words[array_length(tag_words, 1)] = ANY (words)) THEN
      ok := false;
      why := 'could not match the ' || tag || ' to a statement of its query string; replay it by hand';
    END IF;
  ELSE
    stmt := q;
    ok := false;
    why := 'run inside a function, procedure or DO block; replay it by hand';
  END IF;
  IF ok AND tag IN ('CREATE TABLE AS', 'SELECT INTO') THEN
    ok := false;
    why := tag || ' copies data; create the table on the other cluster by hand (its rows then arrive by replication)';
  END IF;
  INSERT INTO ${S}.ddl_log (origin, query_md5, role_name, search_path, command_tag, statement, replayable, not_replayable_reason)
  VALUES (${S}.side(), md5(q), author, author_path, tag, stmt, ok, why);
END
$fn$;

GRANT USAGE ON SCHEMA ${S} TO PUBLIC;

-- Runs a replicated statement as its author did (role, search_path) and
-- records the outcome in the row instead of stopping replication.
CREATE OR REPLACE FUNCTION ${S}.replay_ddl() RETURNS trigger
LANGUAGE plpgsql AS $fn$
DECLARE
  stmt text;
BEGIN
  IF NOT NEW.replayable OR NEW.origin = ${S}.side() THEN
    RETURN NEW;
  END IF;
  -- Inside a transaction, CONCURRENTLY is not allowed; the plain form does the same.
  stmt := regexp_replace(NEW.statement,
            '^(\\s*(CREATE\\s+(UNIQUE\\s+)?INDEX|DROP\\s+INDEX|REINDEX\\s+\\w+))\\s+CONCURRENTLY\\M', '\\1', 'i');
  BEGIN
    PERFORM set_config('search_path', NEW.search_path, true);
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = NEW.role_name) THEN
      PERFORM set_config('role', NEW.role_name, true);
    END IF;
    EXECUTE stmt;
    PERFORM set_config('role', 'none', true);
    NEW.applied_at := clock_timestamp();
  EXCEPTION
    WHEN undefined_table OR undefined_object OR undefined_function OR invalid_schema_name THEN
      IF NEW.command_tag LIKE 'DROP %' THEN
        NEW.applied_at := clock_timestamp();  -- nothing to drop here
      ELSE
        NEW.apply_error := SQLSTATE || ': ' || SQLERRM;
      END IF;
    WHEN OTHERS THEN
      NEW.apply_error := SQLSTATE || ': ' || SQLERRM;
  END;
  RETURN NEW;
END
$fn$;

DO $do$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'replay_ddl' AND tgrelid = ${literal(`${AGENT_SCHEMA}.ddl_log`)}::regclass) THEN
    CREATE TRIGGER replay_ddl BEFORE INSERT ON ${S}.ddl_log FOR EACH ROW EXECUTE FUNCTION ${S}.replay_ddl();
  END IF;
  ALTER TABLE ${S}.ddl_log ENABLE REPLICA TRIGGER replay_ddl;
END
$do$;
`;

/**
 * Creates (or updates) the agent's schema in one database: the log table,
 * the capture and replay functions, the replay trigger; `side` tells the
 * functions which cluster they run on.
 */
export async function installDdlSchema(c: pg.Client, side: 'source' | 'target'): Promise<void> {
  await c.query('BEGIN');
  try {
    await c.query(`CREATE SCHEMA IF NOT EXISTS ${S}`);
    await c.query(
      `CREATE OR REPLACE FUNCTION ${S}.side() RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT ${literal(side)}::text $$`,
    );
    await c.query(SCHEMA_SQL);
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
  readonly notReplayed: number;
  readonly latest: { id: string; command: string; reason: string } | undefined;
}

/**
 * Statements that arrived from the other side and were not replayed here
 * (not replayable, or failed), not yet marked handled.
 */
export async function ddlReport(c: pg.Client): Promise<DdlReport> {
  const { rows } = await c.query<{ n: number; id: string | null; command_tag: string | null; reason: string | null }>(
    `SELECT count(*) OVER ()::int AS n, id::text, command_tag, coalesce(apply_error, not_replayable_reason) AS reason
       FROM ${S}.ddl_log
      WHERE origin <> ${S}.side() AND NOT handled AND (NOT replayable OR apply_error IS NOT NULL)
      ORDER BY id DESC LIMIT 1`,
  );
  const r = rows[0];
  if (!r) return { notReplayed: 0, latest: undefined };
  return { notReplayed: r.n, latest: { id: r.id ?? '', command: r.command_tag ?? '', reason: r.reason ?? '' } };
}
