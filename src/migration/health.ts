/**
 * Pure decisions over observations: the state of each database, and the
 * monitor's exit code and reason. Every reason names the database and what
 * was seen, never a guess.
 */
import type { DatabaseView } from './observe';
import type { TableName } from '../pg/publication';
import { tableKey } from '../pg/publication';
import { OCF } from '../ocf/exit-codes';
import { objectsOf, subscriberOf, publisherOf, type Direction } from './direction';
import { describeLatest } from '../pg/ddl-replication';

export type DatabaseState = 'streaming' | 'copying' | 'paused' | 'broken';

export interface DatabaseHealth {
  readonly database: string;
  readonly token: string;
  /** The direction assessed (forward, or reverse in phase reverse). */
  readonly direction?: Direction;
  readonly state: DatabaseState;
  /** What is wrong, when state is broken: one line naming the object and what was seen. */
  readonly problem: string | undefined;
  readonly lagBytes: number | null;
  readonly lagSeconds: number | null;
  readonly tablesReady: number | null;
  readonly tablesTotal: number | null;
  readonly copyBytes: number | null;
  readonly copyTotalBytes: number | null;
  /** Of those, the bytes of tables whose copy is done. */
  readonly copyDoneBytes: number | null;
  readonly ddlNotReplayed: number;
  readonly ddlLatest: string | undefined;
  /** The subscription lacks published tables that the target has: refresh it. */
  readonly needsRefresh: boolean;
  /** Published tables the subscription lacks and the target has no table for. */
  readonly missingOnTarget: readonly TableName[];
  readonly applyErrors: number;
  readonly syncErrors: number;
  /** Table copies failed while the initial copy runs (since the last monitor, when it recorded the count). */
  readonly copyFailures: number;
  /** The source's per-database facts were read in this observation. */
  readonly sourceChecked: boolean;
  /** The target's per-database facts were read in this observation (else remembered ones stand in). */
  readonly targetChecked: boolean;
  /** Tables on the target that the subscription does not have. */
  readonly unsubscribedTables: number;
  /** Whether the source has the publication, when it was looked at this time. */
  readonly publication: boolean | undefined;
  /**
   * Published tables without a primary key or replica identity (created
   * after start): their UPDATE and DELETE fail on the source. From this
   * look, or the last one that read the source's details.
   */
  readonly noIdentity: readonly TableName[];
}

export interface ErrorCounts {
  readonly apply: number;
  readonly sync: number;
}

export interface AssessOptions {
  /** The forward subscriptions are expected to run (false while a cutover has disabled them). */
  readonly expectEnabled: boolean;
  readonly lagThreshold: number;
  /** The subscription's error counters as the last monitor saw them, when it recorded them. */
  readonly previousErrors?: ErrorCounts;
  /** What the last look at the source's details found, used while they are not read again. */
  readonly remembered?: { readonly publication?: boolean; readonly missingOnTarget?: readonly TableName[]; readonly noIdentity?: readonly TableName[] };
}

