/**
 * Observation: one typed snapshot of both sides of every database, read with
 * one connection per database per side, all databases in parallel, every
 * call bounded. Nothing here decides; health.ts turns snapshots into verdicts.
 */
import type pg from 'pg';
import type { Plan } from './plan';
import { connectOptions } from './plan';
import type { DatabaseObjects } from './names';
import { connect, describe } from '../pg/connection';
import { classify, PgFailure, sqlState, SQLSTATE } from '../pg/errors';
import { readSlot, type SlotInfo } from '../pg/slots';
import { readSubscription, subscriptionTables, type SubscriptionInfo } from '../pg/subscription';
import { publicationExists, publishedTables, tableKey, type TableName } from '../pg/publication';
import { ddlReport, type DdlReport } from '../pg/ddl-replication';
import { existingTables } from '../pg/schema';
import { serverMajor } from '../pg/server';
import { settleAll } from './parallel';

export type Side<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: PgFailure };

export interface SourceView {
  readonly publication: boolean;
  readonly slot: SlotInfo | undefined;
  readonly publishedCount: number;
  /** Bytes of the published tables, while the initial copy runs. */
  readonly publishedBytes: number | undefined;
}

export interface TargetView {
  readonly subscription: SubscriptionInfo | undefined;
  readonly ddl: DdlReport | undefined;
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
  readonly source: Side<SourceView>;
  readonly target: Side<TargetView>;
  readonly drift: SubscriptionDrift | undefined;
  readonly observedAt: Date;
}

async function attempt<T>(where: string, fn: () => Promise<T>): Promise<Side<T>> {
  try {
    return { ok: true, value: await fn() };
  } catch (err) {
    return { ok: false, error: classify(err, where) };
  }
}

async function readSource(c: pg.Client, objects: DatabaseObjects, wantBytes: () => Promise<boolean>): Promise<SourceView> {
  const major = await serverMajor(c);
  // One session runs one statement at a time.
  const publication = await publicationExists(c, objects.forwardPub);
  const slot = await readSlot(c, objects.forwardSlot, major);
  const count = await c.query<{ n: number }>('SELECT count(*)::int AS n FROM pg_publication_tables WHERE pubname = $1', [objects.forwardPub]);
  let publishedBytes: number | undefined;
  if (publication && (await wantBytes())) {
    const { rows } = await c.query<{ b: string }>(
      `SELECT coalesce(sum(pg_table_size(format('%I.%I', schemaname, tablename)::regclass)), 0)::text AS b
         FROM pg_publication_tables WHERE pubname = $1`,
      [objects.forwardPub],
    );
    publishedBytes = Number(rows[0]!.b);
  }
  return { publication, slot, publishedCount: count.rows[0]!.n, publishedBytes };
}

async function readTarget(c: pg.Client, objects: DatabaseObjects): Promise<TargetView> {
  const major = await serverMajor(c);
  const subscription = await readSubscription(c, objects.forwardSub, major);
  let ddl: DdlReport | undefined;
  try {
    ddl = await ddlReport(c);
  } catch (err) {
    if (![SQLSTATE.UNDEFINED_TABLE, SQLSTATE.UNDEFINED_FUNCTION, '3F000'].includes(sqlState(err) as never)) throw err;
  }
  return { subscription, ddl };
}

/** Published and subscribed table sets differ: which tables, and can the target take them? */
async function readDrift(source: pg.Client, target: pg.Client, objects: DatabaseObjects, sub: SubscriptionInfo): Promise<SubscriptionDrift> {
  const [published, subscribed] = await Promise.all([publishedTables(source, objects.forwardPub), subscriptionTables(target, sub.oid)]);
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

export async function observeDatabase(plan: Plan, objects: DatabaseObjects): Promise<DatabaseView> {
  const db = objects.database;
  const opts = connectOptions(plan, 8_000);
  const sWhere = describe(plan.slotHost, db);
  const tWhere = describe(plan.targetPrimary, db);
  const [sc, tc] = await Promise.all([
    attempt(sWhere, () => connect(plan.slotHost, db, opts)),
    attempt(tWhere, () => connect(plan.targetPrimary, db, opts)),
  ]);
  try {
    let resolveCopying!: (copying: boolean) => void;
    const copying = new Promise<boolean>((r) => (resolveCopying = r));
    const targetRead = tc.ok ? attempt(tWhere, () => readTarget(tc.value, objects)) : Promise.resolve(tc as Side<TargetView>);
    void targetRead.then((t) => {
      const sub = t.ok ? t.value.subscription : undefined;
      resolveCopying(sub !== undefined && sub.tablesReady < sub.tablesTotal);
    });
    const sourceRead = sc.ok ? attempt(sWhere, () => readSource(sc.value, objects, () => copying)) : Promise.resolve(sc as Side<SourceView>);
    const [source, target] = await Promise.all([sourceRead, targetRead]);
    let drift: SubscriptionDrift | undefined;
    const sub = target.ok ? target.value.subscription : undefined;
    if (source.ok && sub && sc.ok && tc.ok && source.value.publishedCount !== sub.tablesTotal) {
      const d = await attempt(tWhere, () => readDrift(sc.value, tc.value, objects, sub));
      if (d.ok) drift = d.value;
    }
    return { objects, source, target, drift, observedAt: new Date() };
  } finally {
    await Promise.all([sc.ok && sc.value.end().catch(() => undefined), tc.ok && tc.value.end().catch(() => undefined)]);
  }
}

/** Every database of the plan, in parallel (bounded), in list order. */
export async function observeAll(plan: Plan, concurrency = 50): Promise<DatabaseView[]> {
  const results = await settleAll(plan.cfg.objects, concurrency, (o) => observeDatabase(plan, o));
  return results.map((r, i) => {
    if (r.status === 'fulfilled') return r.value;
    const error = classify(r.reason, `database ${JSON.stringify(plan.cfg.objects[i]!.database)}`);
    return { objects: plan.cfg.objects[i]!, source: { ok: false, error }, target: { ok: false, error }, drift: undefined, observedAt: new Date() };
  });
}
