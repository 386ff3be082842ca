/**
 * The way back opened by a switch (the reverse direction after a cutover,
 * the forward direction after a failback): prepared disabled — publication
 * and DDL capture on the new side, subscription on the old side with its
 * slot created on the new side — then enabled and proven to flow after the
 * hand-over; removed again by a rollback.
 */
import type pg from 'pg';
import { replicationConninfo, type Plan } from '../plan';
import type { DatabaseObjects } from '../names';
import type { Sessions } from './sessions';
import { objectsOf, publisherOf, subscriberOf, type Direction } from '../direction';
import { tableDrift } from './recheck';
import { createPublication, dropPublication } from '../../pg/publication';
import { createSubscription, dropSubscription, setSubscriptionEnabled, readSubscription } from '../../pg/subscription';
import { dropSlot, readSlot, readSlots } from '../../pg/slots';
import { fenceState } from '../../pg/fence';
import { standbySource, withStandbySnapshots } from '../standby-snapshots';
import { ensureCaptureTrigger, dropCaptureTrigger, hasAgentSchema } from '../../pg/ddl-replication';
import { serverMajor } from '../../pg/server';
import { AGENT_SCHEMA, ident } from '../../pg/sql';
import { PgFailure, publisherFailure } from '../../pg/errors';
import { sleep } from '../parallel';

function subscription(plan: Plan, o: DatabaseObjects, d: Direction, subscriberMajor: number, createSlot: boolean) {
  const names = objectsOf(o, d);
  return {
    name: names.sub,
    conninfo: replicationConninfo(plan, o, d, subscriberMajor),
    publication: names.pub,
    slot: names.slot,
    enabled: false,
    copyData: false,
    createSlot,
    subscriberMajor,
    // The reverse slot is made while forward replication still applies on
    // the target: origin = none keeps those rows from going back. The
    // forward direction is opened only once the reverse one is drained, and
    // forwards everything (rows that reach the source by its own logical
    // replication included).
    origin: d === 'reverse' ? ('none' as const) : ('any' as const),
  };
}

function connectFailure(plan: Plan, o: DatabaseObjects, d: Direction, err: unknown): unknown {
  if (!/publisher|could not connect|connection to server/i.test(String((err as Error)?.message))) return err;
  const vip = d === 'reverse' ? plan.cfg.target_replication_vip : plan.cfg.source_replication_vip;
  const port = d === 'reverse' ? plan.cfg.targetPort : plan.cfg.sourcePort;
  const f = publisherFailure(err, `${JSON.stringify(o.database)}: the ${subscriberOf(d)}'s server`, `the ${publisherOf(d)} at ${vip}:${port}`);
  return new PgFailure(f.kind, `${f.message}; check ${d === 'reverse' ? 'target' : 'source'}_replication_vip and the ${subscriberOf(d)} server's .pgpass`, f.sqlstate);
}

/**
 * Publication and DDL capture on the new side, disabled subscription on the
 * old side whose slot is created now. Capture is on from here: the new side
 * is fenced, so only its first clients after the hand-over are captured
 * (the apply worker and the agent run in replica mode and are not).
 */
export async function prepareBack(plan: Plan, s: Sessions, o: DatabaseObjects, d: Direction): Promise<void> {
  const names = objectsOf(o, d);
  const pub = await s.get(o, publisherOf(d));
  const sub = await s.get(o, subscriberOf(d));
  await createPublication(pub, names.pub);
  if (plan.cfg.ddl_replication && (await hasAgentSchema(pub))) await ensureCaptureTrigger(pub, names.ddlTrigger, true);
  await createSubscription(sub, subscription(plan, o, d, await serverMajor(sub), true)).catch((err: unknown) => {
    throw connectFailure(plan, o, d, err);
  });
}

/**
 * The back subscription was made before the fence; tables created since
 * (replayed DDL) are not in it. Their rows are the same on both sides now,
 * so the subscription is made again over the same slot, without a copy.
 */
