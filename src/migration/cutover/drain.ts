/**
 * The switch's work on the direction being drained: fence the old side,
 * wait until every slot has confirmed the fence position and every
 * published table is subscribed and synchronised, disable the subscriptions
 * and prove the slots empty; after the address moved, prove them empty once
 * more (carrying over whatever a superuser or a replica-mode session wrote
 * past the fence); at the end drop the drained direction.
 */
import type { CutoverContext } from './context';
import { CutoverAbort } from './context';
import type { DatabaseObjects } from '../names';
import { objectsOf, publisherOf, subscriberOf } from '../direction';
import { proofOf } from './proof';
import { tableDrift } from './recheck';
import { sleep } from '../parallel';
import { fence as fenceDatabase, lift as liftDatabase, insertLsn, preparedTransactions, clientSessions, terminate, rearmTableFences } from '../../pg/fence';
import { readSlots, pendingChanges, pgoutputProtoVersion } from '../../pg/slots';
import { setSubscriptionEnabled, setSubscriptionCommit, dropSubscription, refreshSubscription, readSubscription } from '../../pg/subscription';
import { dropPublication } from '../../pg/publication';
import { dropCaptureTrigger } from '../../pg/ddl-replication';
import { serverMajor } from '../../pg/server';
import { bytesBehind } from '../../pg/lsn';
import { proveDurable } from './durable';
import { keepCarriedFromLooping, copySequences } from './carry';

export const POLL_MS = 25;

/**
 * Fences every database on the old side; sets ctx.fenceLsn (the WAL insert
 * position once all are fenced). Recorded in the CIB with the swap (no CIB
 * write inside the read-only window but the swap's own).
 */
export async function fence(ctx: CutoverContext): Promise<void> {
  const { move } = ctx;
  ctx.fencedAt = Date.now();
  ctx.proof.fencedAt = new Date(ctx.fencedAt).toISOString();
  await ctx.eachDatabase('fencing writes', async (o) => {
    const c = await ctx.sessions.get(o, move.from);
    const lsn = await fenceDatabase(c, {
      quiesceMs: ctx.plan.cfg.quiesce_timeout * 1000,
      agentPids: ctx.sessions.agentPids(move.from),
      onEnd: (t) =>
        ctx.log.warn(
          `${move.kind}: ending session ${t.pid} (${t.user}@${JSON.stringify(o.database)}, ${t.backendType}${t.since ? `, transaction open since ${t.since.toISOString()}` : ''}) after quiesce_timeout=${ctx.plan.cfg.quiesce_timeout}s`,
        ),
    });
    proofOf(ctx.proof, o.database).fenceLsn = lsn;
    ctx.markState(o, { quiesced: true });
  });
  ctx.fenceLsn = await insertLsn(await ctx.sessions.get(ctx.dbs[0]!, move.from));
  const completeAt = new Date().toISOString();
  Object.assign(ctx.proof, { fenceLsn: ctx.fenceLsn, fenceCompleteAt: completeAt });
  ctx.log.info(`${move.kind}: writes fenced on the ${move.from} at ${ctx.fenceLsn}`);
}

/** Lifts the fence of every database on one side (rollback: the old side; hand-over: the new side). */
export async function liftFence(ctx: CutoverContext, side: 'source' | 'target'): Promise<void> {
  await ctx.eachDatabase(`lifting the write fence on the ${side}`, async (o) => {
    await liftDatabase(await ctx.sessions.get(o, side), 10_000);
    if (side === ctx.move.from) ctx.markState(o, { quiesced: false });
  });
}

/** Sessions still on the old side after the hand-over: end them, so they reconnect through the production address. */
export async function endOldSessions(ctx: CutoverContext): Promise<void> {
  const c = await ctx.sessions.get(ctx.dbs[0]!, ctx.move.from);
  const pids = await clientSessions(c, ctx.plan.cfg.databaseList, ctx.sessions.agentPids(ctx.move.from));
  if (pids.length === 0) return;
  ctx.log.info(`${ctx.move.kind}: ending ${pids.length} client session(s) of the migrated databases on the ${ctx.move.from}; they reconnect through the production address`);
  await terminate(c, pids, 2_000);
}

/**
 * Every drained slot confirms the fence position; then every published
 * table (the set is frozen now: DDL is fenced) is proven subscribed and
 * synchronised — the apply worker skips and confirms changes of tables
 * outside its subscription, so a table created late would arrive empty.
 */
