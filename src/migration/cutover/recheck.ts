/**
 * Step 1 of a switch: the database list is the one the migration started
 * with, and the direction to be drained is ready in every database —
 * subscription enabled with its worker running, every published table
 * subscribed and synchronised, no DDL left unreplayed, lag under
 * lag_threshold — waited for (tables copied, lag caught up) up to
 * sync_timeout. Structural problems stop the switch at once. No prepared
 * transaction may be open on the side about to be fenced.
 */
import type pg from 'pg';
import type { CutoverContext } from './context';
import { CutoverAbort } from './context';
import type { DatabaseObjects } from '../names';
import { KEY, parseBaseline, diffBaseline } from '../cib-state';
import { objectsOf, publisherOf, subscriberOf } from '../direction';
import { sleep } from '../parallel';
import { readSubscription, refreshSubscription, subscriptionTables, setSubscriptionCommit } from '../../pg/subscription';
import { publishedTables, tableKey } from '../../pg/publication';
import { readSlots } from '../../pg/slots';
import { ddlReport } from '../../pg/ddl-replication';
import { existingTables } from '../../pg/schema';
import { serverMajor } from '../../pg/server';
import { preparedTransactions, fenceState } from '../../pg/fence';
import { sqlState } from '../../pg/errors';
import { lsnToBigInt } from '../../pg/lsn';

/** Seen under lag_threshold within this long counts as caught up (WAL is shared: one look rarely finds every slot low at once). */
const RECENT_MS = 2_000;
/**
 * Under a steady write load the lag in bytes never falls under
 * lag_threshold (measured: 10 databases at 100 writes/s each stayed at
 * ~20 KB for 300 s), though the subscriber keeps up: a database also counts
 * as caught up when its slot has confirmed every position the publisher had
 * this long before (what is left after the fence then drains in about as long).
 */
const KEEP_UP_MS = 500;
/** A position older than this says too little (a burst written since could be far behind): bytes decide then. */
const KEEP_UP_MAX_AGE_MS = 3_000;

