/**
 * Partitioned tables under a write load: a TRUNCATE of one partition, a
 * DETACH followed by the monitor's look at the published tables, and an
 * ATTACH each leave the target with exactly the source's rows, partition by
 * partition.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { Migration, waitFor, waitTablesSynchronised } from '../support/migration';
import { sql, type RigServer } from '../support/rig';
import { objectNames, DEFAULT_PREFIXES } from '../../src/migration/names';

const DB = 'saf_part';
const SCHEMA = `
  CREATE TABLE events (id bigserial, region int NOT NULL, token uuid NOT NULL, PRIMARY KEY (id, region)) PARTITION BY LIST (region);
  CREATE TABLE events_1 PARTITION OF events FOR VALUES IN (1);
  CREATE TABLE events_2 PARTITION OF events FOR VALUES IN (2);
  CREATE TABLE events_3 PARTITION OF events FOR VALUES IN (3);`;
const SEED = 'INSERT INTO events (region, token) SELECT 1 + g % 3, gen_random_uuid() FROM generate_series(1, 600) g';
const names = objectNames(DB, DEFAULT_PREFIXES);

/** Inserts through the partitioned table into the regions listed in `regions` (changed as the test goes). */
class RegionWriter {
  readonly acked: Array<{ region: number; token: string }> = [];
  readonly failed: string[] = [];
  private running = true;
  private readonly loop: Promise<void>;

  constructor(
    server: RigServer,
    readonly regions: number[],
    perSecond = 60,
  ) {
    this.loop = (async () => {
      const c = new pg.Client({ host: server.socket, port: server.port, user: 'postgres', database: DB, application_name: 'test-writer' });
      c.on('error', () => undefined);
      await c.connect();
      try {
        for (let i = 0; this.running; i++) {
          const t0 = Date.now();
          const region = this.regions[i % this.regions.length]!;
          const token = randomUUID();
          try {
            await c.query('INSERT INTO events (region, token) VALUES ($1, $2)', [region, token]);
            this.acked.push({ region, token });
          } catch (err) {
            this.failed.push((err as Error).message);
          }
          const wait = 1000 / perSecond - (Date.now() - t0);
          if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        }
      } finally {
        await c.end().catch(() => undefined);
      }
    })();
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
  }
}

/** A table's rows, as a count and a digest of the sorted tokens. */
const contents = async (server: RigServer, table: string) =>
  (await sql<{ n: string; d: string | null }>(server, DB, `SELECT count(*)::text AS n, md5(string_agg(token::text, ',' ORDER BY token)) AS d FROM ${table}`))[0]!;

/** Until the target holds exactly the source's rows in each of the tables. */
async function samePerTable(m: Migration, tables: readonly string[], timeoutMs = 30_000): Promise<void> {
  let last = '';
  await waitFor(
    `target rows equal to the source's in ${tables.join(', ')}`,
    async () => {
      const diff: string[] = [];
      for (const t of tables) {
        const [s, g] = [await contents(m.source, t), await contents(m.target, t)];
        if (s.n !== g.n || s.d !== g.d) diff.push(`${t}: source ${s.n} rows, target ${g.n}`);
      }
      last = diff.join('; ');
      return diff.length === 0;
    },
    timeoutMs,
    200,
  ).catch((err: Error) => {
    throw new Error(`${err.message} (${last})`);
  });
}

