/**
 * stop: this node stops managing the migration. Replication keeps flowing
 * (a restart or a move resumes it without copying again) unless
 * teardown_on_stop=true in phase forward; the way back after a cutover is
 * removed only by finish. A running switch is brought to a consistent end
 * first. Always succeeds when there is nothing to stop.
 */
import type { ActionContext } from '../../ocf/run-action';
import { OCF } from '../../ocf/exit-codes';
import { baseInstance } from '../../ocf/env';
import { setStep } from '../../ocf/watchdog';
import { removeMarker, readMarker } from '../state-files';
import { settleCutoverOnStop } from '../cutover/supervise';
import { resolvePlan } from '../plan';
import { teardown } from '../teardown';
import { withdrawAttributes } from '../publish';
import { phaseOf } from '../cib-state';

export async function stop(ctx: ActionContext): Promise<number> {
  const instance = baseInstance(ctx.env);
  if (readMarker(ctx.env.rscTmp, instance)) {
    setStep('settling a running switch');
    try {
      await settleCutoverOnStop(await resolvePlan(ctx, { lenient: true }));
    } catch (err) {
      ctx.log.err(`stop: could not settle the switch: ${(err as Error).message}; the next start or monitor takes it over`);
    }
  }
  if (ctx.cfg.teardown_on_stop) await teardownOnStop(ctx);
  await withdrawAttributes(instance, ctx.env.rscTmp, ctx.deadline.stepMs(5_000)).catch(() => undefined);
  removeMarker(ctx.env.rscTmp, instance);
  ctx.log.info(`stopped${ctx.cfg.teardown_on_stop ? '' : '; replication keeps running (teardown_on_stop=false)'}`);
  return OCF.SUCCESS;
}

async function teardownOnStop(ctx: ActionContext): Promise<void> {
  setStep('teardown on stop');
  try {
    const plan = await resolvePlan(ctx, { lenient: true });
    const phase = phaseOf(await plan.state.readAll());
    if (phase !== undefined && phase !== 'forward') {
      ctx.log.warn(`stop: teardown_on_stop=true does nothing in phase ${phase}: only pgtwin-migrate finish removes the way back of a completed cutover`);
      return;
    }
    const report = await teardown(plan);
    if (report.leftovers.length > 0) {
      ctx.log.warn(`stop: ${report.leftovers.length} object(s) could not be removed; run pgtwin-migrate teardown when both clusters are reachable`);
    }
  } catch (err) {
    // A failed stop gets the node fenced, which removes nothing: report and stop anyway.
    ctx.log.err(`stop: teardown_on_stop failed: ${(err as Error).message}; run pgtwin-migrate teardown by hand`);
  }
}
