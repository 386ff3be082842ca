-- pgtwin-migrate: DDL replication (DESIGN §8), installed in every migrated
-- database on both clusters by the migration role (a superuser), in one
-- transaction, from a session in session_replication_role = replica (so no
-- event trigger sees this script). Re-running it upgrades an older install.
--
-- On the capturing side an event trigger records each DDL statement in
-- pgtwin_migrate.ddl_log inside the same transaction; the table is published
-- like any other, so the statement reaches the other side in commit order
-- with the data, where a trigger that fires only for replicated rows
-- (ENABLE REPLICA) replays it.
--
-- Who can do what (the security model; every line is tested):
--  * Nothing but the event trigger records a statement: PUBLIC has no
--    privilege on the schema, its functions, its table or its sequence.
--    Statement, command tag and author are read inside the trigger, never
--    taken from arguments a client could choose.
--  * A statement is replayed as its author, never as the migration role: the
--    replay enters a SECURITY DEFINER function owned by the author, in which
--    PostgreSQL forbids SET ROLE, RESET ROLE and SET SESSION AUTHORIZATION, so
--    nothing the statement runs (a default, a check, an index expression) can
--    switch back. The author's search_path applies inside that function only.
--  * A row whose author has no role here, or is a superuser here but was not
--    where the statement ran, or that holds more than one statement, is
--    refused: recorded with the reason and reported, never run.
--  * Every function runs with search_path = pg_catalog, pg_temp (and
--    standard_conforming_strings on, as its literals are written for it) and
--    names every function and table it uses with its schema. The one
--    exception is capture_ddl, which must read the author's settings before
--    it sets its own (see there).

CREATE SCHEMA IF NOT EXISTS pgtwin_migrate;
COMMENT ON SCHEMA pgtwin_migrate IS 'pgtwin-migrate: DDL replication of a running migration; removed by pgtwin-migrate teardown';

-- ---------------------------------------------------------------- the log

-- Ids come from next_log_id(): even on the source, odd on the target, so the
-- rows of the two directions never collide, whatever the sequence's value
-- (the cutover may copy it from the source, or not at all).
CREATE SEQUENCE IF NOT EXISTS pgtwin_migrate.ddl_log_id_seq;

CREATE TABLE IF NOT EXISTS pgtwin_migrate.ddl_log (
  id bigint PRIMARY KEY,
  origin text NOT NULL,
  captured_at timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
  backend_pid int NOT NULL DEFAULT pg_catalog.pg_backend_pid(),
  statement_at timestamptz NOT NULL DEFAULT pg_catalog.statement_timestamp(),
  query_md5 text NOT NULL,
  role_name text NOT NULL DEFAULT current_user,
  search_path text NOT NULL DEFAULT pg_catalog.current_setting('search_path'),
  command_tag text NOT NULL,
  statement text NOT NULL,
  replayable boolean NOT NULL,
  not_replayable_reason text,
  applied_at timestamptz,
  apply_error text,
  handled boolean NOT NULL DEFAULT false
);
-- Whether the author was a superuser where the statement ran.
ALTER TABLE pgtwin_migrate.ddl_log ADD COLUMN IF NOT EXISTS author_superuser boolean NOT NULL DEFAULT false;
-- Replayed, but the existing rows got values computed separately on each
-- cluster (a volatile default, an identity column): why, for the DBA.
ALTER TABLE pgtwin_migrate.ddl_log ADD COLUMN IF NOT EXISTS diverges text;
ALTER SEQUENCE pgtwin_migrate.ddl_log_id_seq OWNED BY pgtwin_migrate.ddl_log.id;

CREATE OR REPLACE FUNCTION pgtwin_migrate.next_log_id() RETURNS bigint
LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp SET standard_conforming_strings = on AS $fn$
  SELECT pg_catalog.nextval('pgtwin_migrate.ddl_log_id_seq'::pg_catalog.regclass) * 2
       + CASE pgtwin_migrate.side() WHEN 'source' THEN 0 ELSE 1 END
$fn$;

ALTER TABLE pgtwin_migrate.ddl_log ALTER COLUMN id SET DEFAULT pgtwin_migrate.next_log_id();

