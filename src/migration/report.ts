/** Writing what monitor and start learned: state files and the summary line. */
import type { Plan } from './plan';
import type { DatabaseHealth, ErrorCounts } from './health';
import type { ObserveOptions } from './observe';
import type { TableName } from '../pg/publication';
import { updateStateFile, readStateFile, type StateFields } from './state-files';
import type { Direction } from './direction';
import type { FenceCheck } from './fences';
import type { SubscriptionInfo } from '../pg/subscription';
import { describeLatest, type DdlReport } from '../pg/ddl-replication';

/** A state file's memory of the monitor, only when it was written for the same direction (a switch changes it). */
function stateOf(dir: string, token: string, d: Direction): Record<string, string> | undefined {
  const state = readStateFile(dir, token);
  return state && (state.direction ?? 'forward') === d ? state : undefined;
}

/** The least time between two full looks at a database (past 24 databases the turn comes later: LOOKS_PER_MONITOR). */
export const DETAILS_INTERVAL_MS = 60_000;
/** Monitors over which the databases due for a look are spread (a monitor runs every 10 s). */
const SPREAD = 6;
/**
 * At most this many databases get a full look per monitor, however many
 * there are: a look opens a fresh session per side, whose catalog warm-up
 * costs each server about 40 ms of CPU (measured on the rig), so what a
 * monitor costs stops growing with the databases. Past 24 databases the cycle
 * grows instead: each is looked at every ceil(n/4) monitors (100: about every
 * four minutes at a 10 s interval). The shared views (slots, workers, errors,
 * lag) are read for every database at every monitor.
 */
export const LOOKS_PER_MONITOR = 4;

/** How many databases a monitor looks at in full. */
export const lookQuota = (databases: number) => Math.min(Math.ceil(databases / SPREAD), LOOKS_PER_MONITOR);

const age = (iso: string | undefined) => {
  const t = Date.parse(iso ?? '');
  return Number.isFinite(t) ? Date.now() - t : Number.POSITIVE_INFINITY;
};

/**
 * The databases due for a full look this monitor (details on both sides and
 * the write fences): those not picked for a minute in this direction, the
 * oldest first, at most a sixth of them (so a hundred databases never all
 * connect at once). One rotation for details and fences, so that a
 * database's fence check and its details share the monitor's one session per
 * side. It turns on its own stamp (recordLooks), written when a database is
 * picked, not when a look succeeds: a database whose look keeps failing takes
 * its turn like the others and never holds up theirs. (At most
 * LOOKS_PER_MONITOR: with many databases each turn comes less often.)
 */
export function dueForLook(plan: Plan, d: Direction = 'forward'): ReadonlySet<string> {
  const objects = plan.cfg.objects;
  const quota = lookQuota(objects.length);
  return new Set(
    objects
      .map((o) => {
        const state = readStateFile(plan.stateDir, o.token);
        return { o, a: state?.looked_direction === d ? age(state.looked_at) : Number.POSITIVE_INFINITY };
      })
      .filter((x) => x.a >= DETAILS_INTERVAL_MS)
      .sort((x, y) => y.a - x.a)
      .slice(0, quota)
      .map((x) => x.o.token),
  );
}

/** No write fence goes unchecked for longer than this (and a monitor's interval), however many databases there are. */
export const FENCE_OVERDUE_MS = 90_000;

/** A monitor's interval when the action does not say (a probe, a command run by hand): the configured default. */
const everyMs = (intervalMs: number) => intervalMs || 10_000;

/** Fences checked beside the full looks per monitor: enough to keep every one within FENCE_OVERDUE_MS at this interval. */
export const fenceQuota = (databases: number, intervalMs: number) =>
  Math.max(lookQuota(databases), Math.ceil((databases * everyMs(intervalMs)) / FENCE_OVERDUE_MS));

