/**
 * Tables and schema: what FOR ALL TABLES will publish, what the target lacks,
 * tables that cannot be published safely, and the schema copy by pg_dump.
 */
import type pg from 'pg';
import { AGENT_SCHEMA, qualified } from './sql';
import type { TableName } from './publication';
import { run, firstLine } from '../ocf/exec';
import { caFile, conninfoValue, type Endpoint } from './connection';
import { PgFailure } from './errors';
import { which } from '../ocf/tools';
import { shellWord } from '../ocf/text';

/** Ordinary tables outside the system and agent schemas, partitions counted as their root. */
const USER_TABLES = `
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
   AND n.nspname NOT IN ('pg_catalog', 'information_schema', '${AGENT_SCHEMA}')
   AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'`;

export async function userTables(c: pg.Client, persistence: 'p' | 'u' = 'p'): Promise<TableName[]> {
  const { rows } = await c.query<{ nspname: string; relname: string }>(
    `SELECT n.nspname, c.relname ${USER_TABLES} AND c.relpersistence = $1 ORDER BY 1, 2`,
    [persistence],
  );
  return rows.map((r) => ({ schema: r.nspname, table: r.relname }));
}

/** Tables whose UPDATE and DELETE would fail once published: no primary key and no usable replica identity. */
export async function tablesWithoutIdentity(c: pg.Client): Promise<TableName[]> {
  const { rows } = await c.query<{ nspname: string; relname: string }>(
    `SELECT n.nspname, c.relname ${USER_TABLES} AND c.relpersistence = 'p'
        AND (c.relreplident = 'n'
             OR (c.relreplident = 'd' AND NOT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary)))
      ORDER BY 1, 2`,
  );
  return rows.map((r) => ({ schema: r.nspname, table: r.relname }));
}

/** Which of `tables` exist in this database. */
export async function existingTables(c: pg.Client, tables: readonly TableName[]): Promise<Set<string>> {
  if (tables.length === 0) return new Set();
  const { rows } = await c.query<{ nspname: string; relname: string }>(
    `SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind IN ('r', 'p') AND (n.nspname, c.relname) IN (SELECT * FROM unnest($1::text[], $2::text[]))`,
    [tables.map((t) => t.schema), tables.map((t) => t.table)],
  );
  return new Set(rows.map((r) => `${r.nspname}.${r.relname}`));
}

/** Tables among `tables` that already hold rows (an initial copy would duplicate them). */
export async function nonEmptyTables(c: pg.Client, tables: readonly TableName[]): Promise<TableName[]> {
  const out: TableName[] = [];
  for (const t of tables) {
    const { rowCount } = await c.query(`SELECT 1 FROM ${qualified(t.schema, t.table)} LIMIT 1`);
    if ((rowCount ?? 0) > 0) out.push(t);
  }
  return out;
}

export async function largeObjectCount(c: pg.Client): Promise<number> {
  const { rows } = await c.query<{ n: number }>('SELECT count(*)::int AS n FROM pg_largeobject_metadata');
  return rows[0]?.n ?? 0;
}

// ---------------------------------------------------------------- pg_dump

export interface PgDump {
  readonly path: string;
  readonly major: number;
}

/** The pg_dump of target_pg_bindir (else PATH) and its major version. */
export async function findPgDump(bindir: string, timeoutMs: number): Promise<PgDump | undefined> {
  const path = bindir ? `${bindir}/pg_dump` : which('pg_dump');
  if (!path) return undefined;
  try {
    const r = await run(path, ['--version'], { timeoutMs });
    const m = /\(PostgreSQL\)\s+(\d+)/.exec(r.stdout);
    return r.code === 0 && m ? { path, major: Number(m[1]) } : undefined;
  } catch {
    return undefined;
  }
}

/** pg_dump's -t pattern for one exact table (quoted, wildcards escaped). */
export function dumpPattern(t: TableName): string {
  const q = (s: string) => `"${s.replace(/"/g, '""').replace(/([*?])/g, '\\$1')}"`;
  return `${q(t.schema)}.${q(t.table)}`;
}

