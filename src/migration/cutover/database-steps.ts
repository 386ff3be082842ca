/**
 * The cutover's database work before the VIP swap (DESIGN §6, steps 1-6)
 * and the removal of forward replication after it; all databases in
 * parallel through the cutover's own sessions.
 */
import { CUTOVER_KEY } from './steps';
import type { CutoverContext } from './context';
import { CutoverAbort } from './context';
import { KEY, parseBaseline, diffBaseline } from '../cib-state';
import { observeAll, COMPLETE, type RememberedTarget } from '../observe';
import { assessDatabase } from '../health';
import { sleep } from '../parallel';
import { setDefaultReadOnly, transactionsBefore, sessionsBefore, terminate, currentLsn } from '../../pg/fence';
import { readSlots, pendingChanges, pgoutputProtoVersion } from '../../pg/slots';
import { setSubscriptionEnabled, dropSubscription, refreshSubscription } from '../../pg/subscription';
import { dropPublication } from '../../pg/publication';
import { dropCaptureTrigger } from '../../pg/ddl-replication';
import { readSequences, writeSequences, sequenceMismatches } from '../../pg/sequences';
import { serverMajor } from '../../pg/server';
import { bytesBehind } from '../../pg/lsn';

// Time for every backend to take the reloaded configuration (SIGHUP) before the fence counts.
const FENCE_SETTLE_MS = 100;
export const POLL_MS = 25;

/** Step 1: the database list, and every database ready (waited for, up to sync_timeout). */
export async function recheck(ctx: CutoverContext): Promise<void> {
  const cib = await ctx.plan.state.readAll();
  const recorded = parseBaseline(cib.get(KEY.databases));
  if (recorded) {
    const d = diffBaseline(recorded, ctx.plan.cfg.databaseList);
    if (d.added.length + d.removed.length > 0) {
      ctx.log.err('Database list changed during migration!');
      ctx.log.err(`Expected: ${recorded.join(',')}`);
      ctx.log.err(`Current: ${ctx.plan.cfg.databaseList.join(',')}`);
      const parts = [d.added.length ? `added ${d.added.join(',')}` : '', d.removed.length ? `removed ${d.removed.join(',')}` : ''].filter(Boolean);
      throw new CutoverAbort(`Database list changed during migration (${parts.join('; ')}); expected ${recorded.join(',')}`);
    }
  }
  // Structural problems stop the cutover at once; lag and a running copy are
  // waited out (up to sync_timeout), as writes keep arriving until the fence.
  // Lag is WAL the publisher holds for a slot, and WAL is shared by all
  // databases: under load a single look rarely finds every one of them under
  // lag_threshold at the same instant, so a database counts as caught up
  // when it was seen under the threshold within the last RECENT_MS.
  const RECENT_MS = 2_000;
  const caughtUpAt = new Map<string, number>();
  const until = Date.now() + ctx.plan.cfg.sync_timeout * 1000;
  let lastReport = 0;
  // The first look is complete; later ones follow lag and workers through the
  // shared views only, with the tables' state as the first look found it.
  let first: Map<string, RememberedTarget> | undefined;
  for (;;) {
    if (ctx.stopRequested) throw new CutoverAbort('a stop of the resource interrupted the cutover');
    const remembered = first;
    const views = await observeAll(
      ctx.plan,
      remembered ? { sourceDetails: () => false, targetDetails: () => false, remembered: (o) => remembered.get(o.token) } : COMPLETE,
    );
    const healths = views.map((v) => assessDatabase(v, { expectEnabled: true, lagThreshold: ctx.plan.cfg.lag_threshold }));
    const allCopied = healths.every((h) => h.state === 'streaming' && !h.needsRefresh);
    if (!first && allCopied) {
      first = new Map(
        healths.map((h) => [h.token, { tablesReady: h.tablesReady ?? 0, tablesTotal: h.tablesTotal ?? 0, unsubscribedTables: h.unsubscribedTables, ddl: { notReplayed: h.ddlNotReplayed, latest: undefined } }]),
      );
    }
    const waiting: string[] = [];
    for (const h of healths) {
      const db = JSON.stringify(h.database);
      if (h.state === 'broken') throw new CutoverAbort(`not ready: ${h.problem}`);
      if (h.ddlNotReplayed > 0) throw new CutoverAbort(`not ready: ${db} has ${h.ddlNotReplayed} DDL statement(s) not replayed on the target`);
      if (h.missingOnTarget.length > 0) throw new CutoverAbort(`not ready: ${db} has published tables missing on the target`);
      if (h.state !== 'streaming') waiting.push(`${db} is ${h.state} (tables ${h.tablesReady}/${h.tablesTotal})`);
      else if (h.needsRefresh) {
        waiting.push(`${db} waits for new tables to be copied`);
        const o = ctx.dbs.find((x) => x.token === h.token)!;
        await refreshSubscription(await ctx.sessions.get(o, 'target'), o.forwardSub);
      }
      else if (h.lagBytes !== null && h.lagBytes <= ctx.plan.cfg.lag_threshold) caughtUpAt.set(h.token, Date.now());
      else if (Date.now() - (caughtUpAt.get(h.token) ?? 0) > RECENT_MS) waiting.push(`${db} lags ${h.lagBytes ?? '?'} bytes`);
    }
    if (waiting.length === 0) break;
    if (Date.now() > until) throw new CutoverAbort(`not ready within sync_timeout=${ctx.plan.cfg.sync_timeout}s: ${waiting.join(', ')}`);
    if (Date.now() - lastReport > 5_000) {
      lastReport = Date.now();
      ctx.log.info(`cutover: waiting until every database is ready (lag under lag_threshold=${ctx.plan.cfg.lag_threshold}): ${waiting.join(', ')}`);
    }
    await sleep(200);
  }
  // A prepared transaction could still commit after the fence.
  const prepared = await (await ctx.sessions.get(ctx.dbs[0]!, 'source')).query<{ database: string; n: number }>(
    'SELECT database, count(*)::int AS n FROM pg_prepared_xacts WHERE database = ANY($1::text[]) GROUP BY 1',
    [ctx.plan.cfg.databaseList],
  );
  if (prepared.rows.length > 0) {
    const p = prepared.rows[0]!;
    throw new CutoverAbort(`not ready: ${p.n} prepared transaction(s) open in ${JSON.stringify(p.database)} on the source; COMMIT PREPARED or ROLLBACK PREPARED them first`);
  }
  // Open every session now: the read-only window should not pay for it.
  await ctx.eachDatabase('connecting', async (o) => {
    await Promise.all([ctx.sessions.get(o, 'source'), ctx.sessions.get(o, 'target'), ctx.sessions.get(o, 'slot')]);
  });
}