export async function waitForSync(ctx: CutoverContext): Promise<void> {
  const deadline = Date.now() + ctx.plan.cfg.sync_timeout * 1000;
  await waitForSlots(ctx, ctx.fenceLsn, deadline, 'sync');
  await proveTablesSubscribed(ctx, deadline);
}

/**
 * Every published table subscribed and synchronised (a table created late is
 * added to the subscription and copied); the subscription must be enabled.
 */
async function proveTablesSubscribed(ctx: CutoverContext, deadline: number): Promise<void> {
  const drain = ctx.move.drain;
  await ctx.eachDatabase('checking the published tables', async (o) => {
    const names = objectsOf(o, drain);
    const sub = await ctx.sessions.get(o, subscriberOf(drain));
    const pub = await ctx.sessions.get(o, publisherOf(drain));
    const info = await readSubscription(sub, names.sub, await serverMajor(sub));
    if (!info) throw new CutoverAbort(`${JSON.stringify(o.database)}: subscription ${names.sub} disappeared`);
    let refreshed = false;
    for (;;) {
      const d = await tableDrift(sub, pub, names.pub, info.oid);
      if (d.missing.length > 0) throw new CutoverAbort(`${JSON.stringify(o.database)}: published table(s) missing on the ${subscriberOf(drain)}: ${d.missing.slice(0, 3).join(', ')}`);
      if (d.unsubscribed.length > 0 && !refreshed) {
        ctx.log.warn(`${ctx.move.kind}: ${JSON.stringify(o.database)}: table(s) ${d.unsubscribed.slice(0, 3).join(', ')} created just before the fence; copying them now`);
        await refreshSubscription(sub, names.sub);
        refreshed = true;
        continue;
      }
      if (d.unsubscribed.length === 0 && d.notReady.length === 0) {
        proofOf(ctx.proof, o.database).tables = d.published;
        return;
      }
      if (Date.now() > deadline) {
        throw new CutoverAbort(`${JSON.stringify(o.database)}: table(s) ${[...d.unsubscribed, ...d.notReady].slice(0, 3).join(', ')} not synchronised within sync_timeout=${ctx.plan.cfg.sync_timeout}s`);
      }
      await sleep(50);
    }
  });
}

/** Waits until every drained slot has confirmed `lsn`. */
async function waitForSlots(ctx: CutoverContext, lsn: string, deadline: number, what: string): Promise<void> {
  const drain = ctx.move.drain;
  const names = ctx.dbs.map((o) => objectsOf(o, drain).slot);
  const behind = new Map<string, number | null>(ctx.dbs.map((o) => [o.database, null]));
  let lastReport = 0;
  let major: number | undefined;
  for (;;) {
    if (ctx.stopRequested && what === 'sync') throw new CutoverAbort('a stop of the resource interrupted the switch');
    let slots;
    try {
      const c = await ctx.sessions.slots(ctx.dbs[0]!, drain);
      major ??= await serverMajor(c);
      slots = await readSlots(c, names, major);
    } catch (err) {
      throw new CutoverAbort(`waiting for ${what}: ${(err as Error).message}`);
    }
    for (const o of ctx.dbs) {
      const slot = slots.get(objectsOf(o, drain).slot);
      if (!slot) throw new CutoverAbort(`${what}: ${JSON.stringify(o.database)}: slot ${objectsOf(o, drain).slot} disappeared`);
      behind.set(o.database, bytesBehind(slot.confirmedFlushLsn, lsn));
      if (slot.confirmedFlushLsn) proofOf(ctx.proof, o.database).slotConfirmedLsn = slot.confirmedFlushLsn;
    }
    if ([...behind.values()].every((b) => b === 0)) return;
    if (Date.now() - lastReport >= 1000) {
      lastReport = Date.now();
      ctx.log.info(`Waiting for ${drain} replication sync (${[...behind.entries()].map(([db, b]) => `${db}: ${b ?? 'unknown'} bytes`).join(', ')})`);
    }
    if (Date.now() > deadline) {
      const lagging = [...behind.entries()].filter(([, b]) => b !== 0).map(([db, b]) => `${db}: ${b ?? '?'} bytes behind`);
      throw new CutoverAbort(`${drain} replication did not reach ${lsn} within sync_timeout=${ctx.plan.cfg.sync_timeout}s (${lagging.join(', ')})`);
    }
    await sleep(POLL_MS);
  }
}

