-- pgtwin-migrate: the write fence of one database (DESIGN §6).
--
-- A fenced database refuses every client write: a statement trigger on every
-- table refuses INSERT, UPDATE, DELETE, TRUNCATE (COPY FROM and MERGE fire
-- the same triggers), and an event trigger refuses every DDL command. No
-- client setting passes it: not BEGIN READ WRITE, not
-- default_transaction_read_only = off, not a role or database setting, not
-- an application_name. Only sessions in session_replication_role = replica
-- pass, which only a superuser can set: the logical replication apply
-- workers (they keep applying) and the agent's own sessions.
--
-- The fence's state is catalog state, crash-safe and never replicated: the
-- event trigger pgtwin_migrate_fence_ddl enabled means "fenced", and then
-- every table's trigger pgtwin_migrate_fence is enabled too. A table created
-- later (by replication, or before the fence) gets its trigger from the
-- ALWAYS event trigger pgtwin_migrate_fence_new_tables, in the state of the
-- database.
--
-- Every function runs with search_path = pg_catalog, pg_temp and is usable
-- by nobody but its owner (the migration role): the triggers call them.

CREATE SCHEMA IF NOT EXISTS pgtwin_migrate;

CREATE OR REPLACE FUNCTION pgtwin_migrate.refuse_write() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
  RAISE EXCEPTION USING
    ERRCODE = 'read_only_sql_transaction',
    MESSAGE = pg_catalog.format('cannot write to %I.%I: database %I is read-only here while pgtwin-migrate serves it from the other cluster',
                                TG_TABLE_SCHEMA, TG_TABLE_NAME, pg_catalog.current_database()),
    HINT = 'Connect through the production address; pgtwin-migrate status shows where it leads. A superuser who must write here on purpose runs SET session_replication_role = replica first.';
END
$fn$;

CREATE OR REPLACE FUNCTION pgtwin_migrate.refuse_ddl() RETURNS event_trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
  RAISE EXCEPTION USING
    ERRCODE = 'read_only_sql_transaction',
    MESSAGE = pg_catalog.format('cannot run %s: database %I is read-only here while pgtwin-migrate serves it from the other cluster',
                                tg_tag, pg_catalog.current_database()),
    HINT = 'Connect through the production address; pgtwin-migrate status shows where it leads. A superuser who must change this database here on purpose runs SET session_replication_role = replica first.';
END
$fn$;

-- The tables a fence covers: every ordinary and partitioned table that is
-- not temporary, outside the system schemas and the agent's own.
CREATE OR REPLACE FUNCTION pgtwin_migrate.fenceable_tables() RETURNS SETOF pg_catalog.regclass
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $fn$
  SELECT c.oid::pg_catalog.regclass
    FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
   WHERE c.relkind IN ('r', 'p') AND c.relpersistence <> 't'
     AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pgtwin_migrate')
     AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp%'
   ORDER BY c.oid
$fn$;

-- Gives one table its fence trigger (when it has none) in the given state.
-- Runs in replica mode, so this DDL is neither captured for replication nor
-- refused by the fence itself.
CREATE OR REPLACE FUNCTION pgtwin_migrate.fence_table(t pg_catalog.regclass, fenced boolean) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET session_replication_role = replica AS $fn$
DECLARE
  state "char";
BEGIN
  SELECT tgenabled INTO state FROM pg_catalog.pg_trigger WHERE tgrelid = t AND tgname = 'pgtwin_migrate_fence';
  IF state IS NULL THEN
    EXECUTE pg_catalog.format(
      'CREATE TRIGGER pgtwin_migrate_fence BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON %s FOR EACH STATEMENT EXECUTE FUNCTION pgtwin_migrate.refuse_write()', t);
    state := 'O';
  END IF;
  IF fenced AND state = 'D' THEN
    EXECUTE pg_catalog.format('ALTER TABLE %s ENABLE TRIGGER pgtwin_migrate_fence', t);
  ELSIF NOT fenced AND state <> 'D' THEN
    EXECUTE pg_catalog.format('ALTER TABLE %s DISABLE TRIGGER pgtwin_migrate_fence', t);
  END IF;
END
$fn$;

-- Is this database fenced? (The DDL fence is switched first and is the record.)
CREATE OR REPLACE FUNCTION pgtwin_migrate.is_fenced() RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $fn$
  SELECT coalesce((SELECT evtenabled <> 'D' FROM pg_catalog.pg_event_trigger WHERE evtname = 'pgtwin_migrate_fence_ddl'), false)
$fn$;

-- New tables (created by a client before the fence, or replayed by
-- replication while fenced) get their trigger at once.
CREATE OR REPLACE FUNCTION pgtwin_migrate.fence_new_tables() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  t pg_catalog.regclass;
  fenced boolean := pgtwin_migrate.is_fenced();
BEGIN
  FOR t IN
    SELECT DISTINCT d.objid::pg_catalog.regclass
      FROM pg_catalog.pg_event_trigger_ddl_commands() d
     WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
       AND d.objid IN (SELECT f::pg_catalog.oid FROM pgtwin_migrate.fenceable_tables() f)
  LOOP
    PERFORM pgtwin_migrate.fence_table(t, fenced);
  END LOOP;
END
$fn$;

-- Switches the table triggers of every fenceable table (creating missing
-- ones). The caller switches the DDL fence: first when fencing (so no table
-- can appear unseen), in the same transaction when lifting.
CREATE OR REPLACE FUNCTION pgtwin_migrate.set_table_fences(fenced boolean) RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  t pg_catalog.regclass;
  n integer := 0;
BEGIN
  FOR t IN SELECT f FROM pgtwin_migrate.fenceable_tables() f LOOP
    PERFORM pgtwin_migrate.fence_table(t, fenced);
    n := n + 1;
  END LOOP;
  RETURN n;
END
$fn$;

DO $do$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_event_trigger WHERE evtname = 'pgtwin_migrate_fence_ddl') THEN
    CREATE EVENT TRIGGER pgtwin_migrate_fence_ddl ON ddl_command_start EXECUTE FUNCTION pgtwin_migrate.refuse_ddl();
    ALTER EVENT TRIGGER pgtwin_migrate_fence_ddl DISABLE;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_event_trigger WHERE evtname = 'pgtwin_migrate_fence_new_tables') THEN
    CREATE EVENT TRIGGER pgtwin_migrate_fence_new_tables ON ddl_command_end EXECUTE FUNCTION pgtwin_migrate.fence_new_tables();
  END IF;
  -- Also in replica mode: tables replayed by replication are fenced too.
  ALTER EVENT TRIGGER pgtwin_migrate_fence_new_tables ENABLE ALWAYS;
END
$do$;

REVOKE ALL ON FUNCTION pgtwin_migrate.refuse_write() FROM PUBLIC;
REVOKE ALL ON FUNCTION pgtwin_migrate.refuse_ddl() FROM PUBLIC;
REVOKE ALL ON FUNCTION pgtwin_migrate.fenceable_tables() FROM PUBLIC;
REVOKE ALL ON FUNCTION pgtwin_migrate.fence_table(pg_catalog.regclass, boolean) FROM PUBLIC;
REVOKE ALL ON FUNCTION pgtwin_migrate.is_fenced() FROM PUBLIC;
REVOKE ALL ON FUNCTION pgtwin_migrate.fence_new_tables() FROM PUBLIC;
REVOKE ALL ON FUNCTION pgtwin_migrate.set_table_fences(boolean) FROM PUBLIC;