/** Step 3: writes fenced on the source; sets ctx.fenceLsn. */
export async function fence(ctx: CutoverContext): Promise<void> {
  const c = await ctx.sessions.get(ctx.dbs[0]!, 'source');
  ctx.fencedAt = Date.now();
  await setDefaultReadOnly(c, true);
  for (const o of ctx.dbs) ctx.markState(o, { quiesced: true });
  await sleep(FENCE_SETTLE_MS);
  const { rows } = await c.query<{ t: Date }>('SELECT clock_timestamp() AS t');
  const fenceTime = rows[0]!.t;
  const until = Date.now() + ctx.plan.cfg.quiesce_timeout * 1000;
  let open = await transactionsBefore(c, fenceTime);
  while (open.length > 0 && Date.now() < until) {
    await sleep(POLL_MS);
    open = await transactionsBefore(c, fenceTime);
  }
  for (const t of open) {
    ctx.log.warn(`cutover: ending session ${t.pid} (${t.user}@${t.database}, transaction open since ${t.since.toISOString()}${t.wrote ? ', has written' : ''}) after quiesce_timeout=${ctx.plan.cfg.quiesce_timeout}s`);
  }
  // Every other session of the migrated databases opened before the fence
  // ends too: its next command would still run with the old configuration.
  // Clients reconnect, and new sessions are read-only.
  const idle = (await sessionsBefore(c, fenceTime, ctx.plan.cfg.databaseList)).filter((x) => !open.some((t) => t.pid === x.pid));
  if (idle.length > 0) ctx.log.info(`cutover: ending ${idle.length} session(s) of the migrated databases opened before the fence`);
  await terminate(c, [...open, ...idle].map((t) => t.pid));
  ctx.fenceLsn = await currentLsn(c);
  ctx.recordInBackground({
    [CUTOVER_KEY.fenceLsn]: ctx.fenceLsn,
    [CUTOVER_KEY.fencedAt]: new Date(ctx.fencedAt).toISOString(),
    [CUTOVER_KEY.fenceCompleteAt]: new Date().toISOString(),
  });
  ctx.log.info(`cutover: writes fenced on the source at ${ctx.fenceLsn}`);
}

