/**
 * start: idempotent. Checks both clusters, records the database list at the
 * first start, then sets up or adopts forward replication of every database
 * (never copying again one whose subscription exists), and marks this node
 * as running the migration.
 */
import { hostname } from 'node:os';
import type { ActionContext } from '../../ocf/run-action';
import { OCF, OcfError } from '../../ocf/exit-codes';
import { setStep } from '../../ocf/watchdog';
import { checkTools } from './validate';
import { resolvePlan, connectOptions, type Plan } from '../plan';
import { preflight, formatFinding, logFindings } from '../preflight';
import { setupForward } from '../forward';
import { settleAll, sleep } from '../parallel';
import { KEY, parseBaseline, diffBaseline, phaseOf, withEvent } from '../cib-state';
import { writeMarker, writeBaselineFile, updateStateFile, removeBaselineFile, removeStateFiles } from '../state-files';
import { connect } from '../../pg/connection';
import { readSubscription, setSubscriptionEnabled, subscriptionTables } from '../../pg/subscription';
import { standbySource, withStandbySnapshots } from '../standby-snapshots';
import { serverMajor } from '../../pg/server';
import { PgFailure } from '../../pg/errors';
import { reloadableValues } from './reload';
import { installFences } from '../fences';
import { objectsOf } from '../direction';
import { FORGET_DETAILS, recordTargetLook } from '../report';
import { ddlReportIfCaptured, type DdlReport } from '../../pg/ddl-replication';
import type { SubscriptionInfo } from '../../pg/subscription';
import type { DatabaseObjects } from '../names';
import type pg from 'pg';

