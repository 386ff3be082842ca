/**
 * Review finding 3 — a table owner disarms the write fence of its table on
 * the source during phase forward (the source is not fenced then, so its
 * DDL is allowed). The fence (fence_table in src/pg/sql/fence.sql) goes by
 * the trigger's name and its enabled state only: a trigger of the same name
 * that does something else, or one switched to ENABLE REPLICA (which never
 * fires for a client), counts as the fence. After the cutover the old
 * source then takes that owner's writes while production is on the target.
 *
 * Safe: the DDL is refused; or the cutover refuses, naming the fence; or,
 * after the cutover (phase reverse), the owner's plain write on the old
 * source is refused with SQLSTATE 25006.
 *
 * Seen on the agent of this commit: a trigger of the same name (DROP and
 * CREATE, or CREATE OR REPLACE TRIGGER) disarms it. ENABLE REPLICA and
 * DISABLE TRIGGER do not: ALTER TABLE reports the table to the ALWAYS event
 * trigger pgtwin_migrate_fence_new_tables, which puts the fence trigger back
 * in the database's state at the end of that very statement (kept here as
 * regression tests, also inside the cutover's window before its fence).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Migration } from '../support/migration';
import { ident, sql } from '../support/rig';
import { SCHEMA, copiedMigration, launchSwitch, untilSwitchEnds, untilPausedAfter, switchLogs, record } from '../support/attack';
import { asRole, createPlainRole, dropRoleEverywhere, disposeAnyPhase, failure, writeAs } from '../support/review';

const OWNER = 'rv_fence_owner';
// An id of its own: after the cutover the source's sequence lags the ids written on the target.
const INSERT = "INSERT INTO orders (id, token, note) VALUES (1000000000 + (random() * 1e9)::bigint, gen_random_uuid(), 'owner')";

const REPLACE = [
  'CREATE FUNCTION noop() RETURNS trigger LANGUAGE plpgsql AS $f$ BEGIN RETURN NULL; END $f$',
  'DROP TRIGGER pgtwin_migrate_fence ON orders',
  'CREATE TRIGGER pgtwin_migrate_fence AFTER INSERT ON orders FOR EACH STATEMENT EXECUTE FUNCTION noop()',
];
const REPLACE_IN_PLACE = [
  'CREATE FUNCTION noop() RETURNS trigger LANGUAGE plpgsql AS $f$ BEGIN RETURN NULL; END $f$',
  'CREATE OR REPLACE TRIGGER pgtwin_migrate_fence AFTER INSERT ON orders FOR EACH STATEMENT EXECUTE FUNCTION noop()',
];
const REPLICA = ['ALTER TABLE orders ENABLE REPLICA TRIGGER pgtwin_migrate_fence'];
const DISABLE = ['ALTER TABLE orders DISABLE TRIGGER pgtwin_migrate_fence'];

/**
 * When the owner strikes: `forward` some time before the cutover (a monitor
 * runs after it, as Pacemaker's would); `window` while the cutover runs,
 * after its recheck and before its fence (the source is not fenced yet; the
 * worker is held there a while, PGTWIN_MIGRATE_TEST_PAUSE_AT=prepare-reverse:<ms>,
 * to make the window as wide on a loaded machine as a fast one).
 */
const DISARMS = [
  { name: 'DROP TRIGGER pgtwin_migrate_fence, then CREATE TRIGGER pgtwin_migrate_fence AFTER INSERT … noop()', db: 'rv_fence_replace', when: 'forward', statements: REPLACE },
  { name: 'CREATE OR REPLACE TRIGGER pgtwin_migrate_fence AFTER INSERT … noop()', db: 'rv_fence_in_place', when: 'forward', statements: REPLACE_IN_PLACE },
  { name: 'ALTER TABLE … ENABLE REPLICA TRIGGER pgtwin_migrate_fence', db: 'rv_fence_replica', when: 'forward', statements: REPLICA },
  { name: 'ALTER TABLE … DISABLE TRIGGER pgtwin_migrate_fence', db: 'rv_fence_disable', when: 'forward', statements: DISABLE },
  { name: 'ALTER TABLE … ENABLE REPLICA TRIGGER pgtwin_migrate_fence', db: 'rv_fence_replica_w', when: 'window', statements: REPLICA },
  { name: 'ALTER TABLE … DISABLE TRIGGER pgtwin_migrate_fence', db: 'rv_fence_disable_w', when: 'window', statements: DISABLE },
] as const;