describe('partitioned tables under writes', () => {
  const m = new Migration({ instance: 'migration-saf-part', databases: [DB], schema: SCHEMA, sourceData: SEED });
  let writer: RegionWriter | undefined;

  /** Monitors as they run every 10 s, each looking at the published tables as it would once its minute is over. */
  async function monitorUntilHealthy(timeoutMs = 40_000): Promise<void> {
    let last = '';
    await waitFor(
      'a healthy monitor',
      async () => {
        m.lookAgain();
        const r = await m.run('monitor', {}, { interval: 10_000 });
        last = `exit ${r.code}: ${r.exitReason ?? ''}`;
        return r.code === 0 && /1 streaming/.test(r.stderr);
      },
      timeoutMs,
      1_000,
    ).catch((err: Error) => {
      throw new Error(`${err.message}; last monitor ${last}`);
    });
  }

  const syncErrors = async () =>
    Number((await sql<{ n: string }>(m.target, DB, 'SELECT coalesce(sum(sync_error_count), 0)::text AS n FROM pg_stat_subscription_stats WHERE subname = $1', [names.forwardSub]))[0]!.n);

  beforeAll(async () => {
    await m.setUp();
    const start = await m.run('start');
    expect(start.code, start.stderr).toBe(0);
    await waitFor('copied', async () => (await contents(m.target, 'events')).n === '600', 60_000);
    await waitTablesSynchronised(m.target, DB);
  });
  afterAll(async () => {
    await writer?.stop();
    await m.cleanup();
  });

  it('a TRUNCATE of one partition under writes empties it on the target too', async () => {
    writer = new RegionWriter(m.source, [1, 2, 3]);
    await waitFor('writes', async () => writer!.acked.length > 30, 10_000);
    await sql(m.source, DB, 'TRUNCATE events_2');
    await waitFor('writes after the truncate', async () => writer!.acked.length > 90, 10_000);
    await writer.stop();
    expect(writer.failed).toEqual([]);
    await samePerTable(m, ['events_1', 'events_2', 'events_3']);
  });

  it('a DETACHed partition keeps its rows once on the target, through the monitor\'s look at the published tables', async () => {
    writer = new RegionWriter(m.source, [1, 2]);
    await waitFor('writes', async () => writer!.acked.length > 30, 10_000);
    await sql(m.source, DB, 'ALTER TABLE events DETACH PARTITION events_3');
    // The detached table lives on as a table of its own and takes writes directly.
    await sql(m.source, DB, "INSERT INTO events_3 (id, region, token) SELECT nextval('events_id_seq'), 3, gen_random_uuid() FROM generate_series(1, 50)");
    await monitorUntilHealthy();
    await waitFor('writes after the detach', async () => writer!.acked.length > 90, 10_000);
    await writer.stop();
    await samePerTable(m, ['events_1', 'events_2', 'events_3']);
    // A few more monitors: none copies the detached table again.
    for (let i = 0; i < 3; i++) {
      m.lookAgain();
      const r = await m.run('monitor', {}, { interval: 10_000 });
      expect(r.code, r.stderr).toBe(0);
    }
    await samePerTable(m, ['events_3']);
    expect(await syncErrors()).toBe(0);
  });

  it('an ATTACHed table keeps streaming as a partition', async () => {
    await sql(m.source, DB, 'CREATE TABLE events_4 (id bigint NOT NULL, region int NOT NULL, token uuid NOT NULL, PRIMARY KEY (id, region))');
    await sql(m.source, DB, "INSERT INTO events_4 SELECT nextval('events_id_seq'), 4, gen_random_uuid() FROM generate_series(1, 50)");
    await monitorUntilHealthy();
    await samePerTable(m, ['events_4']);
    writer = new RegionWriter(m.source, [1, 2]);
    await sql(m.source, DB, 'ALTER TABLE events ATTACH PARTITION events_4 FOR VALUES IN (4)');
    writer.regions.push(4);
    await waitFor('writes into the attached partition', async () => writer!.acked.filter((a) => a.region === 4).length > 20, 10_000);
    await monitorUntilHealthy();
    await writer.stop();
    expect(writer.failed).toEqual([]);
    await samePerTable(m, ['events_1', 'events_2', 'events_3', 'events_4']);
    expect(await syncErrors()).toBe(0);
  });

  it('a publication an earlier version made through the root is left so, with a warning, where switching would skip or recopy partitions', async () => {
    await sql(m.source, DB, `ALTER PUBLICATION ${names.forwardPub} SET (publish_via_partition_root = true)`);
    expect((await m.run('stop')).code).toBe(0);
    const start = await m.run('start');
    expect(start.code, start.stderr).toBe(0);
    expect(start.stderr).toMatch(/publishes partitioned tables through their root \(made by an earlier version\): a TRUNCATE of one partition is not replicated/);
    const via = await sql<{ v: boolean }>(m.source, DB, 'SELECT pubviaroot AS v FROM pg_publication WHERE pubname = $1', [names.forwardPub]);
    expect(via[0]!.v).toBe(true);
  });
});

describe('partitions at pre-flight and in publications made before', () => {
  const db = 'saf_part_b';
  const pub = objectNames(db, DEFAULT_PREFIXES).forwardPub;
  const m = new Migration({ instance: 'migration-saf-part-b', databases: [db] });
  beforeAll(() => m.setUp());
  afterAll(() => m.cleanup());

  it('a target partitioned differently from the source is refused at pre-flight, naming the missing partition', async () => {
    await sql(m.source, db, SCHEMA);
    await sql(m.target, db, `CREATE TABLE events (id bigserial, region int NOT NULL, token uuid NOT NULL, PRIMARY KEY (id, region)) PARTITION BY LIST (region);
                             CREATE TABLE events_1 PARTITION OF events FOR VALUES IN (1);
                             CREATE TABLE events_rest PARTITION OF events DEFAULT;`);
    const pf = await m.cli(['preflight']);
    expect(pf.code).not.toBe(0);
    expect(pf.stdout + pf.stderr).toMatch(/2 partition\(s\) of the source missing: public\.events_2, public\.events_3; partitions are replicated as tables of their own/);
    const start = await m.run('start');
    expect(start.code).toBe(6);
    expect(start.exitReason).toMatch(/2 partition\(s\) of the source missing/);
  });

  it('a publication an earlier version made through the root is switched to partitions where no partitioned table is published', async () => {
    await sql(m.source, db, 'DROP TABLE events');
    await sql(m.target, db, 'DROP TABLE events');
    await sql(m.source, db, 'CREATE TABLE plain (id bigserial PRIMARY KEY, token uuid)');
    await sql(m.target, db, 'CREATE TABLE plain (id bigserial PRIMARY KEY, token uuid)');
    await sql(m.source, db, `CREATE PUBLICATION ${pub} FOR ALL TABLES WITH (publish_via_partition_root = true)`);
    const start = await m.run('start');
    expect(start.code, start.stderr).toBe(0);
    expect(start.stderr).toMatch(/now publishes partitions as themselves/);
    const via = await sql<{ v: boolean }>(m.source, db, 'SELECT pubviaroot AS v FROM pg_publication WHERE pubname = $1', [pub]);
    expect(via[0]!.v).toBe(false);
  });
});
