/**
 * A table without a primary key created after start: FOR ALL TABLES
 * publishes it, and from then on every UPDATE and DELETE of it fails on
 * the production source. Pre-flight only looked at start; the monitor must
 * say so (degraded, naming the database and the table), and status too.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Migration, waitFor, waitTablesSynchronised } from '../support/migration';
import { sql } from '../support/rig';
import { Writer } from '../support/writer';
import { objectNames, DEFAULT_PREFIXES } from '../../src/migration/names';

const DB = 'saf_noid';
const token = objectNames(DB, DEFAULT_PREFIXES).token;

describe('a table without primary key created after start', () => {
  const m = new Migration({
    instance: 'migration-saf-noid',
    databases: [DB],
    schema: 'CREATE TABLE orders (id bigserial PRIMARY KEY, token uuid NOT NULL UNIQUE)',
  });
  let writer: Writer | undefined;

  beforeAll(async () => {
    await m.setUp();
    const start = await m.run('start');
    expect(start.code, start.stderr).toBe(0);
    await waitTablesSynchronised(m.target, DB);
    await m.untilStreaming();
    writer = new Writer(() => m.source, [DB], 'orders', 40).start();
  });
  afterAll(async () => {
    await writer?.stop();
    await m.cleanup();
  });

  it('is reported by the monitor as degraded, naming the database and the table, and by status', async () => {
    await sql(m.source, DB, 'CREATE TABLE audit_log (at timestamptz NOT NULL DEFAULT now(), note text)');
    await sql(m.source, DB, "INSERT INTO audit_log (note) VALUES ('first')");
    // The threat itself: production's UPDATE on the new table fails while it is published.
    await expect(sql(m.source, DB, "UPDATE audit_log SET note = 'changed'")).rejects.toThrow(/does not have a replica identity/);

    let last = '';
    const mon = await waitFor(
      'the monitor to report the table',
      async () => {
        // Each monitor as it runs once this database's minute is over (its per-database details are read then).
        m.lookAgain();
        const r = await m.run('monitor', {}, { interval: 10_000 });
        last = `exit ${r.code}: ${r.exitReason ?? ''}`;
        return r.code === 190 ? r : undefined;
      },
      40_000,
      500,
    ).catch((err: Error) => {
      throw new Error(`${err.message}; last monitor ${last}`);
    });
    expect(mon.exitReason).toMatch(/^"saf_noid": UPDATE\/DELETE fail on the source for public\.audit_log \(no primary key or replica identity\)/);
    expect(readFileSync(join(m.stateDir, `.migration_state_${token}`), 'utf8')).toMatch(/^no_identity="\[\[\\"public\\",\\"audit_log\\"\]\]"$/m);

    // The next monitor, which does not read this database's details again, still says it.
    const again = await m.run('monitor', {}, { interval: 10_000 });
    expect(again.code).toBe(190);
    expect(again.exitReason).toMatch(/public\.audit_log/);

    const text = await m.cli(['status']);
    expect(text.stdout).toMatch(/! "saf_noid": UPDATE\/DELETE fail on the source for public\.audit_log \(no primary key or replica identity\); add a primary key or REPLICA IDENTITY FULL/);
    const json = JSON.parse((await m.cli(['status', '--json'])).stdout) as { databases: Array<{ database: string; noIdentity: Array<{ schema: string; table: string }> }> };
    expect(json.databases[0]!.noIdentity).toEqual([{ schema: 'public', table: 'audit_log' }]);
  });

  it('is healthy again once the table has a replica identity', async () => {
    await sql(m.source, DB, 'ALTER TABLE audit_log REPLICA IDENTITY FULL');
    await sql(m.source, DB, "UPDATE audit_log SET note = 'changed'");
    // Within its minute the monitor looks at the database's details again.
    m.lookAgain();
    const r = await m.run('monitor', {}, { interval: 10_000 });
    expect(r.code, r.stderr).toBe(0);
    await writer!.stop();
    const tokens = writer!.acknowledged().map((w) => w.token);
    await waitFor('writes on the target', async () => Number((await sql<{ n: string }>(m.target, DB, 'SELECT count(*)::text AS n FROM orders WHERE token = ANY($1::uuid[])', [tokens]))[0]!.n) === tokens.length);
  });
});
