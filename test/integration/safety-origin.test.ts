/**
 * Rows that reach a source database through its own logical replication
 * (here: from a third PostgreSQL server that publishes into it) are part of
 * that database like any other row: forward replication must carry them to
 * the target. Only the reverse subscription may filter by origin.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Migration, waitFor, waitTablesSynchronised } from '../support/migration';
import { sql, createDatabases } from '../support/rig';
import { Writer } from '../support/writer';
import { startTempCluster, type TempCluster } from '../support/temp-cluster';
import { objectNames, DEFAULT_PREFIXES } from '../../src/migration/names';

const DB = 'saf_origin';
const UPSTREAM_DB = 'saf_upstream';
const TABLES = `
  CREATE TABLE orders (id bigserial PRIMARY KEY, token uuid NOT NULL UNIQUE);
  CREATE TABLE feed (id bigserial PRIMARY KEY, token uuid NOT NULL UNIQUE);`;
const forwardSub = objectNames(DB, DEFAULT_PREFIXES).forwardSub;

describe('rows the source receives by logical replication', () => {
  let upstream: TempCluster | undefined;
  const m = new Migration({ instance: 'migration-saf-origin', databases: [DB], schema: TABLES });
  const writers: Writer[] = [];

  const tokensOn = async (server: Migration['source'], db: string, table: string, tokens: string[]) =>
    Number((await sql<{ n: string }>(server, db, `SELECT count(*)::text AS n FROM ${table} WHERE token = ANY($1::uuid[])`, [tokens]))[0]!.n);

  beforeAll(async () => {
    upstream = await startTempCluster('saf-upstream', { major: 17, port: 54461 });
    await createDatabases(upstream.server, [UPSTREAM_DB]);
    await sql(upstream.server, UPSTREAM_DB, 'CREATE TABLE feed (id bigserial PRIMARY KEY, token uuid NOT NULL UNIQUE)');
    await sql(upstream.server, UPSTREAM_DB, "INSERT INTO feed (token) SELECT gen_random_uuid() FROM generate_series(1, 100)");
    await sql(upstream.server, UPSTREAM_DB, 'CREATE PUBLICATION up_pub FOR TABLE feed');
    await m.setUp();
    // The source database subscribes to the third server, as a consolidation or a feed would.
    await sql(m.source, DB, `CREATE SUBSCRIPTION up_sub CONNECTION 'host=127.0.0.1 port=${upstream.server.port} dbname=${UPSTREAM_DB} user=pgmigrate' PUBLICATION up_pub`);
    await waitFor('upstream rows on the source', async () => Number((await sql<{ n: string }>(m.source, DB, 'SELECT count(*)::text AS n FROM feed'))[0]!.n) === 100);
    const start = await m.run('start');
    expect(start.code, start.stderr).toBe(0);
    await waitFor('copied', async () => Number((await sql<{ n: string }>(m.target, DB, 'SELECT count(*)::text AS n FROM feed'))[0]!.n) === 100, 60_000);
    await waitTablesSynchronised(m.target, DB);
  });
  afterAll(async () => {
    for (const w of writers) await w.stop();
    await sql(m.source, DB, 'DROP SUBSCRIPTION IF EXISTS up_sub').catch(() => undefined);
    await m.cleanup();
    upstream?.destroy();
  });

  /** Writes for a while into the third server (arriving at the source by replication) and into the source itself. */
  async function writeBoth(ms: number): Promise<{ feed: string[]; orders: string[] }> {
    const feed = new Writer(() => upstream!.server, [UPSTREAM_DB], 'feed', 40).start();
    const orders = new Writer(() => m.source, [DB], 'orders', 40).start();
    writers.push(feed, orders);
    await new Promise((r) => setTimeout(r, ms));
    await Promise.all([feed.stop(), orders.stop()]);
    return { feed: feed.acknowledged().map((r) => r.token), orders: orders.acknowledged().map((r) => r.token) };
  }

  it('a row that reaches the source through its own logical replication is forwarded to the target', async () => {
    const { feed, orders } = await writeBoth(3_000);
    expect(feed.length).toBeGreaterThan(50);
    await waitFor('upstream rows on the source', async () => (await tokensOn(m.source, DB, 'feed', feed)) === feed.length, 30_000);
    await waitFor('the source\'s own rows on the target', async () => (await tokensOn(m.target, DB, 'orders', orders)) === orders.length, 30_000);
    await waitFor('upstream rows on the target', async () => (await tokensOn(m.target, DB, 'feed', feed)) === feed.length, 30_000).catch(async (err: Error) => {
      throw new Error(`${err.message}: ${await tokensOn(m.target, DB, 'feed', feed)} of ${feed.length} upstream rows reached the target`);
    });
  });

  it('a forward subscription left with origin = none by an earlier version is switched to any at start', async () => {
    // What an earlier version left (the target is fenced: a DBA's change there runs in replica mode).
    await sql(m.target, DB, `SET session_replication_role = replica; ALTER SUBSCRIPTION ${forwardSub} SET (origin = none)`);
    expect((await m.run('stop')).code).toBe(0);
    const start = await m.run('start');
    expect(start.code, start.stderr).toBe(0);
    expect(start.stderr).toMatch(/origin = none.*now any/);
    const origin = await sql<{ o: string }>(m.target, DB, 'SELECT suborigin AS o FROM pg_subscription WHERE subname = $1', [forwardSub]);
    expect(origin[0]!.o).toBe('any');
    const { feed } = await writeBoth(2_000);
    await waitFor('upstream rows on the target', async () => (await tokensOn(m.target, DB, 'feed', feed)) === feed.length, 30_000);
  });
});
