/**
 * Issue 10, item 4: clients connected straight to the source (not through
 * the production address) keep writing every 20 ms through a cutover, each
 * with a setting that overrides a read-only default — BEGIN READ WRITE, a
 * session SET, a role setting, a database setting. The fence refuses them
 * all: after the completed cutover every write any client saw acknowledged
 * is on the target, and the old source refuses them from then on.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Migration } from '../support/migration';
import { rig, sql, ident, type RigServer } from '../support/rig';
import { Writer } from '../support/writer';
import { followAddress } from '../support/routing';
import { cibQuery, vipAddresses } from '../support/pacemaker';
import { SCHEMA, copiedMigration, launchSwitch, untilSwitchEnds, missingTokens, switchLogs, dispose } from '../support/attack';

const ROLE = 'att_bypass_writer';
const INSERT = "INSERT INTO orders (token, note) VALUES ($1, 'bypass')";

interface Bypass {
  readonly name: string;
  readonly db: string;
  readonly statements: readonly string[];
  readonly user?: string;
  /** Arranged on the source before the client connects. */
  readonly arrange?: (source: RigServer, db: string) => Promise<void>;
}

const BYPASSES: readonly Bypass[] = [
  { name: 'BEGIN READ WRITE', db: 'att_bypass_begin', statements: ['BEGIN READ WRITE', INSERT, 'COMMIT'] },
  { name: 'SET default_transaction_read_only = off', db: 'att_bypass_set', statements: ['SET default_transaction_read_only = off', INSERT] },
  {
    name: 'a role setting default_transaction_read_only = off',
    db: 'att_bypass_role',
    user: ROLE,
    statements: [INSERT],
    arrange: async (source) => {
      await sql(source, 'postgres', `ALTER ROLE ${ident(ROLE)} SET default_transaction_read_only = off`);
    },
  },
  {
    name: 'a database setting default_transaction_read_only = off',
    db: 'att_bypass_dbset',
    statements: [INSERT],
    arrange: async (source, db) => {
      await sql(source, 'postgres', `ALTER DATABASE ${ident(db)} SET default_transaction_read_only = off`);
    },
  },
];

describe('clients bypassing the production address cannot get a write past the fence', () => {
  const cleanups: Array<() => Promise<void>> = [];
  const servers = () => [rig().servers.pg17, rig().servers.pg18];

  beforeAll(async () => {
    // A plain role (no superuser), on both clusters: the GRANTs below are replayed on the target.
    for (const s of servers()) {
      await sql(s, 'postgres', `DROP ROLE IF EXISTS ${ident(ROLE)}`).catch(() => undefined);
      await sql(s, 'postgres', `CREATE ROLE ${ident(ROLE)} LOGIN`);
    }
  });
  afterAll(async () => {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
    for (const s of servers()) await sql(s, 'postgres', `DROP ROLE IF EXISTS ${ident(ROLE)}`).catch(() => undefined);
  });

  for (const bypass of BYPASSES) {
    it(`a client writing straight to the source with ${bypass.name} loses no acknowledged row through a cutover`, async () => {
      const m: Migration = await copiedMigration(`att-bypass-${bypass.db.slice(11)}`, [bypass.db], {
        schema: `${SCHEMA}; GRANT SELECT, INSERT ON orders TO ${ident(ROLE)}; GRANT USAGE ON SEQUENCE orders_id_seq TO ${ident(ROLE)}`,
      });
      cleanups.push(() => dispose(m));
      await bypass.arrange?.(m.source, bypass.db);

      const router = followAddress(vipAddresses(await cibQuery()).production!, m.source, m.target);
      const app = new Writer(router.route, [bypass.db], 'orders', 20).start();
      const stray = new Writer(() => m.source, [bypass.db], 'orders', 50, { user: bypass.user, statements: bypass.statements }).start();
      try {
        await new Promise((r) => setTimeout(r, 1_500));
        await launchSwitch(m);
        const r = await untilSwitchEnds(m.opts.instance);
        expect(r['cutover-state'], `${r['cutover-error']}\n${switchLogs(m)}`).toBe('complete');
        // Go on writing a while in phase reverse: the old source must refuse them all.
        await new Promise((res) => setTimeout(res, 1_500));
      } finally {
        await stray.stop();
        await app.stop();
        await router.stop();
      }
      const r = (await untilSwitchEnds(m.opts.instance));
      const fencedAt = Date.parse(r['cutover-fenced-at']!);
      const endedAt = Date.parse(r['cutover-ended-at']!);

      // The stray client did write before the fence, and was refused (read-only) after it.
      expect(stray.acknowledged().filter((w) => w.doneAt < fencedAt).length).toBeGreaterThan(10);
      expect(stray.records.some((w) => w.sqlstate === '25006')).toBe(true);
      // Nothing acknowledged to anyone is missing on the target (now production).
      const acked = [...stray.acknowledged(), ...app.acknowledged()].map((w) => w.token);
      expect(await missingTokens(m.target, bypass.db, acked)).toEqual([]);
      // In phase reverse the old source refuses the stray client.
      const late = stray.records.filter((w) => w.sentAt > endedAt);
      expect(late.length).toBeGreaterThan(10);
      expect(late.filter((w) => w.ok)).toEqual([]);
    });
  }
});