export async function recheck(ctx: CutoverContext): Promise<void> {
  checkBaseline(ctx, await ctx.plan.state.readAll());
  const { plan, move } = ctx;
  const drain = move.drain;
  const caughtUpAt = new Map<string, number>();
  const until = Date.now() + plan.cfg.sync_timeout * 1000;
  /** The publisher's WAL position at each look, newest last (for KEEP_UP_MS). */
  const positions: Array<{ at: number; lsn: bigint }> = [];
  let lastReport = 0;
  for (;;) {
    if (ctx.stopRequested) throw new CutoverAbort('a stop of the resource interrupted the switch');
    const waiting: string[] = [];
    const { lag, confirmed, walLsn } = await drainLag(ctx);
    const now = Date.now();
    positions.push({ at: now, lsn: walLsn });
    while (positions.length > 1 && positions[1]!.at <= now - KEEP_UP_MS) positions.shift();
    const age = now - positions[0]!.at;
    const before = age >= KEEP_UP_MS && age <= KEEP_UP_MAX_AGE_MS ? positions[0]!.lsn : undefined;
    await ctx.eachDatabase('checking readiness', async (o) => {
      const why = await notReady(ctx, o);
      const db = JSON.stringify(o.database);
      const keepsUp = before !== undefined && (confirmed.get(o.database) ?? -1n) >= before;
      if (why) waiting.push(`${db} ${why}`);
      else if ((lag.get(o.database) ?? Number.POSITIVE_INFINITY) <= plan.cfg.lag_threshold || keepsUp) caughtUpAt.set(o.database, Date.now());
      else if (Date.now() - (caughtUpAt.get(o.database) ?? 0) > RECENT_MS) waiting.push(`${db} lags ${lag.get(o.database) ?? '?'} bytes`);
    });
    if (waiting.length === 0) break;
    if (Date.now() > until) throw new CutoverAbort(`not ready within sync_timeout=${plan.cfg.sync_timeout}s: ${waiting.join(', ')}`);
    if (Date.now() - lastReport > 5_000) {
      lastReport = Date.now();
      ctx.log.info(`${move.kind}: waiting until every database is ready (${drain} replication, lag under lag_threshold=${plan.cfg.lag_threshold}): ${waiting.join(', ')}`);
    }
    await sleep(200);
  }
  // A prepared transaction keeps its locks and could commit on the fenced side later.
  const first = ctx.dbs[0]!;
  const prepared = await preparedTransactions(await ctx.sessions.get(first, move.from), plan.cfg.databaseList);
  if (prepared.length > 0) {
    const p = prepared[0]!;
    throw new CutoverAbort(
      `not ready: prepared transaction ${JSON.stringify(p.gid)} is open in ${JSON.stringify(p.database)} on the ${move.from}; COMMIT PREPARED or ROLLBACK PREPARED it first`,
    );
  }
  // Both fences as the phase says: the old side open, the new side fenced.
  await ctx.eachDatabase('checking the fences', async (o) => {
    for (const [side, want] of [[move.from, false], [move.to, true]] as const) {
      const state = await fenceState(await ctx.sessions.get(o, side));
      if (!state) throw new CutoverAbort(`${JSON.stringify(o.database)}: the write fence is not installed on the ${side}; restart the resource (start installs it)`);
      if (state.fenced !== want) {
        throw new CutoverAbort(`${JSON.stringify(o.database)}: the ${side} is ${state.fenced ? 'fenced' : 'not fenced'}, expected the opposite before a ${move.kind}; see pgtwin-migrate status`);
      }
    }
  });
  // A subscription of the old side's own keeps applying past the fence (its
  // apply worker is a replica session): what it applies after the final
  // proof would stay on the old side alone.
  await ctx.eachDatabase('looking for other subscriptions', async (o) => {
    const { rows } = await (await ctx.sessions.get(o, move.from)).query<{ subname: string }>(
      `SELECT subname FROM pg_catalog.pg_subscription
        WHERE subdbid = (SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database())
          AND subenabled AND subname <> ALL($1::text[]) ORDER BY 1`,
      [[o.forwardSub, o.reverseSub]],
    );
    if (rows.length > 0) {
      throw new CutoverAbort(
        `not ready: ${JSON.stringify(o.database)} on the ${move.from} has subscription ${rows.map((r) => JSON.stringify(r.subname)).join(', ')} of its own: what it applies after the fence would never reach the ${move.to}; disable it (ALTER SUBSCRIPTION … DISABLE) or move it to the ${move.to} first`,
      );
    }
  });
  // Open every session now: the read-only window should not pay for it.
  // The drained apply workers flush each transaction from here on: with their
  // default (asynchronous commit) a slot confirms the fence position only once
  // the WAL writer has flushed the last one, up to wal_writer_delay (200 ms)
  // inside the read-only window. A rollback sets them back (reenableDrain).
  await ctx.eachDatabase('connecting', async (o) => {
    const [source, target] = await Promise.all([ctx.sessions.get(o, 'source'), ctx.sessions.get(o, 'target'), ctx.sessions.slots(o, drain)]);
    await setSubscriptionCommit(subscriberOf(drain) === 'source' ? source : target, objectsOf(o, drain).sub, 'local');
  });
}

function checkBaseline(ctx: CutoverContext, cib: ReadonlyMap<string, string>): void {
  const recorded = parseBaseline(cib.get(KEY.databases));
  if (!recorded) return;
  const d = diffBaseline(recorded, ctx.plan.cfg.databaseList);
  if (d.added.length + d.removed.length === 0) return;
  ctx.log.err('Database list changed during migration!');
  ctx.log.err(`Expected: ${recorded.join(',')}`);
  ctx.log.err(`Current: ${ctx.plan.cfg.databaseList.join(',')}`);
  const parts = [d.added.length ? `added ${d.added.join(',')}` : '', d.removed.length ? `removed ${d.removed.join(',')}` : ''].filter(Boolean);
  throw new CutoverAbort(`Database list changed during migration (${parts.join('; ')}); expected ${recorded.join(',')}`);
}

/** Bytes each database's drained slot has not confirmed (publisher-side lag), one query for all. */
async function drainLag(ctx: CutoverContext): Promise<{ lag: Map<string, number>; confirmed: Map<string, bigint>; walLsn: bigint }> {
  const first = ctx.dbs[0]!;
  const c = await ctx.sessions.slots(first, ctx.move.drain);
  const names = ctx.dbs.map((o) => objectsOf(o, ctx.move.drain).slot);
  const slots = await readSlots(c, names, await serverMajor(c));
  const out = new Map<string, number>();
  const confirmed = new Map<string, bigint>();
  let walLsn = 0n;
  for (const o of ctx.dbs) {
    const s = slots.get(objectsOf(o, ctx.move.drain).slot);
    if (!s) throw new CutoverAbort(`${JSON.stringify(o.database)}: replication slot ${objectsOf(o, ctx.move.drain).slot} is missing; see pgtwin-migrate status`);
    if (s.invalidated) throw new CutoverAbort(`${JSON.stringify(o.database)}: replication slot ${s.name} was invalidated (${s.invalidated})`);
    if (s.lagBytes !== null) out.set(o.database, s.lagBytes);
    if (s.confirmedFlushLsn) confirmed.set(o.database, lsnToBigInt(s.confirmedFlushLsn));
    walLsn = lsnToBigInt(s.walLsn);
  }
  return { lag: out, confirmed, walLsn };
}