/** The shell command a DBA would run to create the missing tables by hand. */
export function schemaCopyCommand(source: Endpoint, target: Endpoint, database: string, tables: readonly TableName[]): string {
  const sh = (v: string) => `'${v.replace(/'/g, `'\\''`)}'`;
  const ts = tables.map((t) => `-t ${sh(dumpPattern(t))}`).join(' ');
  const db = sh(database);
  // pg_dump -t leaves out CREATE SCHEMA: create the schemas first, and stop at the first error.
  const schemas = [...new Set(tables.map((t) => t.schema))].filter((s) => s !== 'public');
  const create = schemas.map((s) => `echo ${sh(`CREATE SCHEMA IF NOT EXISTS "${s.replace(/"/g, '""')}";`)}; `).join('');
  const dump = `pg_dump -s -h ${shellWord(source.host)} -p ${source.port} -U ${shellWord(source.user)} ${ts} -d ${db}`;
  return `{ ${create}${dump}; } | psql -v ON_ERROR_STOP=1 -h ${shellWord(target.host)} -p ${target.port} -U ${shellWord(target.user)} -d ${db}`;
}

/**
 * The source database's schema as SQL, without the agent's own schema,
 * publications, subscriptions and psql meta-commands. The password comes
 * from the source password file through PGPASSFILE, never an argument; the
 * CA file through PGSSLROOTCERT; and pg_dump 16 or later refuses to send
 * the password in clear text unless the server's certificate is verified.
 */
export async function dumpSchema(dump: PgDump, source: Endpoint, database: string, timeoutMs: number): Promise<string> {
  const verified = source.sslmode === 'verify-ca' || source.sslmode === 'verify-full';
  const conninfo = [
    `host=${conninfoValue(source.host)}`,
    `port=${source.port}`,
    `dbname=${conninfoValue(database)}`,
    `user=${conninfoValue(source.user)}`,
    `sslmode=${source.sslmode}`,
    ...(!verified && dump.major >= 16 ? ['require_auth=!password'] : []),
    'application_name=pgtwin-migrate-schema-copy',
  ].join(' ');
  const ca = caFile(source);
  const r = await run(
    dump.path,
    ['--schema-only', '--no-publications', '--no-subscriptions', `--exclude-schema=${AGENT_SCHEMA}`, `--dbname=${conninfo}`],
    { timeoutMs, env: { ...process.env, PGPASSFILE: source.passfile, PGCONNECT_TIMEOUT: '10', ...(ca ? { PGSSLROOTCERT: ca } : {}) } },
  );
  if (r.code !== 0) {
    throw new PgFailure('sql', `pg_dump of ${JSON.stringify(database)} failed (exit ${r.code}): ${firstLine(r)}`);
  }
  return withoutAgentObjects(
    r.stdout
      .split('\n')
      .filter((line) => !/^\\(restrict|unrestrict|connect)\b/.test(line))
      .join('\n'),
  );
}

/** The agent's own event triggers (fence, DDL capture) and table fence triggers, as pg_dump names them. */
const AGENT_EVENT_TRIGGER = /^(CREATE|ALTER|COMMENT ON) EVENT TRIGGER "?(pgtwin_migrate_|replicate_ddl_to_)/;
const AGENT_TABLE_TRIGGER = /^(CREATE TRIGGER pgtwin_migrate_fence |ALTER TABLE .* (ENABLE|DISABLE)( ALWAYS| REPLICA)? TRIGGER pgtwin_migrate_fence;$)/;

/**
 * A schema dump without the agent's own objects: the target gets its own
 * fence and capture triggers (its functions would not exist yet when the
 * dump is applied). pg_dump writes each of these statements on lines of its
 * own, an event trigger over several lines up to the one ending in `;`.
 */
export function withoutAgentObjects(script: string): string {
  const out: string[] = [];
  let skipping = false;
  for (const line of script.split('\n')) {
    if (skipping || AGENT_EVENT_TRIGGER.test(line)) {
      skipping = !line.trimEnd().endsWith(';');
      continue;
    }
    if (AGENT_TABLE_TRIGGER.test(line)) continue;
    out.push(line);
  }
  return out.join('\n');
}

/** Applies a schema script in one transaction: all of it, or nothing. */
export async function applySchema(c: pg.Client, script: string): Promise<void> {
  await c.query('BEGIN');
  try {
    await c.query(script);
    await c.query('COMMIT');
  } catch (err) {
    await c.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}
