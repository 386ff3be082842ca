/**
 * finish (DESIGN §6b): ends the way back deliberately, in phase reverse
 * only; phase `finishing` is recorded first (see beginFinishing). Drops the
 * reverse subscriptions (and through them their slots on the target),
 * publications, DDL triggers, the write fences and the agent's schema on
 * both clusters; checks that nothing of the migration is
 * left on either (remote slots included); then records the migration
 * finished in the CIB and stops the resource. Whatever cannot be reached is
 * reported, and finish can simply run again. After it, the old source takes
 * writes again: it is no longer part of anything.
 */
import type pg from 'pg';
import type { Plan } from './plan';
import { connectOptions } from './plan';
import type { DatabaseObjects } from './names';
import { objectsOf } from './direction';
import { KEY, phaseOf, withEvent } from './cib-state';
import { CUTOVER_KEY } from './cutover/steps';
import { settleAll, sleep } from './parallel';
import { removeStateFiles } from './state-files';
import { connect, describe, type Endpoint } from '../pg/connection';
import { classify, isLockConflict } from '../pg/errors';
import { dropPublication } from '../pg/publication';
import { dropSubscription } from '../pg/subscription';
import { dropSlot } from '../pg/slots';
import { dropCaptureTrigger, dropAgentSchema } from '../pg/ddl-replication';
import { removeFence } from '../pg/fence';
import { OCF, OcfError } from '../ocf/exit-codes';
import { setMetaAttribute, setInstanceAttribute } from '../cluster/resources';
import { randomUUID } from 'node:crypto';

export interface FinishReport {
  readonly removed: string[];
  /** What could not be removed (unreachable, or still there when checked), one line each. */
  readonly leftovers: string[];
  readonly finished: boolean;
}

async function onSide(plan: Plan, ep: Endpoint, db: string, fn: (c: pg.Client) => Promise<void>): Promise<string | undefined> {
  let c: pg.Client | undefined;
  try {
    c = await connect(ep, db, connectOptions(plan, 15_000));
    // Removing the write fence locks every table: under the application's writes that can
    // deadlock. Every removal here is idempotent, so a lock conflict is simply tried again.
    for (let attempt = 1; ; attempt++) {
      try {
        await fn(c);
        return undefined;
      } catch (err) {
        if (!isLockConflict(err) || attempt >= 5) throw err;
        plan.log.warn(`finish: ${describe(ep, db)}: ${(err as Error).message}; trying again`);
        await sleep(250 * attempt);
      }
    }
  } catch (err) {
    return classify(err, describe(ep, db)).message;
  } finally {
    await c?.end().catch(() => undefined);
  }
}

/** The migration's objects still present in one database of one cluster (for the "nothing left" check). */
export async function remnants(c: pg.Client): Promise<string[]> {
  const { rows } = await c.query<{ n: string }>(
    `SELECT 'publication ' || pubname AS n FROM pg_publication WHERE pubname LIKE 'pgtwin\\_migrate%'
     UNION ALL SELECT 'subscription ' || subname FROM pg_subscription
      WHERE subdbid = (SELECT oid FROM pg_database WHERE datname = current_database()) AND subname LIKE 'pgtwin\\_migrate%'
     UNION ALL SELECT 'slot ' || slot_name FROM pg_replication_slots WHERE slot_name LIKE 'pgtwin\\_migrate%' AND database = current_database()
     UNION ALL SELECT 'event trigger ' || evtname FROM pg_event_trigger WHERE evtname LIKE 'pgtwin\\_migrate%' OR evtname LIKE 'replicate\\_ddl\\_to\\_%'
     UNION ALL SELECT 'trigger pgtwin_migrate_fence on ' || tgrelid::regclass::text FROM pg_trigger WHERE tgname = 'pgtwin_migrate_fence'
     UNION ALL SELECT 'schema ' || nspname FROM pg_namespace WHERE nspname = 'pgtwin_migrate'`,
  );
  return rows.map((r) => r.n);
}

async function finishDatabase(plan: Plan, o: DatabaseObjects, report: { removed: string[]; leftovers: string[] }): Promise<void> {
  const q = JSON.stringify(o.database);
  const rev = objectsOf(o, 'reverse');
  const fwd = objectsOf(o, 'forward');
  const fail = (what: string, why: string | undefined) => {
    if (why) report.leftovers.push(`${q}: ${what}: ${why}`);
  };
  // The subscription first, while its publisher can be reached: dropping it drops its slot there.
  fail(
    `subscription ${rev.sub} on the source`,
    await onSide(plan, plan.sourcePrimary, o.database, async (c) => {
      const r = await dropSubscription(c, rev.sub, describe(plan.sourcePrimary, o.database));
      if (r.dropped) report.removed.push(`${q}: subscription ${rev.sub} (source)`);
      if (r.remoteSlotLeft) plan.log.warn(`finish: ${q}: slot ${r.remoteSlotLeft} was left on the target (${r.publisherError}); dropping it by name`);
    }),
  );
  for (const [side, ep] of [['target', plan.targetPrimary], ['source', plan.sourcePrimary]] as const) {
    fail(
      `the migration's objects on the ${side}`,
      await onSide(plan, ep, o.database, async (c) => {
        const names = side === 'target' ? rev : fwd;
        if (await dropPublication(c, names.pub)) report.removed.push(`${q}: publication ${names.pub} (${side})`);
        if (side === 'target' && (await dropSlot(c, rev.slot))) report.removed.push(`${q}: slot ${rev.slot} (target)`);
        for (const t of [rev.ddlTrigger, fwd.ddlTrigger]) if (await dropCaptureTrigger(c, t)) report.removed.push(`${q}: event trigger ${t} (${side})`);
        if (await removeFence(c, 10_000)) report.removed.push(`${q}: write fence (${side})`);
        if (await dropAgentSchema(c)) report.removed.push(`${q}: schema pgtwin_migrate (${side})`);
        for (const r of await remnants(c)) report.leftovers.push(`${q}: ${r} still on the ${side}`);
      }),
    );
  }
}