/**
 * Why one database is not ready yet (undefined: ready as far as tables and
 * workers go). Structural problems throw.
 */
async function notReady(ctx: CutoverContext, o: DatabaseObjects): Promise<string | undefined> {
  const drain = objectsOf(o, ctx.move.drain);
  const db = JSON.stringify(o.database);
  const sub = await ctx.sessions.get(o, subscriberOf(ctx.move.drain));
  const pub = await ctx.sessions.get(o, publisherOf(ctx.move.drain));
  const info = await readSubscription(sub, drain.sub, await serverMajor(sub));
  if (!info) throw new CutoverAbort(`not ready: ${db}: subscription ${drain.sub} is missing on the ${subscriberOf(ctx.move.drain)}`);
  if (!info.enabled) throw new CutoverAbort(`not ready: ${db}: subscription ${drain.sub} is disabled`);
  const ddl = await ddlReport(sub).catch((err: unknown) => {
    if (['42P01', '42883', '3F000'].includes(sqlState(err) ?? '')) return undefined;
    throw err;
  });
  if (ddl && ddl.notReplayed > 0) {
    throw new CutoverAbort(`not ready: ${db} has ${ddl.notReplayed} DDL statement(s) not replayed on the ${subscriberOf(ctx.move.drain)} (latest ${ddl.latest?.command ?? ''}: ${ddl.latest?.reason ?? ''})`);
  }
  if (info.workerPid === null) return `waits for the apply worker of ${drain.sub}`;
  const drift = await tableDrift(sub, pub, drain.pub, info.oid);
  // A table just made on the publisher whose DDL has not been replayed yet: waited for (bounded by
  // sync_timeout); DDL that cannot be replayed is reported above and stops the switch.
  if (drift.missing.length > 0) return `waits for table(s) to reach the ${subscriberOf(ctx.move.drain)}: ${drift.missing.slice(0, 3).join(', ')}`;
  if (drift.unsubscribed.length > 0) {
    try {
      await refreshSubscription(sub, drain.sub);
    } catch (err) {
      // A table published since the look above whose DDL has not reached this side yet: the next look waits for it.
      if (sqlState(err) !== '42P01') throw err;
      return `waits for new table(s) to reach the ${subscriberOf(ctx.move.drain)}: ${(err as Error).message}`;
    }
    return `waits for new table(s) to be copied: ${drift.unsubscribed.slice(0, 3).join(', ')}`;
  }
  if (info.tablesReady < info.tablesTotal) return `is copying (tables ${info.tablesReady}/${info.tablesTotal})`;
  return undefined;
}

export interface TableDrift {
  /** Published tables the subscription lacks while the subscriber has them (a refresh adds them). */
  readonly unsubscribed: readonly string[];
  /** Published tables the subscriber has no table for. */
  readonly missing: readonly string[];
  /** Subscribed tables not synchronised yet. */
  readonly notReady: readonly string[];
  readonly published: number;
}

/** Published tables against the subscription's tables (pg_subscription_rel). */
export async function tableDrift(sub: pg.Client, pub: pg.Client, publication: string, subOid: number): Promise<TableDrift> {
  const [published, subscribed] = await Promise.all([publishedTables(pub, publication), subscriptionTables(sub, subOid)]);
  const have = new Map(subscribed.map((t) => [tableKey(t), t.state]));
  const absent = published.filter((t) => !have.has(tableKey(t)));
  const present = await existingTables(sub, absent);
  return {
    unsubscribed: absent.filter((t) => present.has(tableKey(t))).map(tableKey),
    missing: absent.filter((t) => !present.has(tableKey(t))).map(tableKey),
    notReady: published.filter((t) => have.has(tableKey(t)) && have.get(tableKey(t)) !== 'r').map(tableKey),
    published: published.length,
  };
}
