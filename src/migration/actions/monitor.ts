/**
 * monitor: fast and read-only apart from its documented duties (state files,
 * refreshing a subscription when new tables appear, launching and
 * supervising a switch, keeping the write fences as the phase wants them).
 * 7 when this node does not run the migration, 0 when every database is
 * healthy, 1 naming the database and what was seen when one is broken (or a
 * switch is blocked past its swap), 190 (degraded) when DDL or new tables
 * could not be replicated or a failed switch is not acknowledged.
 */
import type { ActionContext } from '../../ocf/run-action';
import { OCF, OcfError } from '../../ocf/exit-codes';
import { baseInstance } from '../../ocf/env';
import { setStep } from '../../ocf/watchdog';
import { readMarker } from '../state-files';
import { resolvePlan, connectOptions, type Plan } from '../plan';
import { observeAll, observeOne, readShared, type ObserveOptions, type Shared } from '../observe';
import { leanObservation, rememberedSource, dueForLook, recordLooks, fencesDue, writeHealthStateFiles, previousErrors } from '../report';

import { assessDatabase, monitorVerdict, summaryLine, type DatabaseHealth } from '../health';
import { migrationRecord, phaseOf, parseHistory, withEvent, KEY } from '../cib-state';
import { superviseCutover } from '../cutover/supervise';
import { checkFences, type SteadyPhase } from '../fences';
import { finish, finishWhenAsked, type FinishReport } from '../finish';
import { objectsOf, endpointsOf, type Direction } from '../direction';
import { withClient } from '../../pg/connection';
import { SessionPool } from '../../pg/session-pool';
import { refreshSubscription } from '../../pg/subscription';
import { settleAll, sleep } from '../parallel';
import { standbySource, logStandbySnapshot } from '../standby-snapshots';
import { headline, publishAttributes, renderMetrics, writeMetricsFile } from '../publish';

export async function monitor(ctx: ActionContext): Promise<number> {
  const instance = baseInstance(ctx.env);
  if (!readMarker(ctx.env.rscTmp, instance)) return OCF.NOT_RUNNING;
  setStep('discovering the clusters');
  // The CIB record does not depend on the discovery: read both at once.
  const [resolved, cib] = await Promise.all([resolvePlan(ctx), migrationRecord(instance, () => ctx.deadline.stepMs(10_000)).readAll()]);
  const plan: Plan = { ...resolved, sessions: new SessionPool() };
  try {
    return await watch(ctx, plan, cib);
  } finally {
    setStep('closing sessions');
    await plan.sessions!.closeAll();
  }
}