/** Step 4: every forward slot confirms the fence position. */
export async function waitForSync(ctx: CutoverContext): Promise<void> {
  const deadline = Date.now() + ctx.plan.cfg.sync_timeout * 1000;
  const behind = new Map<string, number | null>(ctx.dbs.map((o) => [o.database, null]));
  let lastReport = 0;
  // Slots are cluster-wide: one session on the slot host follows them all.
  const names = ctx.dbs.map((o) => o.forwardSlot);
  let major: number | undefined;
  for (;;) {
    if (ctx.stopRequested) throw new CutoverAbort('a stop of the resource interrupted the cutover');
    let slots;
    try {
      const c = await ctx.sessions.get(ctx.dbs[0]!, 'slot');
      major ??= await serverMajor(c);
      slots = await readSlots(c, names, major);
    } catch (err) {
      throw new CutoverAbort(`waiting for sync: ${(err as Error).message}`);
    }
    for (const o of ctx.dbs) {
      const slot = slots.get(o.forwardSlot);
      if (!slot) throw new CutoverAbort(`waiting for sync: ${JSON.stringify(o.database)}: slot ${o.forwardSlot} disappeared`);
      behind.set(o.database, bytesBehind(slot.confirmedFlushLsn, ctx.fenceLsn));
    }
    if ([...behind.values()].every((b) => b === 0)) break;
    if (Date.now() - lastReport >= 1000) {
      lastReport = Date.now();
      const parts = [...behind.entries()].map(([db, b]) => `${db}: ${b === null ? 'unknown' : `${b}`} bytes`);
      ctx.log.info(`Waiting for forward replication sync (${parts.join(', ')})`);
    }
    if (Date.now() > deadline) {
      const lagging = [...behind.entries()].filter(([, b]) => b !== 0).map(([db, b]) => `${db}: ${b ?? '?'} bytes behind`);
      throw new CutoverAbort(`forward replication did not reach the fence within sync_timeout=${ctx.plan.cfg.sync_timeout}s (${lagging.join(', ')})`);
    }
    await sleep(POLL_MS);
  }
  ctx.log.info(`cutover: every database confirmed the fence position ${ctx.fenceLsn}`);
}

/** Step 5: forward subscriptions disabled, and every forward slot proven empty. */
export async function disableAndProve(ctx: CutoverContext): Promise<void> {
  await ctx.eachDatabase('disabling forward replication', async (o) => {
    await setSubscriptionEnabled(await ctx.sessions.get(o, 'target'), o.forwardSub, false);
  });
  // Wait until every walsender has let go of its slot (one query for all of them)…
  const c = await ctx.sessions.get(ctx.dbs[0]!, 'slot');
  const major = await serverMajor(c);
  const until = Date.now() + 15_000;
  for (;;) {
    const slots = await readSlots(c, ctx.dbs.map((o) => o.forwardSlot), major);
    const active = ctx.dbs.filter((o) => slots.get(o.forwardSlot)?.active !== false);
    const gone = ctx.dbs.find((o) => !slots.has(o.forwardSlot));
    if (gone) throw new CutoverAbort(`${JSON.stringify(gone.database)}: slot ${gone.forwardSlot} disappeared`);
    if (active.length === 0) break;
    if (Date.now() > until) {
      throw new CutoverAbort(`${JSON.stringify(active[0]!.database)}: slot ${active[0]!.forwardSlot} still active 15 s after disabling ${active[0]!.forwardSub}`);
    }
    await sleep(POLL_MS);
  }
  // …then peek into each (in its own database): nothing may be left unconsumed.
  await ctx.eachDatabase('proving the forward slots empty', async (o) => {
    const pending = await pendingChanges(await ctx.sessions.get(o, 'slot'), o.forwardSlot, o.forwardPub, pgoutputProtoVersion(major));
    if (pending > 0) {
      throw new CutoverAbort(`${JSON.stringify(o.database)}: ${pending} change(s) reached the source after the fence and were not replicated`);
    }
  });
  ctx.log.info('cutover: forward subscriptions disabled; no forward slot holds unconsumed changes');
}

/** Step 6: every sequence value carried to the target, and verified. */
export async function copySequences(ctx: CutoverContext): Promise<void> {
  let total = 0;
  await ctx.eachDatabase('copying sequences', async (o) => {
    const source = await ctx.sessions.get(o, 'source');
    const target = await ctx.sessions.get(o, 'target');
    const values = await readSequences(source);
    const missing = await writeSequences(target, values);
    if (missing.length > 0) throw new CutoverAbort(`${JSON.stringify(o.database)}: sequence(s) missing on the target: ${missing.slice(0, 5).join(', ')}`);
    const mismatched = sequenceMismatches(values, await readSequences(target));
    if (mismatched.length > 0) throw new CutoverAbort(`${JSON.stringify(o.database)}: sequence values differ after the copy: ${mismatched.slice(0, 5).join(', ')}`);
    total += values.length;
  });
  ctx.log.info(`cutover: ${total} sequence value(s) copied and verified`);
}

/** After the swap: forward subscriptions (and their slots) and publications removed. */
export async function dropForward(ctx: CutoverContext): Promise<void> {
  await ctx.eachDatabase('removing forward replication', async (o) => {
    const target = await ctx.sessions.get(o, 'target');
    const r = await dropSubscription(target, o.forwardSub, `target primary database ${JSON.stringify(o.database)}`);
    if (r.remoteSlotLeft) ctx.log.warn(`${JSON.stringify(o.database)}: slot ${r.remoteSlotLeft} is left on the source (${r.publisherError}); run pgtwin-migrate teardown later to remove it`);
    try {
      const source = await ctx.sessions.get(o, 'source');
      await dropPublication(source, o.forwardPub);
      await dropCaptureTrigger(source, o.forwardDdlTrigger);
    } catch (err) {
      ctx.log.warn(`${JSON.stringify(o.database)}: could not remove the forward publication on the source: ${(err as Error).message}`);
    }
  });
}
