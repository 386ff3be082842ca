/**
 * Logical decoding on a standby (source_node_role=Unpromoted): a slot made
 * there becomes consistent only once the primary logs a running-transactions
 * record. The primary's background writer logs one every 15 s, and only while
 * something writes; an idle primary never does. The subscription's own slot,
 * and each table-synchronisation slot of the initial copy, would wait for it.
 * The agent asks the primary for one (pg_log_standby_snapshot, PostgreSQL 16+)
 * while it waits for such slots: during start, and at each monitor while a
 * copy is still running.
 */
import type { Plan } from './plan';
import { connectOptions } from './plan';
import { connect } from '../pg/connection';
import { sleep } from './parallel';

const NUDGE_EVERY_MS = 200;

export const standbySource = (plan: Plan): boolean => plan.cfg.source_node_role === 'Unpromoted';

/** Asking is a help, never a condition: a failure is a warning, and whatever waits for the record goes on waiting. */
function cannotAsk(plan: Plan, err: unknown): void {
  plan.log.warn(`cannot ask the source primary for a running-transactions record (pg_log_standby_snapshot): ${(err as Error).message}; slots on the standby wait for the background writer's`);
}

/** One running-transactions record on the source primary (a warning when it could not be asked). */
export async function logStandbySnapshot(plan: Plan, database: string): Promise<void> {
  try {
    const c = await connect(plan.sourcePrimary, database, connectOptions(plan));
    try {
      await c.query('SELECT pg_log_standby_snapshot()');
    } finally {
      await c.end().catch(() => undefined);
    }
  } catch (err) {
    cannotAsk(plan, err);
  }
}

/** Runs fn while the source primary logs a running-transactions record every 200 ms (standby mode only). */
export async function withStandbySnapshots<T>(plan: Plan, database: string, fn: () => Promise<T>): Promise<T> {
  if (!standbySource(plan)) return fn();
  // Without the primary, fn runs all the same (and may wait longer).
  const primary = await connect(plan.sourcePrimary, database, connectOptions(plan)).catch((err: unknown) => {
    cannotAsk(plan, err);
    return undefined;
  });
  if (!primary) return fn();
  let done = false;
  const nudger = (async () => {
    while (!done) {
      await primary.query('SELECT pg_log_standby_snapshot()').catch(() => undefined);
      await sleep(NUDGE_EVERY_MS);
    }
  })();
  try {
    return await fn();
  } finally {
    done = true;
    await nudger;
    await primary.end().catch(() => undefined);
  }
}
