/**
 * Review finding 5 — a migrated source database that receives rows by a
 * logical replication of its own (a subscription a superuser made there,
 * from a database on another cluster — here the rig's PostgreSQL 15). Its
 * apply worker runs in session_replication_role = replica, which passes the
 * write fence: after the cutover it keeps writing rows into the old source,
 * where nothing carries them to the target (production) any more. They are
 * lost to production without anyone being told.
 *
 * Safe: start (or its pre-flight) refuses, naming the subscription; or the
 * cutover refuses (state failed), naming it; or no row is accepted on the
 * old source after the fence without reaching the target.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Migration, waitFor, waitTablesSynchronised } from '../support/migration';
import { rig, sql, ident, admin, createDatabases, dropDatabases } from '../support/rig';
import type { AgentResult } from '../support/agent';
import { SCHEMA, SEED, VIPS, count, launchSwitch, untilSwitchEnds, switchLogs, record } from '../support/attack';
import { asRole, createPlainRole, dropRoleEverywhere, disposeAnyPhase } from '../support/review';

const DB = 'rv_inbound';
const UPSTREAM = 'rv_inbound_upstream';
const SUB = 'rv_inbound_sub';
const FEEDER = 'rv_inbound_feeder';
const FEED = 'CREATE TABLE feed (id int PRIMARY KEY, note text)';

/** Which of these feed ids are on the server. */
async function feedIds(server: Migration['source'], ids: readonly number[]): Promise<number[]> {
  const rows = await sql<{ id: number }>(server, DB, 'SELECT id FROM feed WHERE id = ANY($1::int[]) ORDER BY id', [ids]);
  return rows.map((r) => r.id);
}

describe('review 5: rows a migrated source receives by its own subscription are not lost after the cutover', () => {
  const upstream = rig().servers.pg15;
  const m = new Migration({
    instance: 'rv-inbound-subscription',
    databases: [DB],
    schema: `${SCHEMA}; ${FEED}`,
    sourceData: SEED,
    params: { ...VIPS },
  });
  let start: AgentResult;

  beforeAll(async () => {
    await createPlainRole(FEEDER);
    // The upstream database (PostgreSQL 15) and its feed; the feeder is a plain role that writes there.
    await createDatabases(upstream, [UPSTREAM]);
    await sql(upstream, UPSTREAM, `${FEED}; GRANT SELECT, INSERT ON feed TO ${ident(FEEDER)}; CREATE PUBLICATION rv_upstream_pub FOR TABLE feed`);
    await m.setUp();
    // The source database's own inbound subscription, made by a superuser before the migration.
    await sql(
      m.source,
      DB,
      `CREATE SUBSCRIPTION ${SUB} CONNECTION 'host=127.0.0.1 port=${upstream.port} user=pgmigrate dbname=${UPSTREAM}' PUBLICATION rv_upstream_pub`,
    );
    await asRole(upstream, UPSTREAM, FEEDER, (c) => c.query("INSERT INTO feed SELECT g, 'before' FROM generate_series(1, 5) g"));
    await waitFor('the feed reaches the source', async () => (await feedIds(m.source, [1, 2, 3, 4, 5])).length === 5, 120_000, 250);
    start = await m.run('start');
  });
  afterAll(async () => {
    // First the inbound subscription (a database with one cannot be dropped); replica mode passes a fence.
    const c = await admin(m.source, DB).catch(() => undefined);
    if (c) {
      await c.query('SET session_replication_role = replica').catch(() => undefined);
      await c.query(`DROP SUBSCRIPTION IF EXISTS ${SUB}`).catch(() => undefined);
      await c.end().catch(() => undefined);
    }
    await disposeAnyPhase(m).catch(() => undefined);
    await dropDatabases(m.source, [DB]).catch(() => undefined);
    await dropDatabases(upstream, [UPSTREAM]).catch(() => undefined);
    await dropRoleEverywhere(FEEDER);
  });

  it('start or the cutover refuses naming the subscription, or no row lands on the old source after the fence and misses the target', async () => {
    const context = `start exit ${start.code}:\n${start.stderr}`;
    if (start.code !== 0) {
      expect(start.exitReason ?? '', context).toContain(SUB);
      return;
    }
    await waitFor(`${DB} copied`, async () => (await count(m.target, DB)) >= 300 && (await feedIds(m.target, [1, 2, 3, 4, 5])).length === 5, 120_000, 250);
    await waitTablesSynchronised(m.target, DB, 120_000);

    await launchSwitch(m);
    const r = await untilSwitchEnds(m.opts.instance);
    if (r['cutover-state'] === 'failed' && (r['cutover-error'] ?? '').includes(SUB)) return; // Safe: refused, naming it.
    expect(r['cutover-state'], `${r['cutover-error']}\n${switchLogs(m)}`).toBe('complete');
    expect((await record(m.opts.instance)).phase).toBe('reverse');

    // Production is on the target now. The upstream goes on feeding.
    const after = [100, 101, 102, 103, 104];
    await asRole(upstream, UPSTREAM, FEEDER, (c) => c.query("INSERT INTO feed SELECT g, 'after the cutover' FROM unnest($1::int[]) g", [after]));
    const onSource = await waitFor('the rows on the old source', async () => {
      const ids = await feedIds(m.source, after);
      return ids.length === after.length ? ids : undefined;
    }, 60_000, 250).catch(() => [] as number[]);
    if (onSource.length === 0) return; // Safe: the old source did not take them.
    // Taken by the fenced old source: they must reach production too.
    let onTarget: number[] = [];
    await waitFor('the rows on the target', async () => (onTarget = await feedIds(m.target, after)).length === after.length, 30_000, 500).catch(() => undefined);
    const inbound = await sql(m.source, DB, 'SELECT subname, subenabled FROM pg_subscription WHERE subname = $1', [SUB]);
    expect(
      onSource.filter((id) => !onTarget.includes(id)),
      `rows the fenced old source accepted from ${JSON.stringify(inbound)} after the cutover, and that never reached the target`,
    ).toEqual([]);
  });
});
