/** Writing what monitor and start learned: state files and the summary line. */
import type { Plan } from './plan';
import type { DatabaseHealth } from './health';
import { updateStateFile } from './state-files';

export function writeHealthStateFiles(plan: Plan, phase: string, healths: readonly DatabaseHealth[]): void {
  for (const h of healths) {
    try {
      updateStateFile(plan.stateDir, h.token, {
        database: h.database,
        phase,
        subscription_state: h.state,
        tables_synced: h.tablesReady,
        tables_total: h.tablesTotal,
        copy_bytes: h.copyBytes,
        copy_total_bytes: h.copyTotalBytes,
        lag: h.lagBytes,
        lag_seconds: h.lagSeconds === null ? null : Number(h.lagSeconds.toFixed(3)),
        ddl_not_replayed: h.ddlNotReplayed,
        problem: h.problem ?? '',
      });
    } catch (err) {
      plan.log.warn(`cannot write the state file of ${JSON.stringify(h.database)} in ${plan.stateDir}: ${(err as Error).message}`);
    }
  }
}