export function assessDatabase(view: DatabaseView, opts: AssessOptions): DatabaseHealth {
  const { objects } = view;
  const d = view.direction ?? 'forward';
  const names = objectsOf(objects, d);
  const [subSide, pubSide] = [subscriberOf(d), publisherOf(d)];
  const db = JSON.stringify(objects.database);
  const src = view.source.ok ? view.source.value : undefined;
  const tgt = view.target.ok ? view.target.value : undefined;
  const sub = tgt?.subscription;
  const slot = src?.slot;
  const lagBytes = slot?.lagBytes ?? null;
  const lagSeconds = slot?.replayLagSeconds ?? (lagBytes !== null && lagBytes <= opts.lagThreshold ? 0 : null);
  const drift = view.drift;
  const base = {
    database: objects.database,
    token: objects.token,
    direction: d,
    lagBytes,
    lagSeconds,
    tablesReady: sub?.tablesReady ?? null,
    tablesTotal: sub?.tablesTotal ?? null,
    copyBytes: sub ? sub.copyBytes : null,
    copyTotalBytes: src?.publishedBytes ?? null,
    copyDoneBytes: view.copyDoneBytes ?? null,
    ddlNotReplayed: tgt?.ddl?.notReplayed ?? 0,
    ddlLatest: tgt?.ddl ? describeLatest(tgt.ddl) : undefined,
    needsRefresh: drift !== undefined && drift.missingOnTarget.length === 0 && (drift.notSubscribed.length > 0 || drift.noLongerPublished.length > 0),
    missingOnTarget: drift?.missingOnTarget ?? (view.sourceDetails ? [] : (opts.remembered?.missingOnTarget ?? [])),
    applyErrors: sub?.applyErrorCount ?? 0,
    syncErrors: sub?.syncErrorCount ?? 0,
    copyFailures: 0,
    sourceChecked: view.sourceDetails && view.source.ok,
    targetChecked: view.targetDetails && view.target.ok,
    unsubscribedTables: tgt?.unsubscribedTables ?? 0,
    publication: src?.publication,
    noIdentity: src?.noIdentity ?? (view.sourceDetails ? [] : (opts.remembered?.noIdentity ?? [])),
  };
  const broken = (problem: string): DatabaseHealth => ({ ...base, state: 'broken', problem: `${db}: ${problem}` });

  // A failure to reach a side already names the server and the database.
  if (!view.source.ok) return { ...base, state: 'broken', problem: view.source.error.message };
  if (!view.target.ok) return { ...base, state: 'broken', problem: view.target.error.message };
  if (!sub) return broken(`subscription ${names.sub} is missing on the ${subSide}`);
  if ((src!.publication ?? opts.remembered?.publication) === false) return broken(`publication ${names.pub} is missing on the ${pubSide}`);
  if (!slot) return broken(`replication slot ${names.slot} is missing on the ${pubSide} (slot lost)`);
  if (slot.invalidated) return broken(`replication slot ${names.slot} was invalidated (${slot.invalidated})`);
  if (!sub.enabled) {
    if (opts.expectEnabled) return broken(`subscription ${names.sub} is disabled`);
    return { ...base, state: 'paused', problem: undefined };
  }
  // Counters only grow; a smaller value means the statistics were reset.
  const grew = (now: number, before: number | undefined) => (before === undefined || now < before ? 0 : now - before);
  const prev = opts.previousErrors;
  if (sub.workerPid === null) {
    const errors = base.applyErrors + base.syncErrors > 0 ? ` (${base.applyErrors + base.syncErrors} apply/sync errors; see the ${subSide}'s log)` : '';
    return broken(`apply worker of ${names.sub} is not running${errors}`);
  }
  const newApplyErrors = grew(base.applyErrors, prev?.apply);
  if (newApplyErrors > 0) {
    return broken(`apply worker of ${names.sub} failed ${newApplyErrors} time(s) since the last monitor; see the ${subSide}'s PostgreSQL log`);
  }
  if (sub.tablesTotal > 0 && sub.tablesReady < sub.tablesTotal) {
    const copyFailures = prev ? grew(base.syncErrors, prev.sync) : base.syncErrors;
    return { ...base, state: 'copying', problem: undefined, copyFailures };
  }
  return { ...base, state: 'streaming', problem: undefined };
}

export interface Verdict {
  readonly code: number;
  readonly reason: string | undefined;
}

