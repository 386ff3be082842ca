/** The publication of one database: FOR ALL TABLES, created and dropped idempotently. */
import type pg from 'pg';
import { ident } from './sql';
import { ALREADY_EXISTS, sqlState } from './errors';

export async function publicationExists(c: pg.Client, name: string): Promise<boolean> {
  const { rowCount } = await c.query('SELECT 1 FROM pg_publication WHERE pubname = $1', [name]);
  return (rowCount ?? 0) > 0;
}

/**
 * FOR ALL TABLES, so tables created later are published too. Partitions are
 * published as themselves (publish_via_partition_root = false, the default):
 * published through their root, a TRUNCATE of one partition is never sent,
 * and a DETACHed partition turns into a new published table that a refresh
 * would copy a second time. The target is partitioned like the source (the
 * schema copy and DDL replication see to it). Returns whether it was created now.
 */
export async function createPublication(c: pg.Client, name: string): Promise<boolean> {
  if (await publicationExists(c, name)) return false;
  try {
    await c.query(`CREATE PUBLICATION ${ident(name)} FOR ALL TABLES`);
    return true;
  } catch (err) {
    if (ALREADY_EXISTS.has(sqlState(err) ?? '')) return false;
    throw err;
  }
}

export type PartitionPublishing =
  /** Partitions are published as themselves. */
  | 'as-partitions'
  /** Was through the root, with no partitioned table published: switched, nothing else changed. */
  | 'switched'
  /** Through the root (an earlier version), and partitioned tables are published: left so. */
  | 'via-root';

/**
 * Makes a publication made by an earlier version (publish_via_partition_root
 * = true) publish partitions as themselves, where that changes nothing else:
 * when it publishes no partitioned table. With partitioned tables the
 * subscription holds their roots, and switching would make the subscriber
 * skip the partitions' changes until a refresh, then copy them again
 * (ALTER PUBLICATION warns of exactly that): it is left as it is.
 */
export async function publishPartitionsAsThemselves(c: pg.Client, name: string, serverMajor: number): Promise<PartitionPublishing> {
  // publish_via_partition_root exists since 13; before, partitions were always published as themselves.
  if (serverMajor < 13) return 'as-partitions';
  const { rows } = await c.query<{ pubviaroot: boolean }>('SELECT pubviaroot FROM pg_publication WHERE pubname = $1', [name]);
  if (!rows[0]?.pubviaroot) return 'as-partitions';
  await c.query('BEGIN');
  try {
    await c.query(`ALTER PUBLICATION ${ident(name)} SET (publish_via_partition_root = false)`);
    // Looked for inside the transaction that makes the change (only one created in the same instant could slip by).
    const { rowCount } = await c.query(
      `SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind = 'p' AND n.nspname NOT IN ('pg_catalog', 'information_schema') LIMIT 1`,
    );
    if ((rowCount ?? 0) > 0) {
      await c.query('ROLLBACK');
      return 'via-root';
    }
    await c.query('COMMIT');
    return 'switched';
  } catch (err) {
    await c.query('ROLLBACK').catch(() => undefined);
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
