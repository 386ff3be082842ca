/**
 * reload-agent: Pacemaker calls it instead of a restart when only reloadable
 * parameters changed. It applies them without touching replication: they
 * are read afresh by every later action; this records and logs the change.
 */
import type { ActionContext } from '../../ocf/run-action';
import type { Config } from '../../ocf/config';
import { OCF } from '../../ocf/exit-codes';
import { PARAMS } from '../../ocf/params';
import { baseInstance } from '../../ocf/env';
import { readMarker, writeMarker } from '../state-files';
import { resolvePlan } from '../plan';
import { superviseCutover } from '../cutover/supervise';
import { finishWhenAsked } from '../finish';

export function reloadableValues(cfg: Config): Record<string, string> {
  const out: Record<string, string> = {};
  for (const p of PARAMS) {
    if ('reloadable' in p && p.reloadable) out[p.name] = String((cfg as unknown as Record<string, unknown>)[p.name]);
  }
  return out;
}

export async function reloadAgent(ctx: ActionContext): Promise<number> {
  const instance = baseInstance(ctx.env);
  const now = reloadableValues(ctx.cfg);
  const marker = readMarker(ctx.env.rscTmp, instance);
  const before = marker?.applied ?? {};
  const changes = Object.keys(now).filter((k) => before[k] !== now[k]);
  for (const k of changes) ctx.log.info(`reload-agent: ${k} ${before[k] ?? '(unset)'} -> ${now[k]}`);
  if (changes.length === 0) ctx.log.info('reload-agent: no reloadable parameter changed');
  if (marker) writeMarker(ctx.env.rscTmp, instance, { ...marker, applied: now });
  // cutover_ready acts at once: true launches a switch, false arms the next one (and acknowledges a failed one).
  if (marker && (changes.includes('cutover_ready') || ctx.cfg.cutover_ready)) {
    try {
      const plan = await resolvePlan(ctx);
      await superviseCutover(plan, await plan.state.readAll());
    } catch (err) {
      ctx.log.warn(`reload-agent: the next monitor will act on cutover_ready (${(err as Error).message})`);
    }
  }
  // finish=true in phase reverse ends the way back (the monitor finishes what this could not).
  if (marker && ctx.cfg.finish && changes.includes('finish')) {
    try {
      await finishWhenAsked(await resolvePlan(ctx, { lenient: true }));
    } catch (err) {
      ctx.log.warn(`reload-agent: the next monitor will act on finish=true (${(err as Error).message})`);
    }
  }
  return OCF.SUCCESS;
}