export function monitorVerdict(healths: readonly DatabaseHealth[]): Verdict {
  const broken = healths.filter((h) => h.state === 'broken');
  if (broken.length > 0) {
    const first = broken[0]!.problem!;
    const reason = broken.length === 1 ? first : `${broken.length} of ${healths.length} databases broken; ${first}`;
    return { code: OCF.ERR_GENERIC, reason };
  }
  const copy = healths.find((h) => h.copyFailures > 0);
  if (copy) {
    return {
      code: OCF.DEGRADED,
      reason: `${JSON.stringify(copy.database)}: initial table copy failing (${copy.copyFailures} error(s)); see the ${subscriberOf(copy.direction ?? 'forward')}'s PostgreSQL log`,
    };
  }
  // Production itself fails here (UPDATE and DELETE on the source): named before any replication trouble.
  const noIdentity = healths.find((h) => h.noIdentity.length > 0);
  if (noIdentity) return { code: OCF.DEGRADED, reason: noIdentityProblem(noIdentity) };
  // A DDL statement not replayed usually explains a missing table: name it first.
  const ddl = healths.find((h) => h.ddlNotReplayed > 0);
  if (ddl) {
    return {
      code: OCF.DEGRADED,
      reason: `${JSON.stringify(ddl.database)}: ${ddl.ddlNotReplayed} DDL statement(s) not replayed on the ${subscriberOf(ddl.direction ?? 'forward')} (latest ${ddl.ddlLatest ?? ''})`,
    };
  }
  const missing = healths.find((h) => h.missingOnTarget.length > 0);
  if (missing) {
    return {
      code: OCF.DEGRADED,
      reason: `${JSON.stringify(missing.database)}: new table(s) missing on the ${subscriberOf(missing.direction ?? 'forward')}, not replicated: ${missing.missingOnTarget.slice(0, 3).map(tableKey).join(', ')}`,
    };
  }
  return { code: OCF.SUCCESS, reason: undefined };
}

/** One line for a database whose published tables lack a replica identity: what fails, where, the fix. */
export function noIdentityProblem(h: Pick<DatabaseHealth, 'database' | 'noIdentity'>): string {
  const tables = h.noIdentity.slice(0, 3).map(tableKey).join(', ') + (h.noIdentity.length > 3 ? ` (+${h.noIdentity.length - 3} more)` : '');
  return `${JSON.stringify(h.database)}: UPDATE/DELETE fail on the source for ${tables} (no primary key or replica identity); add a primary key or REPLICA IDENTITY FULL`;
}

export function formatBytes(n: number | null): string {
  if (n === null) return 'unknown';
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(1)} ${units[i]}`;
}

/** The monitor's one summary line. */
export function summaryLine(healths: readonly DatabaseHealth[]): string {
  const count = (s: DatabaseState) => healths.filter((h) => h.state === s).length;
  const parts = (['streaming', 'copying', 'paused', 'broken'] as const).filter((s) => count(s) > 0).map((s) => `${count(s)} ${s}`);
  const worst = healths.reduce<DatabaseHealth | undefined>((w, h) => ((h.lagBytes ?? -1) > (w?.lagBytes ?? -1) ? h : w), undefined);
  const copying = healths.filter((h) => h.state === 'copying');
  const copy =
    copying.length > 0
      ? `; copy: tables ${copying.reduce((a, h) => a + (h.tablesReady ?? 0), 0)}/${copying.reduce((a, h) => a + (h.tablesTotal ?? 0), 0)}, ${formatBytes(copying.reduce((a, h) => a + (h.copyBytes ?? 0), 0))} in flight`
      : '';
  const ddl = healths.reduce((a, h) => a + h.ddlNotReplayed, 0);
  return (
    `${healths.length} database(s): ${parts.join(', ')}` +
    (worst ? `; worst lag ${formatBytes(worst.lagBytes)} (${JSON.stringify(worst.database)})` : '') +
    copy +
    (ddl > 0 ? `; ${ddl} DDL statement(s) not replayed` : '')
  );
}

/** How far the initial copy of a database is, 0..1, when it can be told. */
export function copyFraction(h: Pick<DatabaseHealth, 'state' | 'copyBytes' | 'copyDoneBytes' | 'copyTotalBytes' | 'tablesReady' | 'tablesTotal'>): number | null {
  if (h.state !== 'copying') return h.tablesTotal === null ? null : 1;
  if (h.copyTotalBytes && h.copyTotalBytes > 0 && h.copyDoneBytes !== null) {
    return Math.min(1, (h.copyDoneBytes + (h.copyBytes ?? 0)) / h.copyTotalBytes);
  }
  return h.tablesTotal ? (h.tablesReady ?? 0) / h.tablesTotal : null;
}
