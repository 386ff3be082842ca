/**
 * monitor: fast and read-only apart from its documented duties (state files,
 * refreshing a subscription when new tables appear). 7 when this node does
 * not run the migration, 0 when every database is healthy, 1 naming the
 * database and what was seen when one is broken, 190 (degraded) when DDL or
 * new tables could not be replicated.
 */
import type { ActionContext } from '../../ocf/run-action';
import { OCF, OcfError } from '../../ocf/exit-codes';
import { baseInstance } from '../../ocf/env';
import { setStep } from '../../ocf/watchdog';
import { readMarker } from '../state-files';
import { resolvePlan, connectOptions, type Plan } from '../plan';
import { observeAll, observeOne } from '../observe';
import { leanObservation, rememberedSource } from '../report';
import { assessDatabase, monitorVerdict, summaryLine, type DatabaseHealth } from '../health';
import { writeHealthStateFiles, previousErrors } from '../report';
import { migrationRecord, phaseOf } from '../cib-state';
import { superviseCutover } from '../cutover/supervise';
import { withClient } from '../../pg/connection';
import { refreshSubscription } from '../../pg/subscription';
import { settleAll, sleep } from '../parallel';
import { headline, publishAttributes, renderMetrics, writeMetricsFile } from '../publish';

export async function monitor(ctx: ActionContext): Promise<number> {
  const instance = baseInstance(ctx.env);
  if (!readMarker(ctx.env.rscTmp, instance)) return OCF.NOT_RUNNING;
  setStep('discovering the clusters');
  // The CIB record does not depend on the discovery: read both at once.
  const [plan, cib] = await Promise.all([resolvePlan(ctx), migrationRecord(instance, () => ctx.deadline.stepMs(10_000)).readAll()]);
  const phase = phaseOf(cib) ?? 'forward';
  if (phase === 'complete') {
    ctx.log.info(`migration ${instance} is complete; nothing to watch`);
    return OCF.SUCCESS;
  }
  setStep('supervising the cutover');
  const cutover = await superviseCutover(plan, cib);
  if (cutover.running) {
    await publish(plan, 'cutover', await plan.state.readAll(), []);
    return OCF.SUCCESS;
  }
  setStep('observing the databases');
  const healths = await assessAll(plan, true);
  setStep('refreshing subscriptions');
  await refreshWhereNeeded(plan, healths);
  writeHealthStateFiles(plan, phase, healths);
  setStep('publishing attributes and metrics');
  await publish(plan, phase, cib, healths);
  ctx.log.info(`monitor: ${summaryLine(healths)}`);
  const verdict = monitorVerdict(healths);
  if (verdict.code === OCF.SUCCESS && cutover.failedReason) {
    const reason = `cutover failed and was rolled back: ${cutover.failedReason}; set cutover_ready=false, then true to retry`;
    ctx.log.warn(`monitor: ${reason}`);
    throw new OcfError(OCF.DEGRADED, reason);
  }
  if (verdict.reason) {
    if (verdict.code === OCF.DEGRADED) {
      ctx.log.warn(`monitor: ${verdict.reason}`);
      throw new OcfError(OCF.DEGRADED, verdict.reason);
    }
    throw new OcfError(OCF.ERR_GENERIC, verdict.reason);
  }
  return OCF.SUCCESS;
}

/**
 * Observes every database; one whose apply worker is missing is looked at
 * again after a moment, because workers restart by themselves after an
 * error or a reconnect and a single look would make the monitor flap.
 */
async function assessAll(plan: Plan, expectEnabled: boolean): Promise<DatabaseHealth[]> {
  const opts = (token: string) => ({
    expectEnabled,
    lagThreshold: plan.cfg.lag_threshold,
    previousErrors: previousErrors(plan, token),
    remembered: rememberedSource(plan, token),
  });
  const t0 = Date.now();
  const healths = (await observeAll(plan, leanObservation(plan))).map((v) => assessDatabase(v, opts(v.objects.token)));
  plan.log.debug(`observed ${healths.length} database(s) in ${Date.now() - t0} ms`);
  const retry = healths.map((h, i) => [h, i] as const).filter(([h]) => h.state === 'broken' && /apply worker .* is not running/.test(h.problem ?? ''));
  if (retry.length === 0 || plan.deadline.remainingMs() < 8_000) return healths;
  await sleep(2_000);
  await settleAll(retry, 16, async ([, i]) => {
    const o = plan.cfg.objects[i]!;
    healths[i] = assessDatabase(await observeOne(plan, o), opts(o.token));
  });
  return healths;
}

async function refreshWhereNeeded(plan: Plan, healths: readonly DatabaseHealth[]): Promise<void> {
  const due = healths.filter((h) => h.needsRefresh && h.state !== 'broken');
  await settleAll(due, 8, async (h) => {
    const o = plan.cfg.objects.find((x) => x.token === h.token)!;
    try {
      await withClient(plan.targetPrimary, o.database, connectOptions(plan), (c) => refreshSubscription(c, o.forwardSub));
      plan.log.info(`${JSON.stringify(o.database)}: published tables changed; refreshed ${o.forwardSub} (new tables are being copied)`);
    } catch (err) {
      plan.log.warn(`${JSON.stringify(o.database)}: could not refresh ${o.forwardSub}: ${(err as Error).message}`);
    }
  });
}

/** Node attributes for crm_mon -A, and the Prometheus textfile when metrics_file is set. */
async function publish(plan: Plan, phase: string, cib: ReadonlyMap<string, string>, healths: readonly DatabaseHealth[]): Promise<void> {
  const h = headline(phase, healths);
  await publishAttributes(plan, healths.length > 0 ? h : { ...h, inSync: 0, total: plan.cfg.objects.length });
  if (plan.cfg.metrics_file) {
    try {
      writeMetricsFile(plan.cfg.metrics_file, renderMetrics(plan.instance, phase, cib, healths));
    } catch (err) {
      plan.log.warn(`cannot write metrics_file ${plan.cfg.metrics_file}: ${(err as Error).message}`);
    }
  }
}