/** A database is not begun with less than this left of the action's time (the next monitor goes on). */
const DATABASE_BUDGET_MS = 20_000;

/**
 * Records phase `finishing` before anything is removed: from then on no
 * monitor repairs a fence and no switch starts, and a finish cut short (a
 * timeout, a node lost) is carried on by the next start or monitor on any
 * node. A compare-and-swap on the switch's lease and state, so that a
 * failback launched since the phase was read makes this refuse.
 */
async function beginFinishing(plan: Plan, record: ReadonlyMap<string, string>): Promise<void> {
  const outcome = await plan.state.casMany(
    {
      [KEY.phase]: 'finishing',
      [CUTOVER_KEY.lease]: `finishing-${randomUUID()}`,
      [KEY.history]: withEvent(record.get(KEY.history), 'finishing', `removing the way back from ${plan.cfg.objects.length} database(s)`),
    },
    [
      { name: CUTOVER_KEY.lease, value: record.get(CUTOVER_KEY.lease) },
      { name: CUTOVER_KEY.state, value: record.get(CUTOVER_KEY.state) },
      { name: KEY.phase, value: record.get(KEY.phase) },
    ],
  );
  if (outcome !== 'applied') {
    throw new OcfError(OCF.ERR_GENERIC, `cannot finish migration ${plan.instance}: its record changed while finish began (a failback starting?); see pgtwin-migrate status, then run finish again`);
  }
}

export async function finish(plan: Plan): Promise<FinishReport> {
  const record = await plan.state.readAll();
  const phase = phaseOf(record);
  if (phase === 'finished') return { removed: [], leftovers: [], finished: true };
  if (phase !== 'reverse' && phase !== 'finishing') {
    const why =
      phase === 'cutover' || phase === 'failback'
        ? `a ${phase} is running; let it end first (pgtwin-migrate status)`
        : `production is still on the source (phase ${phase ?? 'forward'}): finish ends the way back after a cutover; to abandon the migration use pgtwin-migrate teardown`;
    throw new OcfError(OCF.ERR_CONFIGURED, `cannot finish migration ${plan.instance}: ${why}`);
  }
  if (phase === 'reverse') await beginFinishing(plan, record);
  else plan.log.info('finish: carrying on a finish that began earlier');
  const report = { removed: [] as string[], leftovers: [] as string[] };
  await settleAll(plan.cfg.objects, 8, async (o) => {
    if (plan.deadline.remainingMs() < DATABASE_BUDGET_MS) {
      report.leftovers.push(`${JSON.stringify(o.database)}: not reached within this action's time; the next monitor carries on`);
      return;
    }
    await finishDatabase(plan, o, report);
  });
  for (const r of report.removed) plan.log.info(`finish: removed ${r}`);
  if (report.leftovers.length > 0) {
    for (const l of report.leftovers) plan.log.warn(`finish: not removed: ${l}`);
    return { ...report, finished: false };
  }
  const now = new Date().toISOString();
  const latest = await plan.state.readAll();
  await plan.state.setMany({
    [KEY.phase]: 'finished',
    [KEY.finishedAt]: now,
    [KEY.history]: withEvent(latest.get(KEY.history), 'finished', `the way back removed from ${plan.cfg.objects.length} database(s) on both clusters`),
    [CUTOVER_KEY.reverse]: '',
    [CUTOVER_KEY.lease]: '',
  });
  removeStateFiles(plan.stateDir, plan.cfg.objects.map((o) => o.token));
  // finish=true has done its work: left set, it would finish the next migration of this resource at its first cutover.
  if (plan.cfg.finish) {
    await setInstanceAttribute(plan.instance, 'finish', 'false', 10_000).catch((err: Error) =>
      plan.log.warn(`finish: could not set finish=false on ${plan.instance} (${err.message}); set it yourself before this resource migrates again`),
    );
  }
  await setMetaAttribute(plan.instance, 'target-role', 'Stopped', 10_000).catch((err: Error) =>
    plan.log.warn(`finish: could not stop ${plan.instance} (${err.message}); stop it yourself: crm resource stop ${plan.instance}`),
  );
  plan.log.info(`migration ${plan.instance} finished: nothing of it is left on either cluster; the resource stops`);
  return { ...report, finished: true };
}

/**
 * finish=true (reload-agent, monitor): finishes in phase reverse (or goes on
 * with a finish under way). In any other phase it is set back to false with
 * a warning: finish=true is an answer to one completed cutover, never an
 * order standing for the next one.
 */
export async function finishWhenAsked(plan: Plan): Promise<FinishReport | undefined> {
  const phase = phaseOf(await plan.state.readAll());
  if (phase !== 'reverse' && phase !== 'finishing') {
    if (phase !== 'finished') {
      plan.log.warn(`finish=true is ignored in phase ${phase ?? 'forward'} and set back to false: it ends the way back after a completed cutover; set it again then`);
      await setInstanceAttribute(plan.instance, 'finish', 'false', 10_000).catch((err: Error) => plan.log.warn(`cannot set finish=false on ${plan.instance}: ${err.message}`));
    }
    return undefined;
  }
  plan.log.info(phase === 'reverse' ? 'finish=true: ending the way back' : 'finish: carrying on');
  const report = await finish(plan);
  if (!report.finished) plan.log.warn(`finish: ${report.leftovers.length} object(s) left (${report.leftovers[0]}); the next monitor tries again`);
  return report;
}