/**
 * The databases whose write fences this monitor checks (and stamps): all of
 * them on both clusters right after the phase changed or a rollback could
 * not finish; else the ones due for a full look on both clusters (over the
 * look's sessions), and beside them the oldest others, fenceQuota of them,
 * once so old that a full round of quotas still ends within the bound, on
 * the cluster that must refuse writes (never two writable clusters; the
 * other side's fence, whose fault production sees at once, is checked at its
 * full look). That is the safety backstop: its bound (90 s and one interval)
 * does not grow with the databases as the details' turn does; 100 databases
 * at a 10 s interval: 12 fences beside the 4 looks.
 */
export function fencesDue(plan: Plan, phase: string, all: boolean, lookDue: ReadonlySet<string>, intervalMs: number): FenceCheck[] {
  const now = Date.now();
  const n = plan.cfg.objects.length;
  const info = plan.cfg.objects.map((o) => {
    const s = readStateFile(plan.stateDir, o.token);
    return { o, phaseChanged: s?.fence_checked_phase !== phase, age: now - (Date.parse(s?.fence_checked_at ?? '') || 0) };
  });
  const quota = fenceQuota(n, intervalMs);
  // Old enough to be checked: so late that a full round of quotas still ends within the bound.
  const minAge = Math.max(0, FENCE_OVERDUE_MS - Math.ceil(n / quota) * everyMs(intervalMs));
  const looked = info.filter((x) => lookDue.has(x.o.token));
  const older = info
    .filter((x) => !lookDue.has(x.o.token) && x.age >= minAge)
    .sort((a, b) => b.age - a.age)
    .slice(0, quota);
  const everything = all || info.some((x) => x.phaseChanged);
  const due = everything ? info : [...looked, ...older];
  for (const x of due) {
    try {
      updateStateFile(plan.stateDir, x.o.token, { fence_checked_at: new Date(now).toISOString(), fence_checked_phase: phase });
    } catch (err) {
      plan.log.warn(`cannot update the state file of ${JSON.stringify(x.o.database)}: ${(err as Error).message}`);
    }
  }
  const full = new Set(everything ? info.map((x) => x.o.token) : lookDue);
  return due.map((x) => ({ o: x.o, onlyFenced: !full.has(x.o.token) }));
}

/** Stamps the databases picked for this monitor's full look (see dueForLook). */
export function recordLooks(plan: Plan, due: ReadonlySet<string>, d: Direction): void {
  const at = new Date().toISOString();
  for (const o of plan.cfg.objects) {
    if (!due.has(o.token)) continue;
    try {
      updateStateFile(plan.stateDir, o.token, { looked_at: at, looked_direction: d });
    } catch (err) {
      plan.log.warn(`cannot update the state file of ${JSON.stringify(o.database)}: ${(err as Error).message}`);
    }
  }
}

/**
 * The monitor's observation plan: the per-database details of the
 * databases due (dueForLook); at once whenever the shared views or the
 * target's tables call for it (see observe.ts).
 */
export function leanObservation(plan: Plan, d: Direction = 'forward', due: ReadonlySet<string> = dueForLook(plan, d)): ObserveOptions {
  const readStateFile = (dir: string, token: string) => stateOf(dir, token, d);
  const targetDue = due;
  const sourceDue = due;
  return {
    targetDetails: (o) => targetDue.has(o.token),
    sourceDetails: (o, target) => {
      if (sourceDue.has(o.token)) return true;
      const state = readStateFile(plan.stateDir, o.token);
      return (target?.unsubscribedTables ?? 0) > 0 && String(target?.unsubscribedTables) !== state?.unsubscribed_checked;
    },
    remembered: (o) => {
      const state = readStateFile(plan.stateDir, o.token);
      const ready = Number(state?.tables_synced);
      const total = Number(state?.tables_total);
      if (!state?.target_checked_at || !Number.isFinite(ready) || !Number.isFinite(total)) return undefined;
      const ddl = Number(state.ddl_not_replayed ?? 0);
      return {
        tablesReady: ready,
        tablesTotal: total,
        unsubscribedTables: Number(state.unsubscribed_tables ?? 0) || 0,
        ddl: {
          notReplayed: Number.isFinite(ddl) ? ddl : 0,
          latest: state.ddl_latest ? { id: '', command: state.ddl_latest, reason: '' } : undefined,
        },
      };
    },
  };
}