export async function completeBackTables(plan: Plan, s: Sessions, o: DatabaseObjects, d: Direction): Promise<string[]> {
  const names = objectsOf(o, d);
  const pub = await s.get(o, publisherOf(d));
  const sub = await s.get(o, subscriberOf(d));
  const major = await serverMajor(sub);
  const info = await readSubscription(sub, names.sub, major);
  if (!info) throw new PgFailure('sql', `${JSON.stringify(o.database)}: subscription ${names.sub} disappeared from the ${subscriberOf(d)}`);
  const drift = await tableDrift(sub, pub, names.pub, info.oid);
  if (drift.unsubscribed.length === 0) return [];
  await sub.query(`ALTER SUBSCRIPTION ${ident(names.sub)} SET (slot_name = NONE)`);
  await sub.query(`DROP SUBSCRIPTION ${ident(names.sub)}`);
  await createSubscription(sub, subscription(plan, o, d, major, false)).catch((err: unknown) => {
    throw connectFailure(plan, o, d, err);
  });
  return [...drift.unsubscribed];
}

/**
 * The way back's slots (of every database) that are missing where they
 * should be, or there but no longer usable (invalidated: WAL removed, idle
 * timeout, a recovery conflict): one look, slots are instance-wide.
 */
export async function missingBackSlots(s: Sessions, dbs: readonly DatabaseObjects[], d: Direction): Promise<DatabaseObjects[]> {
  if (dbs.length === 0) return [];
  const c = await s.slots(dbs[0]!, d);
  const slots = await readSlots(c, dbs.map((o) => objectsOf(o, d).slot), await serverMajor(c));
  return dbs.filter((o) => {
    const slot = slots.get(objectsOf(o, d).slot);
    return !slot || slot.invalidated !== null;
  });
}

/** The way back's slot is gone and cannot be made again without losing writes. */
export class WayBackLost extends Error {}

/**
 * The way back's slot was made on the new side's primary before the fence.
 * A logical slot does not follow its cluster to another node (unless
 * failover slots are set up): after a failover there, it is gone. While the
 * new side's fence is still on and the way back has never streamed, no
 * client has written there since the fence (the drained changes come from
 * the old side and are not sent back), so the slot is made again and sends
 * what the lost one would have. A superuser's write in replica mode on the
 * fenced side (the fence lets it pass on purpose) is the exception: the lost
 * slot held it, a new one does not. Otherwise the way back is lost: that is
 * refused with the reason, never papered over.
 */
export async function remakeBackSlot(plan: Plan, s: Sessions, o: DatabaseObjects, d: Direction): Promise<void> {
  const names = objectsOf(o, d);
  const newSide = publisherOf(d);
  const db = JSON.stringify(o.database);
  const slots = await s.slots(o, d);
  // The slots must be made where they are read from: the primary, or the source standby (Unpromoted, forward).
  const onStandby = d === 'forward' && standbySource(plan);
  const { rows } = await slots.query<{ recovery: boolean }>('SELECT pg_is_in_recovery() AS recovery');
  if (rows[0]!.recovery !== onStandby) {
    throw new PgFailure('sql', `${db}: the server for the ${d} slots is ${onStandby ? 'no longer a standby' : 'a standby now'} (the ${newSide} changed roles since the switch began); looking again`);
  }
  const lost = (why: string) =>
    new WayBackLost(
      `${db}: slot ${names.slot} of the way back is missing or invalidated on the ${newSide}, and ${why}: a new slot would not carry everything back; the ${newSide} serves production, but there is no way back: stop the resource, keep clients off the ${subscriberOf(d)}, and end the migration with pgtwin-migrate teardown --yes --force`,
    );
  const state = await fenceState(await s.get(o, newSide));
  if (!state?.fenced || state.strays.length > 0) throw lost(`the ${newSide} has taken writes since its fence was lifted`);
  const sub = await s.get(o, subscriberOf(d));
  const origin = await sub.query<{ lsn: string | null }>(
    `SELECT pg_replication_origin_progress('pg_' || oid, false)::text AS lsn FROM pg_subscription
      WHERE subname = $1 AND subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())`,
    [names.sub],
  );
  const streamed = origin.rows[0]?.lsn;
  if (streamed && streamed !== '0/0') throw lost(`the way back had already streamed from it (up to ${streamed})`);
  const present = await readSlot(slots, names.slot, await serverMajor(slots));
  if (present) await dropSlot(slots, names.slot);
  const make = () => slots.query("SELECT pg_create_logical_replication_slot($1, 'pgoutput')", [names.slot]);
  // The forward slots may live on the source's standby: there a slot waits for the primary's snapshot.
  await (onStandby ? withStandbySnapshots(plan, o.database, make) : make());
  plan.log.warn(
    `${db}: slot ${names.slot} of the way back was ${present ? `invalidated (${present.invalidated})` : 'missing'} on the ${newSide} (its primary changed, or the slot was lost, since it was made); made again while the ${newSide} is still fenced and before the way back ever streamed, so no client write is missed`,
  );
}

