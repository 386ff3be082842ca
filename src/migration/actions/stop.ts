/**
 * stop: this node stops managing the migration. Replication keeps flowing
 * (a restart or a move resumes it without copying again) unless
 * teardown_on_stop=true. Always succeeds when there is nothing to stop.
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

export async function stop(ctx: ActionContext): Promise<number> {
  const instance = baseInstance(ctx.env);
  if (readMarker(ctx.env.rscTmp, instance)) {
    setStep('settling a running cutover');
    try {
      await settleCutoverOnStop(await resolvePlan(ctx, { lenient: true }));
    } catch (err) {
      ctx.log.err(`stop: could not settle the cutover: ${(err as Error).message}; the next start or monitor takes it over`);
    }
  }
  if (ctx.cfg.teardown_on_stop) {
    setStep('teardown on stop');
    try {
      const plan = await resolvePlan(ctx, { lenient: true });
      const report = await teardown(plan);
      if (report.leftovers.length > 0) {
        ctx.log.warn(`stop: ${report.leftovers.length} object(s) could not be removed; run pgtwin-migrate teardown when both clusters are reachable`);
      }
    } catch (err) {
      // A failed stop gets the node fenced, which removes nothing: report and stop anyway.
      ctx.log.err(`stop: teardown_on_stop failed: ${(err as Error).message}; run pgtwin-migrate teardown by hand`);
    }
  }
  await withdrawAttributes(instance, ctx.env.rscTmp, ctx.deadline.stepMs(5_000)).catch(() => undefined);
  removeMarker(ctx.env.rscTmp, instance);
  ctx.log.info(`stopped${ctx.cfg.teardown_on_stop ? '' : '; replication keeps running (teardown_on_stop=false)'}`);
  return OCF.SUCCESS;
}
