/**
 * Observation: one typed snapshot of both sides of every database, every
 * call bounded. Nothing here decides; health.ts turns snapshots into verdicts.
 *
 * Cost matters: monitor runs every 10 s for up to hundreds of databases, and
 * every connection forks a backend on a production primary. So what the
 * servers' shared views can tell is read through ONE session per side: all
 * forward slots on the slot host, all subscriptions (enabled, workers,
 * errors, copies) on the target. A database gets a session of its own only
 * when its per-database catalogs must be read (tables synchronised, DDL
 * report, publication, published tables): when the caller's options ask for
 * it (the monitor rotates through the databases so each is looked at about
 * once a minute), or when the shared views call for it (no subscription, a
 * copy running, nothing remembered yet).
 */
import type pg from 'pg';
import type { Plan } from './plan';
import { connectOptions } from './plan';
import type { DatabaseObjects } from './names';
import { objectsOf, endpointsOf, type Direction } from './direction';
import { connect, describe, type Endpoint } from '../pg/connection';
import { classify, PgFailure } from '../pg/errors';
import { readSlots, type SlotInfo } from '../pg/slots';
import { readSubscription, readSubscriptionSummaries, subscriptionTables, type SubscriptionInfo, type SubscriptionSummary } from '../pg/subscription';
import { publicationExists, publishedTables, tableKey, type TableName } from '../pg/publication';
import { ddlReportIfCaptured, type DdlReport } from '../pg/ddl-replication';
import { existingTables } from '../pg/schema';
import { serverMajorOnce } from '../pg/server';
import { settleAll } from './parallel';

export type Side<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: PgFailure };

export interface SourceView {
  /** undefined: not looked at this time. */
  readonly publication: boolean | undefined;
  readonly slot: SlotInfo | undefined;
  readonly publishedCount: number | undefined;
  /** Bytes of the published tables, while the initial copy runs. */
  readonly publishedBytes: number | undefined;
  /** The same, per table, while the initial copy runs. */
  readonly tableBytes: ReadonlyMap<string, number> | undefined;
  /**
   * Published tables without a primary key or usable replica identity: on
   * the source their UPDATE and DELETE fail while the publication exists.
   * undefined: not looked at this time.
   */
  readonly noIdentity?: readonly TableName[];
}

export interface TargetView {
  readonly subscription: SubscriptionInfo | undefined;
  readonly ddl: DdlReport | undefined;
  /** Tables on the target the subscription does not have (new ones a refresh would add, or the target's own). */
  readonly unsubscribedTables: number;
}

/** Per-database target facts from an earlier look, standing in while they are not read again. */
export interface RememberedTarget {
  readonly tablesReady: number;
  readonly tablesTotal: number;
  readonly unsubscribedTables: number;
  readonly ddl: DdlReport;
}

export interface SubscriptionDrift {
  /** Published tables the subscription does not have yet. */
  readonly notSubscribed: readonly TableName[];
  /** Of those, the ones the target has no table for (a refresh would fail). */
  readonly missingOnTarget: readonly TableName[];
  /** Tables subscribed that are no longer published. */
  readonly noLongerPublished: readonly TableName[];
}

export interface DatabaseView {
  readonly objects: DatabaseObjects;
  /** The direction observed: forward (source → target) or reverse (target → source, the way back). */
  readonly direction: Direction;
  readonly source: Side<SourceView>;
  readonly target: Side<TargetView>;
  readonly drift: SubscriptionDrift | undefined;
  /** While copying: bytes (at the source) of the tables already copied. */
  readonly copyDoneBytes?: number;
  /** Whether each side's per-database facts were read this time. */
  readonly sourceDetails: boolean;
  readonly targetDetails: boolean;
  readonly observedAt: Date;
}

export interface ObserveOptions {
  /** Read the source's per-database facts for this database now. */
  readonly sourceDetails: (o: DatabaseObjects, target: TargetView | undefined) => boolean;
  /** Read the target's per-database facts for this database now. */
  readonly targetDetails: (o: DatabaseObjects) => boolean;
  /** What an earlier look found, for databases not read again. */
  readonly remembered: (o: DatabaseObjects) => RememberedTarget | undefined;
}