/**
 * State-file fields that make the next monitor forget what earlier looks
 * found about a database's details (start has just created or changed what
 * they describe: a remembered "publication missing" would make the first
 * monitor after a successful start report the database broken). The next
 * monitor reads them again when their turn comes, and trusts nothing old meanwhile.
 */
export const FORGET_DETAILS: StateFields = {
  source_checked_at: undefined,
  target_checked_at: undefined,
  unsubscribed_checked: undefined,
  publication: undefined,
  missing_on_target: undefined,
  no_identity: undefined,
};

/**
 * What a full look at a database's target side (forward) found, as the
 * monitor's rotation remembers it: start records it for the databases it
 * has just read, so that the first monitor after it need not read them again.
 */
export function recordTargetLook(plan: Plan, token: string, sub: SubscriptionInfo, ddl: DdlReport): void {
  const turned = (readStateFile(plan.stateDir, token)?.direction ?? 'forward') !== 'forward';
  updateStateFile(plan.stateDir, token, {
    // Counters last recorded for the way back's subscription say nothing of this one: the first monitor starts them afresh.
    ...(turned ? { apply_errors: undefined, sync_errors: undefined } : {}),
    direction: 'forward',
    target_checked_at: new Date().toISOString(),
    tables_synced: sub.tablesReady,
    tables_total: sub.tablesTotal,
    unsubscribed_tables: sub.unsubscribedTables,
    ddl_not_replayed: ddl.notReplayed,
    ddl_latest: describeLatest(ddl) ?? '',
  });
}

export function writeHealthStateFiles(plan: Plan, phase: string, healths: readonly DatabaseHealth[]): void {
  for (const h of healths) {
    try {
      const direction = h.direction ?? 'forward';
      // After a switch, what was learned of the other direction's objects stands for nothing here.
      const turned = (readStateFile(plan.stateDir, h.token)?.direction ?? 'forward') !== direction;
      updateStateFile(plan.stateDir, h.token, {
        ...(turned ? FORGET_DETAILS : {}),
        direction,
        ...(h.targetChecked
          ? { target_checked_at: new Date().toISOString(), unsubscribed_tables: h.unsubscribedTables, ddl_latest: h.ddlLatest ?? '' }
          : {}),
        ...(h.sourceChecked
          ? {
              source_checked_at: new Date().toISOString(),
              unsubscribed_checked: h.unsubscribedTables,
              publication: h.publication,
              missing_on_target: JSON.stringify(h.missingOnTarget.map((t) => [t.schema, t.table])),
              no_identity: JSON.stringify(h.noIdentity.map((t) => [t.schema, t.table])),
            }
          : {}),
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
export function previousErrors(plan: Plan, token: string, d: Direction = 'forward'): ErrorCounts | undefined {
  const state = stateOf(plan.stateDir, token, d);
  if (!state || state.apply_errors === undefined || state.sync_errors === undefined) return undefined;
  const apply = Number(state.apply_errors);
  const sync = Number(state.sync_errors);
  return Number.isFinite(apply) && Number.isFinite(sync) ? { apply, sync } : undefined;
}

/** What the last look at a database's source details found (see leanObservation). */
export function rememberedSource(plan: Plan, token: string, d: Direction = 'forward'): { publication?: boolean; missingOnTarget?: TableName[]; noIdentity?: TableName[] } {
  const state = stateOf(plan.stateDir, token, d);
  if (!state) return {};
  return {
    publication: state.publication === 'false' ? false : state.publication === 'true' ? true : undefined,
    missingOnTarget: tableList(state.missing_on_target),
    noIdentity: tableList(state.no_identity),
  };
}

/** A table list a state file keeps as JSON [schema, table] pairs; undefined when unreadable. */
function tableList(json: string | undefined): TableName[] | undefined {
  try {
    const pairs = JSON.parse(json ?? '[]') as Array<[string, string]>;
    return pairs.map(([schema, table]) => ({ schema, table }));
  } catch {
    return undefined;
  }
}