async function watch(ctx: ActionContext, plan: Plan, cib: ReadonlyMap<string, string>): Promise<number> {
  const phase = phaseOf(cib) ?? 'forward';
  if (phase === 'finished') {
    ctx.log.info(`migration ${plan.instance} is finished; nothing to watch`);
    return OCF.SUCCESS;
  }
  if (phase === 'finishing') {
    // A finish cut short (timeout, node lost): carried on here; nothing is watched or repaired any more.
    setStep('finishing');
    return finishOutcome(await finish(plan));
  }
  setStep('supervising the switch');
  const sw = await superviseCutover(plan, cib);
  if (sw.running) {
    await publish(plan, phase, await plan.state.readAll(), []);
    if (sw.blockedReason) throw new OcfError(OCF.ERR_GENERIC, `${phase} blocked: ${sw.blockedReason}`);
    return OCF.SUCCESS;
  }
  const steady: SteadyPhase = phase === 'reverse' ? 'reverse' : 'forward';
  if (steady === 'reverse' && plan.cfg.finish) {
    setStep('finishing');
    // A finish begun here is carried on by the next monitor, never watched as the way back it is removing.
    const report = await finishWhenAsked(plan).catch((err: Error) => {
      ctx.log.warn(`monitor: finish=true not carried out: ${err.message}`);
      return undefined;
    });
    if (report) return finishOutcome(report);
  }
  setStep('checking the write fences');
  const direction: Direction = steady === 'reverse' ? 'reverse' : 'forward';
  // One rotation for fences and details: a database due gets one session per side for both.
  const due = dueForLook(plan, direction);
  recordLooks(plan, due, direction);
  const urgent = sw.failedReason?.includes('rollback incomplete') ?? false;
  const fenceDue = fencesDue(plan, steady, urgent, due, ctx.env.intervalMs);
  const f0 = Date.now();
  // The shared views (one session per side) are read beside the fence checks, which they do not depend on.
  const lean = leanObservation(plan, direction, due);
  let shared = readShared(plan, lean, direction);
  shared.catch(() => undefined);
  // Only the sessions of the databases the observation reads in full are kept for it.
  const fenceProblems = await checkFences(plan, steady, fenceDue, (o) => due.has(o.token));
  const fenceMs = Date.now() - f0;
  plan.log.debug(`checked the write fences of ${fenceDue.length} database(s) in ${fenceMs} ms`);
  // A repair (which may wait for writes in flight) or a slow check: what the shared views said is read again.
  if (fenceProblems.length > 0 || fenceMs > 2_000) shared = readShared(plan, lean, direction);
  setStep('observing the databases');
  const healths = await assessAll(plan, direction, lean, shared);
  await nudgeStandbyWhileCopying(plan, direction, healths);
  setStep('refreshing subscriptions');
  await refreshWhereNeeded(plan, healths, direction);
  writeHealthStateFiles(plan, steady, healths);
  await recordCopyDone(plan, cib, steady, healths);
  setStep('publishing attributes and metrics');
  await publish(plan, steady, cib, healths);
  ctx.log.info(`monitor: ${summaryLine(healths)}${steady === 'reverse' ? ' (reverse replication, target → source)' : ''}`);
  const unrepaired = fenceProblems.find((p) => !p.repaired);
  if (unrepaired) throw new OcfError(OCF.ERR_GENERIC, unrepaired.message);
  const verdict = monitorVerdict(healths);
  if (verdict.code === OCF.SUCCESS && sw.failedReason) {
    const reason = `the last switch failed and was rolled back: ${sw.failedReason}; set cutover_ready=false, then true to retry`;
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

/** A finish this monitor carried out: done, or under way (degraded) until the next monitor carries it on. */
function finishOutcome(report: FinishReport): number {
  if (report.finished) return OCF.SUCCESS;
  throw new OcfError(OCF.DEGRADED, `finish under way: ${report.leftovers.length} object(s) left (${report.leftovers[0]}); the next monitor carries on`);
}

/** The history notes when the initial copy of every database was first seen done. */
async function recordCopyDone(plan: Plan, cib: ReadonlyMap<string, string>, phase: SteadyPhase, healths: readonly DatabaseHealth[]): Promise<void> {
  if (phase !== 'forward' || healths.length === 0 || !healths.every((h) => h.state === 'streaming')) return;
  const history = parseHistory(cib.get(KEY.history));
  const since = history.map((e) => e.event).lastIndexOf('forward started');
  if (history.slice(since + 1).some((e) => e.event === 'copy done' || e.event.endsWith('complete'))) return;
  const worst = healths.reduce((m, h) => Math.max(m, h.lagBytes ?? 0), 0);
  await plan.state
    .set(KEY.history, withEvent(cib.get(KEY.history), 'copy done', `${healths.length} database(s) streaming, worst lag ${worst} bytes`))
    .catch((err: Error) => plan.log.warn(`cannot record the history: ${err.message}`));
}

/**
 * Observes every database in one direction (forward, or the way back in
 * phase reverse); one whose apply worker is missing is looked at again after
 * a moment, because workers restart by themselves after an error or a
 * reconnect and a single look would make the monitor flap.
 */
async function assessAll(plan: Plan, d: Direction, lean: ObserveOptions, shared: Promise<Shared>): Promise<DatabaseHealth[]> {
  const opts = (token: string) => ({
    expectEnabled: true,
    lagThreshold: plan.cfg.lag_threshold,
    previousErrors: previousErrors(plan, token, d),
    remembered: rememberedSource(plan, token, d),
  });
  const t0 = Date.now();
  const healths = (await observeAll(plan, lean, 50, d, shared)).map((v) => assessDatabase(v, opts(v.objects.token)));
  plan.log.debug(`observed ${healths.length} database(s) (${d}) in ${Date.now() - t0} ms`);
  const retry = healths.map((h, i) => [h, i] as const).filter(([h]) => h.state === 'broken' && /apply worker .* is not running/.test(h.problem ?? ''));
  if (retry.length === 0 || plan.deadline.remainingMs() < 8_000) return healths;
  await sleep(2_000);
  await settleAll(retry, 16, async ([, i]) => {
    const o = plan.cfg.objects[i]!;
    healths[i] = assessDatabase(await observeOne(plan, o, d), opts(o.token));
  });
  return healths;
}

/** Publishing from a standby, a copy's next table-synchronisation slot waits for the primary's running-transactions record: ask for one. */
async function nudgeStandbyWhileCopying(plan: Plan, d: Direction, healths: readonly DatabaseHealth[]): Promise<void> {
  if (d !== 'forward' || !standbySource(plan)) return;
  const copying = healths.find((h) => h.state === 'copying');
  if (copying) await logStandbySnapshot(plan, plan.cfg.objects.find((o) => o.token === copying.token)!.database);
}

/** New published tables: the subscription takes them in (and copies them), forward or on the way back. */
async function refreshWhereNeeded(plan: Plan, healths: readonly DatabaseHealth[], d: Direction): Promise<void> {
  const due = healths.filter((h) => h.needsRefresh && h.state !== 'broken');
  await settleAll(due, 8, async (h) => {
    const o = plan.cfg.objects.find((x) => x.token === h.token)!;
    const sub = objectsOf(o, d).sub;
    try {
      await withClient(endpointsOf(plan, d).subscriber, o.database, connectOptions(plan), (c) => refreshSubscription(c, sub));
      plan.log.info(`${JSON.stringify(o.database)}: published tables changed; refreshed ${sub} (new tables are being copied)`);
    } catch (err) {
      plan.log.warn(`${JSON.stringify(o.database)}: could not refresh ${sub}: ${(err as Error).message}`);
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
