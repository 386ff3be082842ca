/**
 * Review finding 8 — `pgtwin-migrate teardown --yes` in phase reverse drops
 * every object of the migration, the old source's write fence with it: the
 * old source then takes writes while the target (production) does too. In
 * phase reverse only `finish` ends the way back; teardown must refuse there
 * unless told --force.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { Migration } from '../support/migration';
import { ident, sql } from '../support/rig';
import { SCHEMA, copiedMigration, launchSwitch, untilSwitchEnds, switchLogs, record } from '../support/attack';
import { createPlainRole, dropRoleEverywhere, disposeAnyPhase, writeAs } from '../support/review';

const exec = promisify(execFile);
const DB = 'rv_teardown';
const APP = 'rv_teardown_app';
// An id of its own: after the cutover the source's sequence lags the ids written on the target.
const INSERT = "INSERT INTO orders (id, token, note) VALUES (1000000000 + (random() * 1e9)::bigint, gen_random_uuid(), 'app')";

describe('review 8: teardown in phase reverse refuses without --force', () => {
  let m: Migration | undefined;

  beforeAll(async () => {
    await createPlainRole(APP);
    m = await copiedMigration('rv-teardown', [DB], {
      schema: `${SCHEMA}; GRANT SELECT, INSERT ON orders TO ${ident(APP)}; GRANT USAGE ON SEQUENCE orders_id_seq TO ${ident(APP)}`,
    });
    await launchSwitch(m);
    const r = await untilSwitchEnds(m.opts.instance);
    expect(r['cutover-state'], `${r['cutover-error']}\n${switchLogs(m)}`).toBe('complete');
    expect((await record(m.opts.instance)).phase).toBe('reverse');
    // Phase reverse: the application writes on the target; the old source refuses it.
    expect(await writeAs(m.target, DB, APP, INSERT)).toBe('ok');
    expect(await writeAs(m.source, DB, APP, INSERT)).toBe('25006');
  });
  afterAll(async () => {
    await disposeAnyPhase(m);
    await dropRoleEverywhere(APP);
  });

  it('teardown --yes refuses, naming --force, and the old source still refuses writes', async () => {
    const td = await m!.cli(['teardown', '--yes']);
    const out = `exit ${td.code}\nstdout:\n${td.stdout}\nstderr:\n${td.stderr}`;
    const fenceTriggers = await sql<{ n: string }>(m!.source, DB, "SELECT count(*)::text AS n FROM pg_trigger WHERE tgname = 'pgtwin_migrate_fence'");
    // The old source must still be fenced: a plain client's write is refused as read-only.
    expect(await writeAs(m!.source, DB, APP, INSERT), `the old source took a write after teardown (fence triggers left: ${fenceTriggers[0]!.n}); ${out}`).toBe('25006');
    expect(td.code, out).not.toBe(0);
    expect(`${td.stdout}${td.stderr}`, out).toMatch(/--force/);
    expect((await record(m!.opts.instance)).phase, out).toBe('reverse');
  });

  it('a finish cut short (phase finishing) is refused to teardown too, and the next monitor carries it on to the end', async () => {
    // As a finish killed by its action's timeout leaves it: phase finishing recorded, nothing removed yet.
    await exec('crm_attribute', ['--type', 'crm_config', '--set-name', `pgtwin-migrate-${m!.opts.instance}`, '--name', 'phase', '--update', 'finishing']);
    const td = await m!.cli(['teardown', '--yes']);
    const out = `exit ${td.code}\nstdout:\n${td.stdout}\nstderr:\n${td.stderr}`;
    expect(td.code, out).not.toBe(0);
    expect(`${td.stdout}${td.stderr}`, out).toMatch(/finish is under way: pgtwin-migrate finish --yes carries it on, or add --force/);
    expect(await writeAs(m!.source, DB, APP, INSERT), out).toBe('25006');
    // The monitor finishes what was begun; it never repairs a fence in this phase.
    const mon = await m!.run('monitor');
    expect(mon.code, mon.stderr).toBe(0);
    expect((await record(m!.opts.instance)).phase).toBe('finished');
    expect(await writeAs(m!.source, DB, APP, INSERT)).toBe('ok');
    const left = await sql<{ n: string }>(m!.source, DB, "SELECT count(*)::text AS n FROM pg_trigger WHERE tgname = 'pgtwin_migrate_fence'");
    expect(left[0]!.n).toBe('0');
  });
});
