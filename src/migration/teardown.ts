/**
 * Teardown: removes every object the migration created, on both clusters —
 * publications, subscriptions, slots (remote ones too), event triggers, the
 * agent's schema — and its CIB record and state files. Whatever side cannot
 * be reached is reported by name; running teardown again finishes the job.
 */
import type pg from 'pg';
import type { Plan } from './plan';
import { connectOptions } from './plan';
import type { DatabaseObjects } from './names';
import { connect, describe, type Endpoint } from '../pg/connection';
import { classify, isLockConflict } from '../pg/errors';
import { dropPublication } from '../pg/publication';
import { dropSubscription } from '../pg/subscription';
import { dropSlot } from '../pg/slots';
import { dropCaptureTrigger, dropAgentSchema } from '../pg/ddl-replication';
import { settleAll, sleep } from './parallel';
import { removeStateFiles, removeBaselineFile } from './state-files';
import { run } from '../ocf/exec';
import { xmlEscape } from '../ocf/xml-escape';

/** The VIP order constraint a cutover added (nothing when there was no cutover). */
async function removeOrderConstraint(plan: Plan): Promise<void> {
  const id = `pgtwin-migrate-${plan.instance}-vip-order`;
  const r = await run('cibadmin', ['--delete', '--xml-text', `<rsc_order id="${xmlEscape(id)}"/>`], { timeoutMs: plan.deadline.stepMs(10_000) });
  if (r.code === 0) plan.log.info(`teardown: removed order constraint ${id}`);
}

export interface TeardownReport {
  readonly removed: string[];
  /** Objects that may still exist because their cluster could not be reached, one line each. */
  readonly leftovers: string[];
}

async function onSide(
  ep: Endpoint,
  db: string,
  plan: Plan,
  report: TeardownReport,
  pending: string[],
  fn: (c: pg.Client) => Promise<void>,
): Promise<void> {
  let c: pg.Client;
  try {
    c = await connect(ep, db, connectOptions(plan, 8_000));
  } catch (err) {
    const why = classify(err, describe(ep, db)).message;
    report.leftovers.push(...pending.map((p) => `${p} (${why})`));
    return;
  }
  try {
    // Dropping the write fence (DROP SCHEMA … CASCADE drops its trigger on every table) locks
    // every table: under the application's writes that can deadlock. Every drop here is
    // idempotent, so a lock conflict is simply tried again.
    for (let attempt = 1; ; attempt++) {
      try {
        await fn(c);
        break;
      } catch (err) {
        if (!isLockConflict(err) || attempt >= 5) throw err;
        plan.log.warn(`teardown: ${describe(ep, db)}: ${(err as Error).message}; trying again`);
        await sleep(250 * attempt);
      }
    }
  } catch (err) {
    report.leftovers.push(`${pending.join(', ')}: ${classify(err, describe(ep, db)).message}`);
  } finally {
    await c.end().catch(() => undefined);
  }
}

async function teardownDatabase(plan: Plan, o: DatabaseObjects, report: TeardownReport): Promise<void> {
  const db = o.database;
  const q = JSON.stringify(db);
  const mark = (what: string, done: boolean) => {
    if (done) report.removed.push(`${q}: ${what}`);
  };
  // Subscriptions first, while their publishers may still be reached: dropping
  // a subscription drops its slot on the publisher.
  await onSide(plan.targetPrimary, db, plan, report, [`${q}: subscription ${o.forwardSub} on the target`], async (c) => {
    const r = await dropSubscription(c, o.forwardSub, describe(plan.targetPrimary, db));
    mark(`subscription ${o.forwardSub} (target)`, r.dropped);
  });
  await onSide(plan.sourcePrimary, db, plan, report, [`${q}: subscription ${o.reverseSub} on the source`], async (c) => {
    const r = await dropSubscription(c, o.reverseSub, describe(plan.sourcePrimary, db));
    mark(`subscription ${o.reverseSub} (source)`, r.dropped);
  });
  // Then what remains on each side, including the slots a subscription could
  // not drop because its publisher was away (they are dropped here by name).
  const sourcePending = [`${q}: publication ${o.forwardPub}, event trigger ${o.forwardDdlTrigger} and schema pgtwin_migrate on the source`];
  await onSide(plan.sourcePrimary, db, plan, report, sourcePending, async (c) => {
    mark(`publication ${o.forwardPub} (source)`, await dropPublication(c, o.forwardPub));
    mark(`event trigger ${o.forwardDdlTrigger} (source)`, await dropCaptureTrigger(c, o.forwardDdlTrigger));
    mark(`event trigger ${o.reverseDdlTrigger} (source)`, await dropCaptureTrigger(c, o.reverseDdlTrigger));
    mark('schema pgtwin_migrate (source)', await dropAgentSchema(c));
  });
  await onSide(plan.slotHost, db, plan, report, [`${q}: slot ${o.forwardSlot} on ${describe(plan.slotHost)}`], async (c) => {
    mark(`slot ${o.forwardSlot} (source)`, await dropSlot(c, o.forwardSlot));
  });
  const targetPending = [`${q}: publication ${o.reversePub}, slot ${o.reverseSlot}, event triggers and schema pgtwin_migrate on the target`];
  await onSide(plan.targetPrimary, db, plan, report, targetPending, async (c) => {
    mark(`publication ${o.reversePub} (target)`, await dropPublication(c, o.reversePub));
    mark(`slot ${o.reverseSlot} (target)`, await dropSlot(c, o.reverseSlot));
    mark(`event trigger ${o.reverseDdlTrigger} (target)`, await dropCaptureTrigger(c, o.reverseDdlTrigger));
    mark(`event trigger ${o.forwardDdlTrigger} (target)`, await dropCaptureTrigger(c, o.forwardDdlTrigger));
    mark('schema pgtwin_migrate (target)', await dropAgentSchema(c));
  });
}

export async function teardown(plan: Plan): Promise<TeardownReport> {
  const report: TeardownReport = { removed: [], leftovers: [] };
  await settleAll(plan.cfg.objects, 8, (o) => teardownDatabase(plan, o, report));
  if (report.leftovers.length === 0) {
    await removeOrderConstraint(plan);
    await plan.state.clear();
    removeStateFiles(plan.stateDir, plan.cfg.objects.map((o) => o.token));
    removeBaselineFile(plan.stateDir, plan.instance);
  }
  for (const r of report.removed) plan.log.info(`teardown: removed ${r}`);
  for (const l of report.leftovers) plan.log.warn(`teardown: could not remove ${l}; run pgtwin-migrate teardown again when it is reachable`);
  return report;
}