/** Everything, now (status, the cutover's first look). */
export const COMPLETE: ObserveOptions = { sourceDetails: () => true, targetDetails: () => true, remembered: () => undefined };

async function attempt<T>(where: string, fn: () => Promise<T>): Promise<Side<T>> {
  try {
    return { ok: true, value: await fn() };
  } catch (err) {
    return { ok: false, error: classify(err, where) };
  }
}

const key = (ep: Endpoint) => `${ep.host}:${ep.port}`;

/** A session to `ep` through the first listed database it has, for the shared views. */
async function sharedRead<T>(plan: Plan, ep: Endpoint, fn: (c: pg.Client, major: number) => Promise<T>): Promise<Side<T>> {
  let failure: PgFailure | undefined;
  for (const o of plan.cfg.objects) {
    const r = await attempt(describe(ep, o.database), async () => {
      const c = await connect(ep, o.database, connectOptions(plan, 8_000));
      try {
        return await fn(c, await serverMajorOnce(c, key(ep)));
      } finally {
        await c.end().catch(() => undefined);
      }
    });
    if (r.ok) return r;
    failure ??= r.error;
    if (r.error.kind !== 'no-database') break;
  }
  return { ok: false, error: failure! };
}

async function readTarget(plan: Plan, c: pg.Client, objects: DatabaseObjects, d: Direction): Promise<TargetView> {
  const ep = endpointsOf(plan, d).subscriber;
  const subscription = await readSubscription(c, objectsOf(objects, d).sub, await serverMajorOnce(c, key(ep)));
  const ddl = await ddlReportIfCaptured(c);
  return { subscription, ddl, unsubscribedTables: subscription?.unsubscribedTables ?? 0 };
}

/** A target view from the shared summary and what an earlier look remembered. */
function composeTarget(summary: SubscriptionSummary, r: RememberedTarget): TargetView {
  return {
    subscription: {
      oid: summary.oid,
      name: summary.name,
      enabled: summary.enabled,
      slotName: null,
      conninfo: '',
      publications: [],
      workerPid: summary.workerPid,
      lastMsgReceiptTime: null,
      latestEndTime: null,
      tablesTotal: r.tablesTotal,
      tablesReady: r.tablesReady,
      copyBytes: summary.copyBytes,
      applyErrorCount: summary.applyErrorCount,
      syncErrorCount: summary.syncErrorCount,
      unsubscribedTables: r.unsubscribedTables,
    },
    ddl: r.ddl,
    unsubscribedTables: r.unsubscribedTables,
  };
}

async function readSourceDetails(c: pg.Client, pub: string, copying: boolean): Promise<Omit<SourceView, 'slot'>> {
  const publication = await publicationExists(c, pub);
  // The same one query counts the published tables and names those no UPDATE or DELETE can be published for.
  const count = await c.query<{ n: number; no_identity: Array<[string, string]> }>(
    `SELECT count(*)::int AS n,
            coalesce(json_agg(json_build_array(pt.schemaname, pt.tablename) ORDER BY pt.schemaname, pt.tablename)
                       FILTER (WHERE c.relreplident = 'n'
                                  OR (c.relreplident = 'd' AND NOT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary))
                                  OR (c.relreplident = 'i' AND NOT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisreplident))),
                     '[]'::json) AS no_identity
       FROM pg_publication_tables pt
       JOIN pg_namespace n ON n.nspname = pt.schemaname
       JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = pt.tablename
      WHERE pt.pubname = $1`,
    [pub],
  );
  let tableBytes: Map<string, number> | undefined;
  if (publication && copying) {
    const { rows } = await c.query<{ schemaname: string; tablename: string; b: string }>(
      `SELECT schemaname, tablename, pg_table_size(format('%I.%I', schemaname, tablename)::regclass)::text AS b
         FROM pg_publication_tables WHERE pubname = $1`,
      [pub],
    );
    tableBytes = new Map(rows.map((r) => [tableKey({ schema: r.schemaname, table: r.tablename }), Number(r.b)]));
  }
  const publishedBytes = tableBytes ? [...tableBytes.values()].reduce((a, b) => a + b, 0) : undefined;
  const noIdentity = count.rows[0]!.no_identity.map(([schema, table]) => ({ schema, table }));
  return { publication, publishedCount: count.rows[0]!.n, publishedBytes, tableBytes, noIdentity };
}

