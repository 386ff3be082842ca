/**
 * validate-all: the parameters (already read by the dispatcher), the tools,
 * and at OCF_CHECK_LEVEL ≥ 10 the pre-flight checks against both clusters.
 */
import type { ActionContext } from '../../ocf/run-action';
import { OCF, OcfError } from '../../ocf/exit-codes';
import { missingTools } from '../../ocf/tools';
import { setStep } from '../../ocf/watchdog';
import { resolvePlan } from '../plan';
import { preflight, formatFinding, logFindings } from '../preflight';

export function checkTools(): void {
  const missing = missingTools();
  if (missing.length > 0) {
    throw new OcfError(OCF.ERR_INSTALLED, `missing Pacemaker tools: ${missing.join(', ')}; install pacemaker-cli-utils`);
  }
}

export async function validateAll(ctx: ActionContext): Promise<number> {
  checkTools();
  if (ctx.cfg.usesLegacyPgdatabase) {
    ctx.log.warn(`databases is empty; migrating the legacy pgdatabase=${ctx.cfg.pgdatabase}. pgdatabase is deprecated: set databases instead`);
  }
  if (ctx.env.checkLevel < 10) return OCF.SUCCESS;
  setStep('pre-flight checks');
  const plan = await resolvePlan(ctx);
  const { findings } = await preflight(plan);
  logFindings(ctx.log, findings);
  const errors = findings.filter((f) => f.level === 'error');
  if (errors.length === 0) {
    ctx.log.info(`pre-flight: ${plan.cfg.databaseList.length} database(s) ready${findings.length > 0 ? ` (${findings.length} warning(s))` : ''}`);
    return OCF.SUCCESS;
  }
  const more = errors.length > 1 ? ` (+${errors.length - 1} more)` : '';
  throw new OcfError(errors.every((e) => e.unreachable) ? OCF.ERR_GENERIC : OCF.ERR_CONFIGURED, `${formatFinding(errors[0]!)}${more}`);
}
