/** The publication of one database: FOR ALL TABLES, created and dropped idempotently. */
import type pg from 'pg';
import { ident } from './sql';
import { ALREADY_EXISTS, sqlState } from './errors';

export async function publicationExists(c: pg.Client, name: string): Promise<boolean> {
  const { rowCount } = await c.query('SELECT 1 FROM pg_publication WHERE pubname = $1', [name]);
  return (rowCount ?? 0) > 0;
}

/**
 * FOR ALL TABLES, so tables created later are published too; changes of
 * partitions are published as their root table, so the target may
 * partition differently. Returns whether it was created now.
 */
export async function createPublication(c: pg.Client, name: string): Promise<boolean> {
  if (await publicationExists(c, name)) return false;
  try {
    await c.query(`CREATE PUBLICATION ${ident(name)} FOR ALL TABLES WITH (publish_via_partition_root = true)`);
    return true;
  } catch (err) {
    if (ALREADY_EXISTS.has(sqlState(err) ?? '')) return false;
    throw err;
  }
}

export async function dropPublication(c: pg.Client, name: string): Promise<boolean> {
  const existed = await publicationExists(c, name);
  await c.query(`DROP PUBLICATION IF EXISTS ${ident(name)}`);
  return existed;
}

export interface TableName {
  readonly schema: string;
  readonly table: string;
}

export const tableKey = (t: TableName): string => `${t.schema}.${t.table}`;

/** Tables the publication publishes now, by schema and name. */
export async function publishedTables(c: pg.Client, name: string): Promise<TableName[]> {
  const { rows } = await c.query<{ schemaname: string; tablename: string }>(
    'SELECT schemaname, tablename FROM pg_publication_tables WHERE pubname = $1 ORDER BY 1, 2',
    [name],
  );
  return rows.map((r) => ({ schema: r.schemaname, table: r.tablename }));
}
