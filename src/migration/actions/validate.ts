/**
 * validate-all: the parameters (already read by the dispatcher), the tools,
 * and at OCF_CHECK_LEVEL ≥ 10 the pre-flight checks against both clusters.
 */
import type { ActionContext } from '../../ocf/run-action';
import { OCF, OcfError } from '../../ocf/exit-codes';
import { missingTools } from '../../ocf/tools';

export function checkTools(): void {
  const missing = missingTools();
  if (missing.length > 0) {
    throw new OcfError(OCF.ERR_INSTALLED, `missing Pacemaker tools: ${missing.join(', ')}; install pacemaker-cli-utils`);
  }
}

export async function validateAll(ctx: ActionContext): Promise<number> {
  checkTools();
  ctx.log.debug(`parameters valid: ${ctx.cfg.databaseList.length} database(s): ${ctx.cfg.databaseList.join(', ')}`);
  if (ctx.cfg.usesLegacyPgdatabase) {
    ctx.log.warn(`databases is empty; migrating the legacy pgdatabase=${ctx.cfg.pgdatabase}. pgdatabase is deprecated: set databases instead`);
  }
  return OCF.SUCCESS;
}
