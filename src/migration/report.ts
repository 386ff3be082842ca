/** Writing what monitor and start learned: state files and the summary line. */
import type { Plan } from './plan';
import type { DatabaseHealth, ErrorCounts } from './health';
import { updateStateFile, readStateFile } from './state-files';

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
        apply_errors: h.applyErrors,
        sync_errors: h.syncErrors,
        problem: h.problem ?? '',
      });
    } catch (err) {
      plan.log.warn(`cannot write the state file of ${JSON.stringify(h.database)} in ${plan.stateDir}: ${(err as Error).message}`);
    }
  }
}

/** The error counters the last monitor recorded in a database's state file, if it did. */
export function previousErrors(plan: Plan, token: string): ErrorCounts | undefined {
  const state = readStateFile(plan.stateDir, token);
  if (!state || state.apply_errors === undefined || state.sync_errors === undefined) return undefined;
  const apply = Number(state.apply_errors);
  const sync = Number(state.sync_errors);
  return Number.isFinite(apply) && Number.isFinite(sync) ? { apply, sync } : undefined;
}