/** Drained subscriptions disabled, and every drained slot proven to hold no change. */
export async function disableAndProve(ctx: CutoverContext): Promise<void> {
  const drain = ctx.move.drain;
  await ctx.eachDatabase(`disabling ${drain} replication`, async (o) => {
    await setSubscriptionEnabled(await ctx.sessions.get(o, subscriberOf(drain)), objectsOf(o, drain).sub, false);
  });
  await waitInactive(ctx);
  const pending = await peekAll(ctx);
  for (const [o, n] of pending) {
    proofOf(ctx.proof, o.database).pendingAtProof = n;
    if (n > 0) throw new CutoverAbort(`${JSON.stringify(o.database)}: ${n} change(s) reached the ${ctx.move.from} after the fence and were not replicated`);
  }
  ctx.log.info(`${ctx.move.kind}: ${drain} subscriptions disabled; no ${drain} slot holds an unconsumed change`);
}

async function waitInactive(ctx: CutoverContext): Promise<void> {
  const drain = ctx.move.drain;
  const c = await ctx.sessions.slots(ctx.dbs[0]!, drain);
  const major = await serverMajor(c);
  const until = Date.now() + 15_000;
  for (;;) {
    const slots = await readSlots(c, ctx.dbs.map((o) => objectsOf(o, drain).slot), major);
    const gone = ctx.dbs.find((o) => !slots.has(objectsOf(o, drain).slot));
    if (gone) throw new CutoverAbort(`${JSON.stringify(gone.database)}: slot ${objectsOf(gone, drain).slot} disappeared`);
    const active = ctx.dbs.filter((o) => slots.get(objectsOf(o, drain).slot)?.active !== false);
    if (active.length === 0) return;
    if (Date.now() > until) {
      const o = active[0]!;
      throw new CutoverAbort(`${JSON.stringify(o.database)}: slot ${objectsOf(o, drain).slot} still active 15 s after disabling ${objectsOf(o, drain).sub}`);
    }
    await sleep(POLL_MS);
  }
}

/** Data changes (I/U/D/T) each drained slot still holds, peeked without consuming. */
async function peekAll(ctx: CutoverContext): Promise<Array<[DatabaseObjects, number]>> {
  const drain = ctx.move.drain;
  const out: Array<[DatabaseObjects, number]> = [];
  await ctx.eachDatabase(`proving the ${drain} slots empty`, async (o) => {
    const c = await ctx.sessions.slots(o, drain);
    const names = objectsOf(o, drain);
    out.push([o, await pendingChanges(c, names.slot, names.pub, pgoutputProtoVersion(await serverMajor(c)))]);
  });
  return out;
}

/**
 * After the address moved and before the new side takes writes: no
 * prepared transaction left on the old side, and every drained slot empty
 * once more. Whatever passed the fence since the first proof (a superuser,
 * a replica-mode session) is carried over by letting the subscription apply
 * it, until the slots are empty.
 */
