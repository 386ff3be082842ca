-- pgtwin-migrate: the agent's schema must be the migration role's, or
-- another superuser's, with everything in it. Its functions run as
-- superuser (event triggers, the replay trigger, SECURITY DEFINER): a
-- schema or an object created in advance by another role — a database
-- owner may create schemas — would let that role replace what they run
-- and become superuser. Run before the install touches anything, and
-- again at its end, in the same transaction.
DO $owner$
DECLARE
  found text;
BEGIN
  SELECT pg_catalog.format('schema pgtwin_migrate is owned by role %I, which is not a superuser', r.rolname)
    INTO found
    FROM pg_catalog.pg_namespace n JOIN pg_catalog.pg_roles r ON r.oid = n.nspowner
   WHERE n.nspname = 'pgtwin_migrate' AND NOT r.rolsuper;
  IF found IS NULL THEN
    SELECT pg_catalog.format('%s %s in schema pgtwin_migrate is owned by role %I, which is not a superuser', o.kind, o.name, r.rolname)
      INTO found
      FROM (SELECT 'relation' AS kind, c.relname::text AS name, c.relowner AS owner FROM pg_catalog.pg_class c
             WHERE c.relnamespace = (SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = 'pgtwin_migrate')
            UNION ALL
            SELECT 'function', p.oid::pg_catalog.regprocedure::text, p.proowner FROM pg_catalog.pg_proc p
             WHERE p.pronamespace = (SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = 'pgtwin_migrate')
            UNION ALL
            SELECT 'type', t.typname::text, t.typowner FROM pg_catalog.pg_type t
             WHERE t.typnamespace = (SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = 'pgtwin_migrate')
            UNION ALL
            SELECT 'operator', o.oprname::text, o.oprowner FROM pg_catalog.pg_operator o
             WHERE o.oprnamespace = (SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = 'pgtwin_migrate')) o
      JOIN pg_catalog.pg_roles r ON r.oid = o.owner
     WHERE NOT r.rolsuper
     LIMIT 1;
  END IF;
  IF found IS NOT NULL THEN
    RAISE EXCEPTION USING
      ERRCODE = 'insufficient_privilege',
      MESSAGE = pg_catalog.format('database %I: %s; the agent installs nothing there', pg_catalog.current_database(), found),
      HINT = 'Another role made the schema or an object in it before the agent did. Check what it holds, then, as a superuser: DROP SCHEMA pgtwin_migrate CASCADE';
  END IF;
END
$owner$;