export async function enableBack(s: Sessions, o: DatabaseObjects, d: Direction): Promise<void> {
  await setSubscriptionEnabled(await s.get(o, subscriberOf(d)), objectsOf(o, d).sub, true);
}

/**
 * Proves the way back flows end to end: a marker row written into the
 * agent's log table on the new side arrives on the old side (or, without
 * the agent's schema, the subscription's worker streams from its slot).
 */
export async function verifyBack(plan: Plan, s: Sessions, o: DatabaseObjects, d: Direction, timeoutMs: number): Promise<void> {
  const pub = await s.get(o, publisherOf(d));
  const sub = await s.get(o, subscriberOf(d));
  const names = objectsOf(o, d);
  const until = Date.now() + timeoutMs;
  const db = JSON.stringify(o.database);
  if (plan.cfg.ddl_replication && (await hasAgentSchema(pub)) && (await hasAgentSchema(sub))) {
    const id = await insertMarker(pub);
    while (Date.now() < until) {
      const { rowCount } = await sub.query(`SELECT 1 FROM ${ident(AGENT_SCHEMA)}.ddl_log WHERE id = $1::bigint AND origin <> ${ident(AGENT_SCHEMA)}.side()`, [id]);
      if ((rowCount ?? 0) > 0) return;
      await sleep(50);
    }
    const info = await readSubscription(sub, names.sub, await serverMajor(sub));
    const why = !info ? 'the subscription is gone' : info.workerPid === null ? `its apply worker is not running (${info.applyErrorCount} apply error(s); see the ${subscriberOf(d)}'s log)` : 'its apply worker runs but has not applied it';
    throw new PgFailure('timeout', `${db}: ${d} replication did not deliver a marker row within ${Math.round(timeoutMs / 1000)} s: ${why}`);
  }
  while (Date.now() < until) {
    const info = await readSubscription(sub, names.sub, await serverMajor(sub));
    const slots = await s.slots(o, d);
    const slot = await readSlot(slots, names.slot, await serverMajor(slots));
    if (info?.workerPid && slot?.active) return;
    await sleep(100);
  }
  throw new PgFailure('timeout', `${db}: subscription ${names.sub} did not start streaming within ${Math.round(timeoutMs / 1000)} s`);
}

async function insertMarker(c: pg.Client): Promise<string> {
  const S = ident(AGENT_SCHEMA);
  const { rows } = await c.query<{ id: string }>(
    `INSERT INTO ${S}.ddl_log (origin, query_md5, command_tag, statement, replayable, not_replayable_reason, handled)
     VALUES (${S}.side(), md5('verify'), 'PGTWIN VERIFY', 'replication check', false, 'marker row of a switch', true)
     RETURNING id::text`,
  );
  return rows[0]!.id;
}

/** Removes everything prepareBack made (rollback). */
export async function dropBack(s: Sessions, o: DatabaseObjects, d: Direction): Promise<void> {
  const names = objectsOf(o, d);
  const pub = await s.get(o, publisherOf(d));
  const sub = await s.get(o, subscriberOf(d));
  await dropSubscription(sub, names.sub, `${subscriberOf(d)} primary database ${JSON.stringify(o.database)}`);
  await dropPublication(pub, names.pub);
  await dropCaptureTrigger(pub, names.ddlTrigger);
  await dropSlot(await s.slots(o, d), names.slot);
}
