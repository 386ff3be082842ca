/**
 * `pgtwin-migrate finish --yes` right after a cutover, while the migration
 * resource's monitor runs on its node (an agent bug found on this rig).
 *
 * The race it guards against (found on this rig): finish removes the write
 * fences and the pgtwin_migrate schema from both clusters, checks that
 * nothing is left, then records phase `finished`; a monitor that read phase
 * `reverse` before that record found no fence and "repaired" it: the old
 * source fenced again (every client write refused, SQLSTATE 25006) and the
 * schema back on both clusters, after finish said nothing was left. Now the
 * command, while the resource runs, sets finish=true and Pacemaker applies it
 * with reload-agent, serialised with the monitor on the resource's node; and
 * a monitor re-reads the phase before it repairs a fence. The first monitor
 * after a cutover checks every database's fences (the phase changed), so
 * finishing right after a cutover is the moment most likely to race; a run
 * can still pass by luck with the bug present.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  heal,
  roles,
  configureMigration,
  removeMigration,
  migrationParams,
  waitStreaming,
  dropDatabases,
  agentCommand,
  migrationRecord,
  primaryOf,
  takesWrites,
  sqlOn,
  crmMon,
  runningOn,
  anyNode,
  onNodeOk,
} from '../support/cluster';
import { waitFor } from '../support/migration';
import { createLoadDatabases, allDatabases } from '../support/cluster-load';

/** The migration's objects in one database (the query of remnants() in src/migration/finish.ts, which imports SQL files this project does not load). */
const REMNANTS = `SELECT 'publication ' || pubname AS n FROM pg_publication WHERE pubname LIKE 'pgtwin\\_migrate%'
  UNION ALL SELECT 'subscription ' || subname FROM pg_subscription
   WHERE subdbid = (SELECT oid FROM pg_database WHERE datname = current_database()) AND subname LIKE 'pgtwin\\_migrate%'
  UNION ALL SELECT 'slot ' || slot_name FROM pg_replication_slots WHERE slot_name LIKE 'pgtwin\\_migrate%' AND database = current_database()
  UNION ALL SELECT 'event trigger ' || evtname FROM pg_event_trigger WHERE evtname LIKE 'pgtwin\\_migrate%' OR evtname LIKE 'replicate\\_ddl\\_to\\_%'
  UNION ALL SELECT 'trigger pgtwin_migrate_fence on ' || tgrelid::regclass::text FROM pg_trigger WHERE tgname = 'pgtwin_migrate_fence'
  UNION ALL SELECT 'schema ' || nspname FROM pg_namespace WHERE nspname = 'pgtwin_migrate'`;

const ID = 'cl-finish-race';
const DBS = { writer: ['cl_fr_app', 'cl_fr_billing'], bank: 'cl_fr_bank' };

describe('pgtwin-migrate finish while the monitor checks the fences', () => {
  beforeAll(async () => {
    await heal();
    await createLoadDatabases(DBS);
    await configureMigration(ID, migrationParams(allDatabases(DBS)), (await roles()).target.standby);
  });
  afterAll(async () => {
    await removeMigration(ID);
    await dropDatabases(allDatabases(DBS));
  });

  it('right after a cutover: nothing of the migration is left on either cluster, and the old source takes writes', async () => {
    await waitStreaming(ID, allDatabases(DBS));
    const cut = await agentCommand(['cutover', '--resource', ID, '--wait', '--wait-seconds', '300'], 400_000);
    expect(cut.code, `${cut.stdout}\n${cut.stderr}`).toBe(0);
    const fin = await agentCommand(['finish', '--resource', ID, '--yes'], 300_000);
    expect(fin.code, `${fin.stdout}\n${fin.stderr}`).toBe(0);
    expect(fin.stdout).toMatch(/finish=true set on cl-finish-race .*Pacemaker finishes through reload-agent/);
    expect((await migrationRecord(ID)).phase).toBe('finished');
    // finish=true has done its work: left set, it would finish the next migration of this resource at its first cutover.
    expect((await onNodeOk(await anyNode(), ['crm_resource', '--resource', ID, '--get-parameter', 'finish'])).trim()).toBe('false');
    await waitFor(`${ID} stopped`, async () => !runningOn(await crmMon(), ID), 120_000, 1000);

    const left: string[] = [];
    for (const side of ['source', 'target'] as const) {
      const node = await primaryOf(side);
      for (const db of allDatabases(DBS)) {
        for (const r of await sqlOn<{ n: string }>(node, db, REMNANTS)) left.push(`${side} ${db}: ${r.n}`);
      }
    }
    expect(left).toEqual([]);
    for (const db of DBS.writer) expect(await takesWrites(await primaryOf('source'), db), `${db} on the old source`).toBe(true);
  });
});