/** Published and subscribed table sets differ: which tables, and can the target take them? */
async function readDrift(source: pg.Client, target: pg.Client, pub: string, sub: SubscriptionInfo): Promise<SubscriptionDrift> {
  const [published, subscribed] = await Promise.all([publishedTables(source, pub), subscriptionTables(target, sub.oid)]);
  const subKeys = new Set(subscribed.map(tableKey));
  const pubKeys = new Set(published.map(tableKey));
  const notSubscribed = published.filter((t) => !subKeys.has(tableKey(t)));
  const present = await existingTables(target, notSubscribed);
  return {
    notSubscribed,
    missingOnTarget: notSubscribed.filter((t) => !present.has(tableKey(t))),
    noLongerPublished: subscribed.filter((t) => !pubKeys.has(tableKey(t))).map(({ schema, table }) => ({ schema, table })),
  };
}

/** A session of this observation's own (closed by it): the one the action's fence check used, or a new one. */
function open(plan: Plan, ep: Endpoint, db: string): Promise<pg.Client> {
  const opts = connectOptions(plan, 8_000);
  return plan.sessions ? plan.sessions.take(ep, db, opts) : connect(ep, db, opts);
}

export interface Shared {
  readonly slots: Side<Map<string, SlotInfo>>;
  readonly summaries: Side<Map<string, SubscriptionSummary>> | undefined;
}

async function observeWith(plan: Plan, objects: DatabaseObjects, shared: Shared, opts: ObserveOptions, d: Direction): Promise<DatabaseView> {
  const db = objects.database;
  const names = objectsOf(objects, d);
  const eps = endpointsOf(plan, d);
  const sWhere = describe(eps.slots, db);
  const tWhere = describe(eps.subscriber, db);
  const summary = shared.summaries?.ok ? shared.summaries.value.get(`${db}\0${names.sub}`) : undefined;
  const remembered = opts.remembered(objects);
  const wantTarget =
    !shared.summaries?.ok || !summary || !remembered || summary.syncWorkers > 0 || remembered.tablesReady < remembered.tablesTotal || opts.targetDetails(objects);
  let tc: Side<pg.Client> | undefined;
  let sc: Side<pg.Client> | undefined;
  try {
    let target: Side<TargetView>;
    if (shared.summaries && !shared.summaries.ok && !wantTarget) target = shared.summaries as Side<never>;
    else if (!wantTarget) target = { ok: true, value: composeTarget(summary!, remembered!) };
    else {
      tc = await attempt(tWhere, () => open(plan, eps.subscriber, db));
      const conn = tc;
      target = conn.ok ? await attempt(tWhere, () => readTarget(plan, conn.value, objects, d)) : (conn as Side<never>);
    }
    const tv = target.ok ? target.value : undefined;
    const sub = tv?.subscription;
    const copying = sub !== undefined && sub.tablesReady < sub.tablesTotal;
    const wantSource = shared.slots.ok && (opts.sourceDetails(objects, tv) || !sub || copying);
    let source: Side<SourceView>;
    if (!shared.slots.ok) {
      source = shared.slots as Side<never>;
    } else if (!wantSource) {
      source = {
        ok: true,
        value: { publication: undefined, slot: shared.slots.value.get(names.slot), publishedCount: undefined, publishedBytes: undefined, tableBytes: undefined },
      };
    } else {
      sc = await attempt(sWhere, () => open(plan, eps.slots, db));
      const conn = sc;
      const slots = shared.slots.value;
      source = conn.ok
        ? await attempt(sWhere, async () => ({ ...(await readSourceDetails(conn.value, names.pub, copying)), slot: slots.get(names.slot) }))
        : (conn as Side<never>);
    }
    let drift: SubscriptionDrift | undefined;
    const published = source.ok ? source.value.publishedCount : undefined;
    if (sub && sc?.ok && tc?.ok && published !== undefined && (published !== sub.tablesTotal || (tv?.unsubscribedTables ?? 0) > 0)) {
      const [s, t] = [sc.value, tc.value];
      const dr = await attempt(tWhere, () => readDrift(s, t, names.pub, sub));
      if (dr.ok) drift = dr.value;
    }
    // Copy progress: bytes of the tables whose copy is done, by their size on the source.
    let copyDoneBytes: number | undefined;
    const sizes = source.ok ? source.value.tableBytes : undefined;
    if (sub && sizes && tc?.ok) {
      const t = tc.value;
      const states = await attempt(tWhere, () => subscriptionTables(t, sub.oid));
      if (states.ok) copyDoneBytes = states.value.filter((x) => x.state === 'r' || x.state === 's').reduce((a, x) => a + (sizes.get(tableKey(x)) ?? 0), 0);
    }
    return { objects, direction: d, source, target, drift, copyDoneBytes, sourceDetails: wantSource, targetDetails: wantTarget, observedAt: new Date() };
  } finally {
    await Promise.all([sc?.ok && sc.value.end().catch(() => undefined), tc?.ok && tc.value.end().catch(() => undefined)]);
  }
}

