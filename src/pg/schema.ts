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
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

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

/** The pg_dump of target_pg_bindir (else PATH) and its major version, when its pg_restore is beside it. */
export async function findPgDump(bindir: string, timeoutMs: number): Promise<PgDump | undefined> {
  const path = bindir ? `${bindir}/pg_dump` : which('pg_dump');
  if (!path) return undefined;
  try {
    const r = await run(path, ['--version'], { timeoutMs });
    const m = /\(PostgreSQL\)\s+(\d+)/.exec(r.stdout);
    // The copy needs its pg_restore too, from the same directory (the same version).
    return r.code === 0 && m && existsSync(join(dirname(path), 'pg_restore')) ? { path, major: Number(m[1]) } : undefined;
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

/** libpq's connection string and environment for a client program (pg_dump, pg_restore) of the agent. */
function programConnection(program: PgDump, ep: Endpoint, database: string, name: string): { conninfo: string; env: NodeJS.ProcessEnv } {
  const verified = ep.sslmode === 'verify-ca' || ep.sslmode === 'verify-full';
  const conninfo = [
    `host=${conninfoValue(ep.host)}`,
    `port=${ep.port}`,
    `dbname=${conninfoValue(database)}`,
    `user=${conninfoValue(ep.user)}`,
    `sslmode=${ep.sslmode}`,
    ...(!verified && program.major >= 16 ? ['require_auth=!password'] : []),
    `application_name=${name}`,
  ].join(' ');
  const ca = caFile(ep);
  // Replica mode, as every session of the agent: no fence or capture trigger fires for it.
  const env = { ...process.env, PGPASSFILE: ep.passfile, PGCONNECT_TIMEOUT: '10', PGOPTIONS: '-c session_replication_role=replica', ...(ca ? { PGSSLROOTCERT: ca } : {}) };
  return { conninfo, env };
}

/**
 * The agent's own objects that a dump of the source carries outside its
 * schema: triggers and event triggers whose function is in the agent's schema
 * (the write fence, the DDL capture). As `catalog oid` pairs, the way
 * `pg_restore --list` names every entry.
 */
export async function agentObjectIds(c: pg.Client): Promise<Set<string>> {
  const { rows } = await c.query<{ id: string }>(
    `SELECT t.tableoid::text || ' ' || t.oid::text AS id FROM pg_catalog.pg_trigger t
       JOIN pg_catalog.pg_proc p ON p.oid = t.tgfoid JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
      WHERE n.nspname = $1 AND NOT t.tgisinternal
     UNION ALL
     SELECT e.tableoid::text || ' ' || e.oid::text FROM pg_catalog.pg_event_trigger e
       JOIN pg_catalog.pg_proc p ON p.oid = e.evtfoid JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
      WHERE n.nspname = $1`,
    [AGENT_SCHEMA],
  );
  return new Set(rows.map((r) => r.id));
}

/**
 * The table of contents `pg_restore --list` printed, without the entries of
 * `exclude` (by catalog and object oid, never by name: a name is the
 * caller's text). Lines that are not entries (comments) are kept as they are.
 */
export function withoutEntries(list: string, exclude: ReadonlySet<string>): string {
  return list
    .split('\n')
    .filter((line) => {
      const m = /^\d+; (\d+) (\d+) /.exec(line);
      return !m || !exclude.has(`${m[1]} ${m[2]}`);
    })
    .join('\n');
}

/**
 * Copies the source database's schema to the target: pg_dump in its custom
 * format (without the agent's schema, publications and subscriptions), the
 * agent's other objects left out of pg_restore's list by their oids, and
 * pg_restore into the target in one transaction — all of it or nothing. No
 * SQL text is parsed or edited on the way: a comment or a name cannot become
 * a statement. Passwords come from the password files through PGPASSFILE,
 * never an argument; pg_dump/pg_restore 16 or later refuse to send one in
 * clear text unless the server's certificate is verified.
 */
export async function copySchema(dump: PgDump, source: Endpoint, target: Endpoint, database: string, exclude: ReadonlySet<string>, timeoutMs: number): Promise<void> {
  const restore: PgDump = { path: join(dirname(dump.path), 'pg_restore'), major: dump.major };
  const dir = await mkdtemp(join(tmpdir(), 'pgtwin-migrate-schema-'));
  try {
    const archive = join(dir, 'schema.dump');
    const from = programConnection(dump, source, database, 'pgtwin-migrate-schema-copy');
    const d = await run(dump.path, ['--schema-only', '--format=custom', '--no-publications', '--no-subscriptions', `--exclude-schema=${AGENT_SCHEMA}`, `--file=${archive}`, `--dbname=${from.conninfo}`], { timeoutMs, env: from.env });
    if (d.code !== 0) throw new PgFailure('sql', `pg_dump of ${JSON.stringify(database)} failed (exit ${d.code}): ${firstLine(d)}`);
    const l = await run(restore.path, ['--list', archive], { timeoutMs });
    if (l.code !== 0) throw new PgFailure('sql', `pg_restore --list of the schema of ${JSON.stringify(database)} failed (exit ${l.code}): ${firstLine(l)}`);
    const list = join(dir, 'schema.list');
    await writeFile(list, withoutEntries(l.stdout, exclude), { mode: 0o600, flag: 'wx' });
    const to = programConnection(restore, target, database, 'pgtwin-migrate-schema-copy');
    const r = await run(restore.path, ['--single-transaction', '--exit-on-error', `--use-list=${list}`, `--dbname=${to.conninfo}`, archive], { timeoutMs, env: to.env });
    if (r.code !== 0) throw new PgFailure('sql', `pg_restore of the schema of ${JSON.stringify(database)} into the target failed (exit ${r.code}): ${firstLine(r)}`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
