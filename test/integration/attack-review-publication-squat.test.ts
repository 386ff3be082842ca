/**
 * Review finding 4 — the forward publication is adopted by name: start
 * creates pgtwin_migrate_forward_pub_<token> FOR ALL TABLES only when no
 * publication of that name exists. A table owner with CREATE on the
 * database who creates one first — one table, inserts only — decides what
 * the target gets: the other tables, and every UPDATE and DELETE, never
 * arrive, and the cutover would move production onto that.
 *
 * Safe: start refuses, naming the publication; or every table and every
 * UPDATE and DELETE reach the target.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Migration, waitFor } from '../support/migration';
import { sql, ident } from '../support/rig';
import type { AgentResult } from '../support/agent';
import { asRole, createPlainRole, dropRoleEverywhere, disposeAnyPhase } from '../support/review';

const DB = 'rv_pub';
const OWNER = 'rv_pub_owner';
const PUB = `pgtwin_migrate_forward_pub_${DB}`;

async function contents(server: Migration['source']): Promise<{ t1: string[]; t2: string[] }> {
  const rows = async (t: string) => (await sql<{ r: string }>(server, DB, `SELECT id || ':' || v AS r FROM ${t} ORDER BY id`)).map((x) => x.r);
  return { t1: await rows('t1'), t2: await rows('t2') };
}

describe('review 4: a publication created under the agent\'s name before the first start is not adopted', () => {
  const m = new Migration({
    instance: 'rv-publication-squat',
    databases: [DB],
    schema: 'CREATE TABLE t1 (id int PRIMARY KEY, v text); CREATE TABLE t2 (id int PRIMARY KEY, v text)',
    sourceData: "INSERT INTO t1 SELECT g, 'a' FROM generate_series(1, 20) g; INSERT INTO t2 SELECT g, 'b' FROM generate_series(1, 20) g",
  });
  let start: AgentResult;

  beforeAll(async () => {
    await createPlainRole(OWNER);
    await m.setUp();
    for (const s of [m.source, m.target]) {
      await sql(s, DB, `ALTER TABLE t1 OWNER TO ${ident(OWNER)}; ALTER TABLE t2 OWNER TO ${ident(OWNER)}`);
    }
    await sql(m.source, DB, `GRANT CREATE ON DATABASE ${ident(DB)} TO ${ident(OWNER)}`);
    await asRole(m.source, DB, OWNER, (c) => c.query(`CREATE PUBLICATION ${ident(PUB)} FOR TABLE t1 WITH (publish = 'insert')`));
    start = await m.run('start');
  });
  afterAll(async () => {
    await disposeAnyPhase(m);
    await dropRoleEverywhere(OWNER);
  });

  it('start refuses naming the publication, or every table and every UPDATE and DELETE reach the target', async () => {
    const context = `start exit ${start.code}:\n${start.stderr}`;
    if (start.code !== 0) {
      expect(start.exitReason ?? '', context).toContain(PUB);
      return;
    }
    await waitFor('t1 copied', async () => (await contents(m.target)).t1.length === 20, 120_000, 250);
    // The application (the tables' owner) goes on: an update, a delete, new rows in both tables.
    await asRole(m.source, DB, OWNER, async (c) => {
      await c.query("UPDATE t1 SET v = 'updated' WHERE id = 1");
      await c.query('DELETE FROM t1 WHERE id = 2');
      await c.query("INSERT INTO t2 VALUES (1000, 'new')");
      await c.query("INSERT INTO t1 VALUES (1000, 'marker')");
    });
    // Inserts into t1 are published: once the marker is there, the update and delete were sent before it.
    await waitFor('the marker row on the target', async () => (await contents(m.target)).t1.includes('1000:marker'), 120_000, 250);
    const want = await contents(m.source);
    // Monitors may refresh the subscription (new tables): give them a minute.
    let got = await contents(m.target);
    await waitFor(
      'the target like the source',
      async () => {
        m.lookAgain();
        await m.run('monitor', {}, { interval: 10_000 });
        got = await contents(m.target);
        return JSON.stringify(got) === JSON.stringify(want);
      },
      60_000,
      2_000,
    ).catch(() => undefined);
    const pub = await sql(m.source, DB, 'SELECT pubname, pubowner::regrole::text AS owner, puballtables, pubupdate, pubdelete FROM pg_publication WHERE pubname = $1', [PUB]);
    expect(got, `publication on the source: ${JSON.stringify(pub)}; ${context}`).toEqual(want);
  });
});