export async function start(ctx: ActionContext): Promise<number> {
  checkTools();
  setStep('discovering the clusters');
  const plan = await resolvePlan(ctx);
  const cib = await plan.state.readAll();
  const phase = phaseOf(cib);
  if (phase === 'finished') {
    // The record outlives the primitive: a resource re-created with the same id finds its migration ended.
    throw new OcfError(OCF.ERR_CONFIGURED, `migration ${plan.instance} has ended (phase ${cib.get(KEY.phase)}); to start a new one, run pgtwin-migrate teardown first`);
  }
  if (phase === 'cutover' || phase === 'failback') {
    // A switch was under way (e.g. on a node that failed): the monitor supervises or takes it over.
    ctx.log.warn(`migration ${plan.instance} is in the middle of a ${phase}; the monitor will see it through`);
    markRunning(ctx, plan);
    return OCF.SUCCESS;
  }
  if (phase === 'finishing') {
    // The way back is being removed: nothing to adopt; the monitor carries the finish on.
    ctx.log.warn(`migration ${plan.instance} is finishing; the monitor carries the finish on`);
    markRunning(ctx, plan);
    return OCF.SUCCESS;
  }
  if (phase === 'reverse') {
    // The way back runs by itself: a restart or a move creates nothing and copies nothing.
    setStep('checking the way back');
    await adoptReverse(plan);
    markRunning(ctx, plan);
    ctx.log.info(`started in phase reverse: production is on the target, reverse replication of ${plan.cfg.databaseList.length} database(s) runs`);
    return OCF.SUCCESS;
  }

  setStep('pre-flight checks');
  const pf = await preflight(plan);
  logFindings(ctx.log, pf.findings);
  const errors = pf.findings.filter((f) => f.level === 'error');
  if (errors.length > 0) {
    const more = errors.length > 1 ? ` (+${errors.length - 1} more: pgtwin-migrate preflight)` : '';
    const code = errors.every((e) => e.unreachable) ? OCF.ERR_GENERIC : OCF.ERR_CONFIGURED;
    throw new OcfError(code, `${formatFinding(errors[0]!)}${more}`);
  }

  const recorded = parseBaseline(cib.get(KEY.databases));
  if (!recorded) {
    await plan.state.setMany({
      [KEY.phase]: 'forward',
      [KEY.databases]: JSON.stringify(plan.cfg.databaseList),
      [KEY.startedAt]: new Date().toISOString(),
      [KEY.history]: withEvent(cib.get(KEY.history), 'forward started', `${plan.cfg.databaseList.length} database(s): ${plan.cfg.databaseList.join(', ')}`),
    });
  } else {
    const d = diffBaseline(recorded, plan.cfg.databaseList);
    if (d.added.length + d.removed.length > 0) {
      ctx.log.warn(`databases changed since the first start (added: ${d.added.join(',') || '-'}; removed: ${d.removed.join(',') || '-'}); the cutover will refuse to run until the list matches ${recorded.join(',')}`);
    }
  }
  try {
    writeBaselineFile(plan.stateDir, plan.instance, recorded ?? plan.cfg.databaseList);
  } catch (err) {
    ctx.log.warn(`cannot write the baseline file in ${plan.stateDir}: ${(err as Error).message}`);
  }

  setStep('setting up forward replication');
  const results = await settleAll(plan.cfg.objects, 8, (o) => setupForward(plan, o, pf.databases.get(o.database)));
  const failed: string[] = [];
  let anyTransient = false;
  results.forEach((r, i) => {
    const o = plan.cfg.objects[i]!;
    if (r.status === 'fulfilled') {
      updateStateFile(plan.stateDir, o.token, { database: o.database, phase: 'forward', quiesced: false, reverse_prepared: false, ...FORGET_DETAILS });
      return;
    }
    const message = r.reason instanceof Error ? r.reason.message : String(r.reason);
    anyTransient ||= r.reason instanceof PgFailure && (r.reason.kind === 'unreachable' || r.reason.kind === 'timeout');
    failed.push(message.includes(JSON.stringify(o.database)) ? message : `${JSON.stringify(o.database)}: ${message}`);
    ctx.log.err(`start: ${failed[failed.length - 1]}`);
  });
  if (failed.length > 0) {
    // A first start that set up nothing leaves no record either: the next one starts afresh.
    if (!recorded && failed.length === plan.cfg.objects.length) {
      await plan.state.clear().catch((err: Error) => ctx.log.warn(`cannot remove the CIB record: ${err.message}`));
      removeBaselineFile(plan.stateDir, plan.instance);
      removeStateFiles(plan.stateDir, plan.cfg.objects.map((o) => o.token));
    }
    const more = failed.length > 1 ? ` (+${failed.length - 1} more databases failed)` : '';
    throw new OcfError(anyTransient ? OCF.ERR_GENERIC : OCF.ERR_CONFIGURED, `${failed[0]}${more}`);
  }
  const created = results.filter((r) => r.status === 'fulfilled' && r.value === 'created').length;
  setStep('installing the write fences');
  const fenced = await settleAll(plan.cfg.objects, 8, (o) => installFences(plan, o, 'forward'));
  const fenceFailure = fenced.findIndex((r) => r.status === 'rejected');
  if (fenceFailure >= 0) {
    const o = plan.cfg.objects[fenceFailure]!;
    const why = (fenced[fenceFailure] as PromiseRejectedResult).reason;
    throw new OcfError(OCF.ERR_GENERIC, `${JSON.stringify(o.database)}: cannot install the write fence: ${why instanceof Error ? why.message : String(why)}`);
  }
  // Just installed as the phase wants them: the monitor need not look at every fence at once.
  const checkedAt = new Date().toISOString();
  for (const o of plan.cfg.objects) updateStateFile(plan.stateDir, o.token, { fence_checked_at: checkedAt, fence_checked_phase: 'forward' });
  setStep('waiting for the apply workers');
  await waitForWorkers(plan);
  markRunning(ctx, plan);
  ctx.log.info(`started: ${plan.cfg.databaseList.length} database(s), ${created} set up now, ${plan.cfg.databaseList.length - created} adopted`);
  return OCF.SUCCESS;
}

