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
import { observeAll, observeDatabase } from '../observe';
import { assessDatabase, monitorVerdict, summaryLine, type DatabaseHealth } from '../health';
import { writeHealthStateFiles, previousErrors } from '../report';
import { KEY, type Phase } from '../cib-state';
import { superviseCutover } from '../cutover/supervise';
import { withClient } from '../../pg/connection';
import { refreshSubscription } from '../../pg/subscription';
import { settleAll, sleep } from '../parallel';

export async function monitor(ctx: ActionContext): Promise<number> {
  const instance = baseInstance(ctx.env);
  if (!readMarker(ctx.env.rscTmp, instance)) return OCF.NOT_RUNNING;
  setStep('discovering the clusters');
  const plan = await resolvePlan(ctx);
  const cib = await plan.state.readAll();
  const phase = (cib.get(KEY.phase) as Phase | undefined) ?? 'forward';
  if (phase === 'complete') {
    ctx.log.info(`migration ${instance} is complete; nothing to watch`);
    return OCF.SUCCESS;
  }
  setStep('supervising the cutover');
  const cutover = await superviseCutover(plan, cib);
  if (cutover.running) return OCF.SUCCESS;
  setStep('observing the databases');
  const healths = await assessAll(plan, true);
  setStep('refreshing subscriptions');
  await refreshWhereNeeded(plan, healths);
  writeHealthStateFiles(plan, phase, healths);
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
  const opts = (token: string) => ({ expectEnabled, lagThreshold: plan.cfg.lag_threshold, previousErrors: previousErrors(plan, token) });
  const healths = (await observeAll(plan)).map((v) => assessDatabase(v, opts(v.objects.token)));
  const retry = healths.map((h, i) => [h, i] as const).filter(([h]) => h.state === 'broken' && /apply worker .* is not running/.test(h.problem ?? ''));
  if (retry.length === 0 || plan.deadline.remainingMs() < 8_000) return healths;
  await sleep(2_000);
  await settleAll(retry, 16, async ([, i]) => {
    const o = plan.cfg.objects[i]!;
    healths[i] = assessDatabase(await observeDatabase(plan, o), opts(o.token));
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
