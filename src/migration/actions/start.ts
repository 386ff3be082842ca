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
import { KEY, parseBaseline, diffBaseline, phaseOf } from '../cib-state';
import { writeMarker, writeBaselineFile, updateStateFile, removeBaselineFile, removeStateFiles } from '../state-files';
import { connect } from '../../pg/connection';
import { readSubscription } from '../../pg/subscription';
import { serverMajor } from '../../pg/server';
import { PgFailure } from '../../pg/errors';
import { reloadableValues } from './reload';
import { FORGET_DETAILS } from '../report';

/** Phases after which nothing is left to run: `complete`, renamed `finished` (after the way back, `reverse`). */
const ENDED_PHASES: ReadonlySet<string> = new Set(['complete', 'finished']);

export async function start(ctx: ActionContext): Promise<number> {
  checkTools();
  setStep('discovering the clusters');
  const plan = await resolvePlan(ctx);
  const cib = await plan.state.readAll();
  const phase = phaseOf(cib);
  // The record outlives the primitive: a resource re-created with the same id finds its migration ended.
  if (ENDED_PHASES.has(phase ?? '')) {
    throw new OcfError(OCF.ERR_CONFIGURED, `migration ${plan.instance} has ended (phase ${phase}); to start a new one, run pgtwin-migrate teardown first`);
  }
  if (phase === 'cutover') {
    // A cutover was under way (e.g. on a node that failed): the monitor supervises or takes it over.
    ctx.log.warn(`migration ${plan.instance} is in the middle of a cutover; the monitor will see it through`);
    markRunning(ctx, plan);
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
    await plan.state.setMany({ [KEY.phase]: 'forward', [KEY.databases]: JSON.stringify(plan.cfg.databaseList), [KEY.startedAt]: new Date().toISOString() });
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
  setStep('waiting for the apply workers');
  await waitForWorkers(plan);
  markRunning(ctx, plan);
  ctx.log.info(`started: ${plan.cfg.databaseList.length} database(s), ${created} set up now, ${plan.cfg.databaseList.length - created} adopted`);
  return OCF.SUCCESS;
}

function markRunning(ctx: ActionContext, plan: Plan): void {
  writeMarker(ctx.env.rscTmp, plan.instance, { node: hostname(), startedAt: new Date().toISOString(), applied: reloadableValues(ctx.cfg) });
}

/** The first monitor should find every apply worker running: give them a moment to start. */
async function waitForWorkers(plan: Plan, limitMs = 15_000): Promise<void> {
  const until = Date.now() + plan.deadline.stepMs(limitMs);
  await settleAll(plan.cfg.objects, 16, async (o) => {
    const c = await connect(plan.targetPrimary, o.database, connectOptions(plan));
    try {
      const major = await serverMajor(c);
      while (Date.now() < until) {
        const sub = await readSubscription(c, o.forwardSub, major);
        if (!sub || sub.workerPid !== null) return;
        await sleep(100);
      }
      plan.log.warn(`${JSON.stringify(o.database)}: the apply worker of ${o.forwardSub} has not started yet`);
    } finally {
      await c.end().catch(() => undefined);
    }
  });
}