/**
 * The shared views of every database, one session per side (every slot, every
 * subscription's summary); a caller may begin them early, beside other work,
 * and hand them to observeAll.
 */
export async function readShared(plan: Plan, opts: ObserveOptions = COMPLETE, d: Direction = 'forward'): Promise<Shared> {
  const eps = endpointsOf(plan, d);
  const subs = plan.cfg.objects.map((o) => objectsOf(o, d).sub);
  const slotNames = plan.cfg.objects.map((o) => objectsOf(o, d).slot);
  const everything = plan.cfg.objects.every((o) => opts.targetDetails(o));
  const [slots, summaries] = await Promise.all([
    sharedRead(plan, eps.slots, (c, major) => readSlots(c, slotNames, major)),
    // When every database is read anyway, the shared summary would add nothing.
    everything ? Promise.resolve(undefined) : sharedRead(plan, eps.subscriber, (c, major) => readSubscriptionSummaries(c, subs, major)),
  ]);
  return { slots, summaries };
}

/** Every database of the plan, in parallel (bounded), in list order; the forward direction unless told otherwise. */
export async function observeAll(
  plan: Plan,
  opts: ObserveOptions = COMPLETE,
  concurrency = 50,
  d: Direction = 'forward',
  shared: Promise<Shared> = readShared(plan, opts, d),
): Promise<DatabaseView[]> {
  const { slots, summaries } = await shared;
  const results = await settleAll(plan.cfg.objects, concurrency, (o) => observeWith(plan, o, { slots, summaries }, opts, d));
  return results.map((r, i) => {
    if (r.status === 'fulfilled') return r.value;
    const error = classify(r.reason, `database ${JSON.stringify(plan.cfg.objects[i]!.database)}`);
    return {
      objects: plan.cfg.objects[i]!,
      direction: d,
      source: { ok: false, error },
      target: { ok: false, error },
      drift: undefined,
      sourceDetails: false,
      targetDetails: false,
      observedAt: new Date(),
    };
  });
}

/** One database alone, completely (the monitor's second look). */
export async function observeOne(plan: Plan, objects: DatabaseObjects, d: Direction = 'forward'): Promise<DatabaseView> {
  const ep = endpointsOf(plan, d).slots;
  const slots = await attempt(describe(ep, objects.database), async () => {
    const c = await connect(ep, objects.database, connectOptions(plan, 8_000));
    try {
      return await readSlots(c, [objectsOf(objects, d).slot], await serverMajorOnce(c, key(ep)));
    } finally {
      await c.end().catch(() => undefined);
    }
  });
  return observeWith(plan, objects, { slots, summaries: undefined }, COMPLETE, d);
}