-- An install from before even/odd ids: start above every id already there.
SELECT pg_catalog.setval('pgtwin_migrate.ddl_log_id_seq'::pg_catalog.regclass, x.m / 2 + 1)
  FROM (SELECT max(id) AS m FROM pgtwin_migrate.ddl_log) x
 WHERE x.m / 2 + 1 > (SELECT s.last_value FROM pgtwin_migrate.ddl_log_id_seq s);

-- ---------------------------------------------------------------- splitting

-- The statements of a query string, split at top-level semicolons the way
-- PostgreSQL's lexer sees them: strings (with E'' escapes), quoted
-- identifiers, dollar quotes, comments (nested /* */), identifiers (which may
-- hold $ and any non-ASCII character: é$a$ is one identifier, not a dollar
-- quote), numbers and $n parameters. A statement the server parsed as one
-- may come out in pieces here (a multi-action rule, a BEGIN ATOMIC body):
-- that is safe, as a piece is never matched to a firing it does not start.
CREATE OR REPLACE FUNCTION pgtwin_migrate.split_statements(q text) RETURNS text[]
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp SET standard_conforming_strings = on AS $fn$
DECLARE
  ch text[] := pg_catalog.regexp_split_to_array(q, '');
  n int;
  out text[] := '{}';
  i int := 1;
  j int;
  start int := 1;
  c text;
  tag text;
  pos int;
  depth int;
  seen boolean := false;
  estring boolean;