export async function finalProof(ctx: CutoverContext): Promise<void> {
  const { move } = ctx;
  const drain = move.drain;
  const prepared = await preparedTransactions(await ctx.sessions.get(ctx.dbs[0]!, move.from), ctx.plan.cfg.databaseList);
  for (const p of prepared) {
    ctx.log.warn(`${move.kind}: prepared transaction ${JSON.stringify(p.gid)} is open in ${JSON.stringify(p.database)} on the ${move.from}; it holds no write of a fenced table, but ROLLBACK PREPARED it: whatever it commits there stays there`);
  }
  // A table that became visible since the fence (created by a transaction prepared before it and
  // committed since) got its trigger unarmed: the old side's fence covers it too from here on.
  await ctx.eachDatabase(`fencing late tables on the ${move.from}`, async (o) => {
    await rearmTableFences(await ctx.sessions.get(o, move.from), Math.max(1000, ctx.plan.cfg.sync_timeout * 1000));
  });
  for (let round = 1; ; round++) {
    const pending = (await peekAll(ctx)).filter(([, n]) => n > 0);
    if (pending.length === 0) {
      // What this run carried over may have taken sequence values after they were copied: copied
      // again — never by a worker that took the switch over, which may run after the lift, when the
      // new side's sequences have moved on and a copy would set them back (duplicate keys).
      if (round > 1 && ctx.plan.cfg.sequence_sync) {
        if (!ctx.tookOver) await copySequences(ctx, 'again');
        else ctx.log.warn(`${move.kind}: changes were carried over after a takeover; sequences are not copied again (the ${move.to} may have taken writes): check that the ${move.to}'s sequences are past the carried-over rows' ids`);
      }
      // Whatever was carried over (by this run or by an earlier one that failed here) does not come
      // back through a way back that does not filter by origin, and is on the new side's synchronous
      // standbys too, like the rest: both looked at every time.
      await keepCarriedFromLooping(ctx);
      await proveDurable(ctx, Date.now() + ctx.plan.cfg.sync_timeout * 1000, 'final proof');
      return;
    }
    if (round > 5) throw new CutoverAbort(`changes keep reaching the ${move.from} past the fence (${pending.map(([o, n]) => `${o.database}: ${n}`).join(', ')}); something writes there in replica mode`);
    ctx.log.warn(`${move.kind}: ${pending.map(([o, n]) => `${JSON.stringify(o.database)}: ${n}`).join(', ')} change(s) passed the fence; carrying them over`);
    for (const [o, n] of pending) {
      const p = proofOf(ctx.proof, o.database);
      p.carriedOver = (p.carriedOver ?? 0) + n;
    }
    const target = await insertLsn(await ctx.sessions.get(ctx.dbs[0]!, move.from));
    await ctx.eachDatabase(`carrying over ${drain} changes`, async (o) => {
      await setSubscriptionEnabled(await ctx.sessions.get(o, subscriberOf(drain)), objectsOf(o, drain).sub, true);
    });
    const deadline = Date.now() + ctx.plan.cfg.sync_timeout * 1000;
    await waitForSlots(ctx, target, deadline, 'carry-over');
    // What passed the fence may have made a table (a prepared transaction that created one and
    // committed late): the apply worker skipped its rows; it is copied now, before the lift.
    await proveTablesSubscribed(ctx, deadline);
    await ctx.eachDatabase(`disabling ${drain} replication`, async (o) => {
      await setSubscriptionEnabled(await ctx.sessions.get(o, subscriberOf(drain)), objectsOf(o, drain).sub, false);
    });
    await waitInactive(ctx);
  }
}

/** Re-enables the drained subscriptions, committing asynchronously again as they were made (rollback). */
export async function reenableDrain(ctx: CutoverContext): Promise<void> {
  const drain = ctx.move.drain;
  await ctx.eachDatabase(`re-enabling ${drain} replication`, async (o) => {
    const c = await ctx.sessions.get(o, subscriberOf(drain));
    const sub = await readSubscription(c, objectsOf(o, drain).sub, await serverMajor(c));
    if (!sub) return;
    if (!sub.enabled) await setSubscriptionEnabled(c, objectsOf(o, drain).sub, true);
    // After the enable, and never holding it up: it costs the forward phase speed, not safety.
    await setSubscriptionCommit(c, objectsOf(o, drain).sub, 'off').catch((err: Error) =>
      ctx.log.warn(`${ctx.move.kind} rollback: ${JSON.stringify(o.database)}: could not set ${objectsOf(o, drain).sub} back to synchronous_commit=off: ${err.message}; ALTER SUBSCRIPTION ${objectsOf(o, drain).sub} SET (synchronous_commit = off) by hand`),
    );
  });
}

/** After the hand-over: the drained subscriptions (and their slots), publications and capture triggers removed. */
export async function dropDrain(ctx: CutoverContext): Promise<void> {
  const drain = ctx.move.drain;
  await ctx.eachDatabase(`removing ${drain} replication`, async (o) => {
    const names = objectsOf(o, drain);
    const sub = await ctx.sessions.get(o, subscriberOf(drain));
    const r = await dropSubscription(sub, names.sub, `${subscriberOf(drain)} primary database ${JSON.stringify(o.database)}`);
    if (r.remoteSlotLeft) ctx.log.warn(`${JSON.stringify(o.database)}: slot ${r.remoteSlotLeft} is left on the ${publisherOf(drain)} (${r.publisherError}); pgtwin-migrate teardown removes it later`);
    const pub = await ctx.sessions.get(o, publisherOf(drain));
    await dropPublication(pub, names.pub);
    await dropCaptureTrigger(pub, names.ddlTrigger);
  });
}