function markRunning(ctx: ActionContext, plan: Plan): void {
  writeMarker(ctx.env.rscTmp, plan.instance, { node: hostname(), startedAt: new Date().toISOString(), applied: reloadableValues(ctx.cfg) });
}

/**
 * The first monitor should find every apply worker running: give them a
 * moment to start. Publishing from a standby, the table-synchronisation slots
 * of the initial copy wait for the primary's running-transactions records:
 * the primary is asked for them while a table's copy is being set up or runs
 * (states i and d), within the same bound (the monitor asks again while a
 * copy runs).
 */
async function waitForWorkers(plan: Plan, limitMs = 15_000): Promise<void> {
  const until = Date.now() + plan.deadline.stepMs(limitMs);
  const fromStandby = standbySource(plan);
  await withStandbySnapshots(plan, plan.cfg.objects[0]!.database, () =>
    settleAll(plan.cfg.objects, 16, async (o) => {
      const c = await connect(plan.targetPrimary, o.database, connectOptions(plan));
      try {
        const major = await serverMajor(c);
        /** Tables still copying once the worker runs (undefined: the worker has not started). */
        let copying: number | undefined;
        while (Date.now() < until) {
          const sub = await readSubscription(c, o.forwardSub, major);
          if (!sub) return;
          if (sub.workerPid !== null) {
            if (fromStandby) copying = (await subscriptionTables(c, sub.oid)).filter((t) => t.state === 'i' || t.state === 'd').length;
            if (!fromStandby || copying === 0) {
              // A full look at the target's side, taken now: the first monitor need not open a session for it.
              await rememberTargetLook(plan, o, sub, c);
              return;
            }
          }
          await sleep(100);
        }
        if (copying === undefined) plan.log.warn(`${JSON.stringify(o.database)}: the apply worker of ${o.forwardSub} has not started yet`);
        else plan.log.info(`${JSON.stringify(o.database)}: the initial copy of ${copying} table(s) on the standby is still running; the monitor asks the primary for snapshots while it runs`);
      } finally {
        await c.end().catch(() => undefined);
      }
    }),
  );
}

/** Records what start read of a database's target side, with its DDL report, for the first monitor (a failure only costs that monitor a look). */
async function rememberTargetLook(plan: Plan, o: DatabaseObjects, sub: SubscriptionInfo, c: pg.Client): Promise<void> {
  let ddl: DdlReport | undefined;
  try {
    ddl = await ddlReportIfCaptured(c);
  } catch {
    return;
  }
  try {
    // No DDL capture in this database: nothing to report, as the monitor reads it.
    recordTargetLook(plan, o.token, sub, ddl ?? { notReplayed: 0, latest: undefined });
  } catch (err) {
    plan.log.warn(`cannot update the state file of ${JSON.stringify(o.database)}: ${(err as Error).message}`);
  }
}

/** Phase reverse: every reverse subscription must exist on the source (nothing is created or copied here). */
async function adoptReverse(plan: Plan): Promise<void> {
  const missing: string[] = [];
  await settleAll(plan.cfg.objects, 16, async (o) => {
    const c = await connect(plan.sourcePrimary, o.database, connectOptions(plan));
    try {
      const sub = await readSubscription(c, objectsOf(o, 'reverse').sub, await serverMajor(c));
      if (!sub) missing.push(`${JSON.stringify(o.database)}: reverse subscription ${objectsOf(o, 'reverse').sub} is missing on the source`);
      else if (!sub.enabled) await setSubscriptionEnabled(c, objectsOf(o, 'reverse').sub, true);
    } finally {
      await c.end().catch(() => undefined);
    }
  });
  if (missing.length > 0) {
    throw new OcfError(OCF.ERR_GENERIC, `${missing[0]}${missing.length > 1 ? ` (+${missing.length - 1} more)` : ''}; the way back is broken: see pgtwin-migrate status`);
  }
}