BEGIN
  n := coalesce(pg_catalog.array_length(ch, 1), 0);
  WHILE i <= n LOOP
    c := ch[i];
    estring := false;
    IF c ~ '^[A-Za-z_\u0080-\U0010FFFF]$' THEN
      -- An identifier or key word; $ and non-ASCII characters continue it.
      j := i + 1;
      WHILE j <= n AND ch[j] ~ '^[A-Za-z0-9_$\u0080-\U0010FFFF]$' LOOP j := j + 1; END LOOP;
      seen := true;
      IF j = i + 1 AND c IN ('E', 'e') AND j <= n AND ch[j] = '''' THEN
        estring := true;
        i := j;
        c := '''';
      ELSE
        i := j;
        CONTINUE;
      END IF;
    END IF;
    IF c = '''' THEN
      i := i + 1;
      WHILE i <= n LOOP
        IF estring AND ch[i] = '\' THEN
          i := i + 2;
          CONTINUE;
        ELSIF ch[i] = '''' THEN
          IF i < n AND ch[i + 1] = '''' THEN i := i + 2; CONTINUE; END IF;
          EXIT;
        END IF;
        i := i + 1;
      END LOOP;
      seen := true;
    ELSIF c = '"' THEN
      i := i + 1;
      WHILE i <= n LOOP
        IF ch[i] = '"' THEN
          IF i < n AND ch[i + 1] = '"' THEN i := i + 2; CONTINUE; END IF;
          EXIT;
        END IF;
        i := i + 1;
      END LOOP;
      seen := true;
    ELSIF c ~ '^[0-9]$' THEN
      -- A number (also 1e5, 0x1F, 1_000, 1.5): a $ after it starts a new token.
      j := i + 1;
      WHILE j <= n AND ch[j] ~ '^[0-9A-Za-z_.]$' LOOP j := j + 1; END LOOP;
      seen := true;
      i := j;
      CONTINUE;
    ELSIF c = '-' AND i < n AND ch[i + 1] = '-' THEN
      WHILE i <= n AND ch[i] NOT IN (E'\n', E'\r') LOOP i := i + 1; END LOOP;
      CONTINUE;
    ELSIF c = '/' AND i < n AND ch[i + 1] = '*' THEN
      depth := 1;
      i := i + 2;
      WHILE i <= n AND depth > 0 LOOP
        IF ch[i] = '/' AND i < n AND ch[i + 1] = '*' THEN depth := depth + 1; i := i + 2;
        ELSIF ch[i] = '*' AND i < n AND ch[i + 1] = '/' THEN depth := depth - 1; i := i + 2;
        ELSE i := i + 1;
        END IF;
      END LOOP;
      CONTINUE;
    ELSIF c = '$' THEN
      seen := true;
      IF i < n AND ch[i + 1] ~ '^[0-9]$' THEN
        -- A parameter, $1.
        i := i + 1;
        WHILE i <= n AND ch[i] ~ '^[0-9]$' LOOP i := i + 1; END LOOP;
        CONTINUE;
      END IF;
      tag := pg_catalog.substring(pg_catalog.substr(q, i), '^(\$([A-Za-z_\u0080-\U0010FFFF][A-Za-z0-9_\u0080-\U0010FFFF]*)?\$)');
      IF tag IS NOT NULL THEN
        pos := pg_catalog.strpos(pg_catalog.substr(q, i + pg_catalog.length(tag)), tag);
        i := CASE WHEN pos = 0 THEN n + 1 ELSE i + pg_catalog.length(tag) + pos - 1 + pg_catalog.length(tag) END;
        CONTINUE;
      END IF;
    ELSIF c = ';' THEN
      IF seen THEN out := out || pg_catalog.btrim(pg_catalog.substr(q, start, i - start), E' \t\r\n'); END IF;
      start := i + 1;
      seen := false;
    ELSIF c !~ '^\s$' THEN
      seen := true;
    END IF;
    i := i + 1;
  END LOOP;
  IF seen THEN out := out || pg_catalog.btrim(pg_catalog.substr(q, start), E' \t\r\n'); END IF;
  RETURN out;
END
$fn$;

-- The leading key words of a statement, comments removed, upper case.
CREATE OR REPLACE FUNCTION pgtwin_migrate.leading_words(stmt text, how_many int) RETURNS text[]
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp SET standard_conforming_strings = on AS $fn$
  SELECT (pg_catalog.regexp_split_to_array(
            pg_catalog.upper(pg_catalog.btrim(pg_catalog.regexp_replace(pg_catalog.regexp_replace(stmt, '/\*.*?\*/', ' ', 'g'), '--[^\n]*', ' ', 'g'))),
            '\s+'))[1:how_many]
$fn$;

-- DDL statements whose execution fires ddl_command_end (global objects do not).
CREATE OR REPLACE FUNCTION pgtwin_migrate.fires_event_trigger(stmt text) RETURNS boolean
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp SET standard_conforming_strings = on AS $fn$
  SELECT w[1] IN ('CREATE', 'ALTER', 'DROP', 'COMMENT', 'GRANT', 'REVOKE', 'SECURITY', 'IMPORT', 'REFRESH')
     AND NOT (pg_catalog.array_to_string(w, ' ') ~ '^(CREATE|ALTER|DROP) (DATABASE|ROLE|USER|GROUP|TABLESPACE|SYSTEM|EVENT TRIGGER|SUBSCRIPTION)( |$)')
  FROM (SELECT pgtwin_migrate.leading_words(stmt, 3) AS w) s
$fn$;

-- ---------------------------------------------------------------- divergence

-- Whether a catalog row visible here was written by this transaction: a
-- visible row whose writer is still in progress can only be our own.
CREATE OR REPLACE FUNCTION pgtwin_migrate.written_here(x xid) RETURNS boolean
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp SET standard_conforming_strings = on AS $fn$
DECLARE
  top bigint;
  full_xid bigint;
BEGIN
  top := pg_catalog.txid_current();
  -- The 32-bit xid, placed in the epoch nearest the current transaction.
  full_xid := top + ((x::text::bigint - top % 4294967296 + 6442450944) % 4294967296 - 2147483648);
  RETURN full_xid >= top AND pg_catalog.txid_status(full_xid) = 'in progress';
EXCEPTION WHEN OTHERS THEN
  RETURN false;
END
$fn$;

-- Whether an expression (a stored default) gives another value when it is
-- evaluated again: any function or operator that is not immutable, a
-- CURRENT_TIMESTAMP-like value, an identity's next value, an I/O coercion.
CREATE OR REPLACE FUNCTION pgtwin_migrate.mutable_expression(expr pg_node_tree) RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp SET standard_conforming_strings = on AS $fn$
  SELECT expr::text ~ '\{(SQLVALUEFUNCTION|NEXTVALUEEXPR|COERCEVIAIO) '
      OR EXISTS (SELECT 1 FROM pg_catalog.regexp_matches(expr::text, ':(?:func|opfunc)id (\d+)', 'g') AS m(f)
                   JOIN pg_catalog.pg_proc p ON p.oid = m.f[1]::oid
                  WHERE p.provolatile <> 'i')
      OR EXISTS (SELECT 1 FROM pg_catalog.regexp_matches(expr::text, ':opno (\d+)', 'g') AS m(o)
                   JOIN pg_catalog.pg_operator op ON op.oid = m.o[1]::oid
                   JOIN pg_catalog.pg_proc p ON p.oid = op.oprcode::oid
                  WHERE p.provolatile <> 'i')
$fn$;

-- Why replaying an ALTER TABLE gives rows different values on the other
-- cluster, or NULL: a column this statement added (named after ADD in it,
-- and new in this transaction) that is an identity or has a default that is
-- not immutable, on a table that holds rows. Each cluster computes those
-- values itself.
CREATE OR REPLACE FUNCTION pgtwin_migrate.diverging_change(stmt text) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp SET standard_conforming_strings = on AS $fn$
DECLARE
  rel regclass;
  cols text;
  has_rows boolean;
  found_text text := NULL;
BEGIN
  FOR rel IN
    SELECT DISTINCT d.objid::regclass
      FROM pg_catalog.pg_event_trigger_ddl_commands() d
      JOIN pg_catalog.pg_class c ON c.oid = d.objid
     WHERE d.classid = 'pg_catalog.pg_class'::regclass AND c.relkind IN ('r', 'p')
  LOOP
    SELECT pg_catalog.string_agg(pg_catalog.quote_ident(a.attname), ',' ORDER BY a.attnum) INTO cols
      FROM pg_catalog.pg_attribute a
      LEFT JOIN pg_catalog.pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
     WHERE a.attrelid = rel AND a.attnum > 0 AND NOT a.attisdropped
       AND (a.attidentity <> '' OR (a.attgenerated = '' AND ad.adbin IS NOT NULL AND pgtwin_migrate.mutable_expression(ad.adbin)))
       AND pgtwin_migrate.written_here(a.xmin)
       AND stmt ~* ('\mADD\s+(COLUMN\s+)?(IF\s+NOT\s+EXISTS\s+)?('
                    || pg_catalog.regexp_replace(a.attname::text, '([.^$*+?()\[\]{}|\\])', '\\\1', 'g')
                    || '|"' || pg_catalog.regexp_replace(pg_catalog.replace(a.attname::text, '"', '""'), '([.^$*+?()\[\]{}|\\])', '\\\1', 'g')
                    || '")(\s|$)');
    IF cols IS NULL THEN CONTINUE; END IF;
    EXECUTE pg_catalog.format('SELECT EXISTS (SELECT 1 FROM %s)', rel) INTO has_rows;
    IF has_rows THEN
      found_text := pg_catalog.concat_ws(', ', found_text, pg_catalog.format('%s(%s)', rel, cols));
    END IF;
  END LOOP;
  IF found_text IS NULL THEN RETURN NULL; END IF;
  RETURN 'rows differ: ' || found_text || ' filled on each cluster separately'
      || ' (a default that is not immutable, or an identity); copy the values over, then mark this row handled';
END
$fn$;

-- ---------------------------------------------------------------- capture

-- Records one DDL firing. Called only by capture_ddl (PUBLIC may not), and
-- only inside an event trigger: the command tag comes from the trigger, the
-- statement from the session's own query string, the author from the
-- session's role.
CREATE OR REPLACE FUNCTION pgtwin_migrate.record_ddl(tag text, author_path text, author_strings text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET standard_conforming_strings = on AS $fn$
DECLARE
  q text := coalesce(pg_catalog.current_query(), '');
  author text;
  parts text[];
  ddl text[] := '{}';
  part text;
  k int;
  stmt text;
  ok boolean := true;
  why text;
  diverges text;
  tag_words text[] := pg_catalog.regexp_split_to_array(tag, ' ');
  words text[];
BEGIN
  -- Raises an error outside an event trigger.
  PERFORM 1 FROM pg_catalog.pg_event_trigger_ddl_commands() LIMIT 1;
  IF tag LIKE '%SUBSCRIPTION' OR tag LIKE '%PUBLICATION' THEN RETURN; END IF;
  -- Objects of the migration itself and temporary objects are not replicated.
  -- (DROP reports no objects here; a DROP of something the other side lacks is a no-op there.)
  IF EXISTS (SELECT 1 FROM pg_catalog.pg_event_trigger_ddl_commands())
     AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_event_trigger_ddl_commands() d
                      WHERE coalesce(d.schema_name, '') <> 'pgtwin_migrate'
                        AND coalesce(d.schema_name, '') NOT LIKE 'pg\_temp%') THEN
    RETURN;
  END IF;
  -- The role the session acts as: SET ROLE's, else the login's (current_user
  -- is this function's owner here).
  author := pg_catalog.current_setting('role');
  IF author = 'none' THEN author := session_user; END IF;

  parts := pgtwin_migrate.split_statements(q);
  FOREACH part IN ARRAY parts LOOP
    IF pgtwin_migrate.fires_event_trigger(part) THEN ddl := ddl || part; END IF;
  END LOOP;
  -- This is the (k+1)-th DDL firing of this query string.
  SELECT count(*) INTO k FROM pgtwin_migrate.ddl_log l
   WHERE l.backend_pid = pg_catalog.pg_backend_pid() AND l.statement_at = pg_catalog.statement_timestamp() AND l.query_md5 = pg_catalog.md5(q);
  IF k < coalesce(pg_catalog.array_length(ddl, 1), 0) THEN
    stmt := ddl[k + 1];
    words := pgtwin_migrate.leading_words(stmt, 8);
    IF words[1] <> tag_words[1] OR NOT (tag_words[pg_catalog.array_length(tag_words, 1)] = ANY (words)) THEN
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
  IF ok AND tag IN ('CREATE FUNCTION', 'CREATE PROCEDURE') AND stmt ~* '\mBEGIN\s+ATOMIC\M' THEN
    ok := false;
    why := 'a BEGIN ATOMIC body cannot be told apart from its query string; replay it by hand';
  END IF;
  IF ok AND author_strings <> 'on' THEN
    ok := false;
    why := 'run with standard_conforming_strings off, which the replay does not share; replay it by hand';
  END IF;
  IF ok AND tag = 'ALTER TABLE' THEN diverges := pgtwin_migrate.diverging_change(stmt); END IF;
  INSERT INTO pgtwin_migrate.ddl_log
         (origin, query_md5, role_name, author_superuser, search_path, command_tag, statement, replayable, not_replayable_reason, diverges)
  VALUES (pgtwin_migrate.side(), pg_catalog.md5(q), author,
          coalesce((SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname = author), false),
          author_path, tag, stmt, ok, why, diverges);
END
$fn$;

-- The event trigger's function. SECURITY DEFINER (the author needs no
-- privilege here) without arguments. It is the one function without
-- settings of its own, because it must read the author's first: its first
-- statements do that with schema-qualified names, no operator and no
-- backslash, the next sets pg_catalog, pg_temp for the rest of the
-- transaction, and the last puts the author's back. Its variables are
-- declared with qualified types for the same reason.
CREATE OR REPLACE FUNCTION pgtwin_migrate.capture_ddl() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER AS $fn$
DECLARE
  author_path pg_catalog.text;
  author_strings pg_catalog.text;
BEGIN
  author_path := pg_catalog.current_setting('search_path');
  author_strings := pg_catalog.current_setting('standard_conforming_strings');
  PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
  PERFORM pgtwin_migrate.record_ddl(tg_tag, author_path, author_strings);
  PERFORM pg_catalog.set_config('search_path', author_path, true);
END
$fn$;

-- Earlier versions recorded through this, callable by anyone.
DROP FUNCTION IF EXISTS pgtwin_migrate.log_ddl(text, text, text, text);

-- ---------------------------------------------------------------- replay

-- Runs one statement as its author: inside a SECURITY DEFINER function owned
-- by the author (made for this statement, gone when it returns), where the
-- author's search_path is set and PostgreSQL refuses every role change.
CREATE OR REPLACE FUNCTION pgtwin_migrate.run_as_author(author text, author_path text, stmt text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET standard_conforming_strings = on AS $fn$
BEGIN
  CREATE FUNCTION pgtwin_migrate.replay_as_author(author_path text, stmt text) RETURNS void
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET standard_conforming_strings = on AS $body$
  BEGIN
    PERFORM pg_catalog.set_config('search_path', author_path, true);
    EXECUTE stmt;
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
  END
  $body$;
  REVOKE ALL ON FUNCTION pgtwin_migrate.replay_as_author(text, text) FROM PUBLIC;
  EXECUTE pg_catalog.format('ALTER FUNCTION pgtwin_migrate.replay_as_author(text, text) OWNER TO %I', author);
  PERFORM pgtwin_migrate.replay_as_author(author_path, stmt);
  DROP FUNCTION pgtwin_migrate.replay_as_author(text, text);
END
$fn$;

-- The replay trigger (ENABLE REPLICA: it fires for rows the apply worker
-- writes). Refuses what it must not run, runs the rest as its author, and
-- records the outcome in the row instead of stopping replication.
CREATE OR REPLACE FUNCTION pgtwin_migrate.replay_ddl() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET standard_conforming_strings = on AS $fn$
DECLARE
  super_here boolean;
  parts text[];
  refusal text;
BEGIN
  IF NOT NEW.replayable OR NEW.origin = pgtwin_migrate.side() THEN
    RETURN NEW;
  END IF;
  SELECT r.rolsuper INTO super_here FROM pg_catalog.pg_roles r WHERE r.rolname = NEW.role_name;
  IF NOT FOUND THEN
    refusal := pg_catalog.format('its author %I has no role on this cluster; create the role (pg_dumpall --roles-only), replay the statement by hand, then mark it handled', NEW.role_name);
  ELSIF super_here AND NOT NEW.author_superuser THEN
    refusal := pg_catalog.format('its author %I is a superuser on this cluster but was not where the statement ran; replay it by hand if that is right, then mark it handled', NEW.role_name);
  ELSE
    parts := pgtwin_migrate.split_statements(NEW.statement);
    IF coalesce(pg_catalog.array_length(parts, 1), 0) <> 1 THEN
      refusal := 'it holds more than one statement; replay them by hand, then mark it handled';
    END IF;
  END IF;
  IF refusal IS NOT NULL THEN
    NEW.replayable := false;
    NEW.not_replayable_reason := 'refused: ' || refusal;
    RETURN NEW;
  END IF;
  BEGIN
    -- Inside a transaction, CONCURRENTLY is not allowed; the plain form does the same.
    PERFORM pgtwin_migrate.run_as_author(
      NEW.role_name,
      NEW.search_path,
      pg_catalog.regexp_replace(parts[1], '^(\s*(CREATE\s+(UNIQUE\s+)?INDEX|DROP\s+INDEX|REINDEX\s+\w+))\s+CONCURRENTLY\M', '\1', 'i'));
    NEW.applied_at := pg_catalog.clock_timestamp();
  EXCEPTION
    WHEN undefined_table OR undefined_object OR undefined_function OR invalid_schema_name THEN
      IF NEW.command_tag LIKE 'DROP %' THEN
        NEW.applied_at := pg_catalog.clock_timestamp();  -- nothing to drop here
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
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger
                  WHERE tgname = 'replay_ddl' AND tgrelid = 'pgtwin_migrate.ddl_log'::pg_catalog.regclass) THEN
    CREATE TRIGGER replay_ddl BEFORE INSERT ON pgtwin_migrate.ddl_log FOR EACH ROW EXECUTE FUNCTION pgtwin_migrate.replay_ddl();
  END IF;
  ALTER TABLE pgtwin_migrate.ddl_log ENABLE REPLICA TRIGGER replay_ddl;
END
$do$;

-- ---------------------------------------------------------------- privileges

-- No one but the migration role: event triggers and the replay trigger call
-- their functions without an EXECUTE check.
REVOKE ALL ON SCHEMA pgtwin_migrate FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA pgtwin_migrate FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA pgtwin_migrate FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA pgtwin_migrate FROM PUBLIC;