const WHEN = { forward: 'in phase forward', window: 'during the cutover, before its fence' } as const;
const FENCE_TRIGGER = "SELECT tgenabled::text AS t, tgfoid::regproc::text AS f FROM pg_trigger WHERE tgname = 'pgtwin_migrate_fence' AND tgrelid = 'orders'::regclass";

describe('review 3: a table owner cannot disarm the fence of its table on the source', () => {
  const migrations: Migration[] = [];

  beforeAll(async () => {
    await createPlainRole(OWNER);
  });
  afterAll(async () => {
    for (const m of migrations) await disposeAnyPhase(m);
    await dropRoleEverywhere(OWNER);
  });

  for (const disarm of DISARMS) {
    it(`${disarm.name} ${WHEN[disarm.when]}: the old source refuses the owner's write after the cutover`, async () => {
      const m = await copiedMigration(`rv-${disarm.db.replace(/_/g, '-')}`, [disarm.db], {
        schema: `${SCHEMA}; ALTER TABLE orders OWNER TO ${ident(OWNER)}; GRANT CREATE ON SCHEMA public TO ${ident(OWNER)}`,
      });
      migrations.push(m);
      const fenceTrigger = async () => sql<{ t: string; f: string }>(m.source, disarm.db, FENCE_TRIGGER);
      expect(await fenceTrigger(), 'the source has its (lifted) fence trigger in phase forward').toEqual([{ t: 'D', f: 'pgtwin_migrate.refuse_write' }]);

      // The table owner (a plain role), straight on the source.
      const disarmNow = () =>
        asRole(m.source, disarm.db, OWNER, async (c) => {
          for (const text of disarm.statements) {
            const err = await failure(c.query(text));
            if (err) return `${text}: ${err.code} ${err.message}`;
          }
          return undefined;
        });
      let refused: string | undefined;
      let monitor = '';
      if (disarm.when === 'forward') {
        refused = await disarmNow();
        if (refused) return console.info(`${disarm.db}: safe, the disarm was refused: ${refused}`);
        const after = await fenceTrigger();
        // A monitor as Pacemaker runs it, then the cutover.
        m.lookAgain();
        const mon = await m.run('monitor', {}, { interval: 10_000 });
        monitor = `fence trigger after the disarm: ${JSON.stringify(after)}; then monitor exit ${mon.code} ${mon.exitReason ?? ''}, trigger after it: ${JSON.stringify(await fenceTrigger())}`;
        await launchSwitch(m);
      } else {
        await launchSwitch(m, { PGTWIN_MIGRATE_TEST_PAUSE_AT: 'prepare-reverse:30000' });
        await untilPausedAfter(m, 'prepare-reverse');
        refused = await disarmNow();
        if (refused) console.info(`${disarm.db}: the disarm in the window was refused: ${refused}`);
        monitor = `fence trigger after the disarm in the window: ${JSON.stringify(await fenceTrigger())}`;
      }
      const r = await untilSwitchEnds(m.opts.instance);
      if (r['cutover-state'] === 'failed' && /fence/.test(r['cutover-error'] ?? '')) {
        return console.info(`${disarm.db}: safe, the cutover refused: ${r['cutover-error']}`);
      }
      expect(r['cutover-state'], `${r['cutover-error']}\n${switchLogs(m)}`).toBe('complete');
      expect((await record(m.opts.instance)).phase).toBe('reverse');

      const context = `${monitor}; fence trigger after the cutover: ${JSON.stringify(await fenceTrigger())}`;
      console.info(`${disarm.db}: ${context}`);
      // Phase reverse: the owner's plain write on the old source (not in replica mode) must be refused.
      expect(await writeAs(m.source, disarm.db, OWNER, INSERT), context).toBe('25006');
    });
  }
});
