/**
 * Reverse replication (target → source), the way back after the cutover:
 * prepared disabled (publication and DDL trigger on the target, subscription
 * with its slot on the source), enabled and proven to flow after the swap,
 * removed again by a rollback.
 */
import { replicationConninfo, type Plan } from '../plan';
import type { DatabaseObjects } from '../names';
import type { Sessions } from './sessions';
import { createPublication, dropPublication } from '../../pg/publication';
import { createSubscription, dropSubscription, setSubscriptionEnabled, readSubscription } from '../../pg/subscription';
import { dropSlot, readSlot } from '../../pg/slots';
import { ensureCaptureTrigger, dropCaptureTrigger, hasAgentSchema } from '../../pg/ddl-replication';
import { serverMajor } from '../../pg/server';
import { AGENT_SCHEMA, ident } from '../../pg/sql';
import { PgFailure, publisherFailure } from '../../pg/errors';
import { sleep } from '../parallel';

/**
 * Publication and (disabled) DDL trigger on the target, disabled
 * subscription on the source whose slot is created now on the target. With
 * origin = none (source 16+) rows that arrived by forward replication are
 * never sent back, so this may run before the fence.
 */
export async function prepareReverse(plan: Plan, s: Sessions, o: DatabaseObjects): Promise<void> {
  const target = await s.get(o, 'target');
  const source = await s.get(o, 'source');
  await createPublication(target, o.reversePub);
  if (plan.cfg.ddl_replication && (await hasAgentSchema(target))) await ensureCaptureTrigger(target, o.reverseDdlTrigger, false);
  await createSubscription(source, {
    name: o.reverseSub,
    conninfo: replicationConninfo(plan, o, 'reverse'),
    publication: o.reversePub,
    slot: o.reverseSlot,
    enabled: false,
    copyData: false,
    createSlot: true,
    subscriberMajor: await serverMajor(source),
  }).catch((err: unknown) => {
    if (!/publisher|could not connect|connection to server/i.test(String((err as Error)?.message))) throw err;
    const f = publisherFailure(err, `${JSON.stringify(o.database)}: the source's server`, `the target at ${plan.cfg.target_replication_vip}:${plan.cfg.targetPort}`);
    throw new PgFailure(f.kind, `${f.message}; check target_replication_vip and the source server's .pgpass`, f.sqlstate);
  });
}

export async function enableReverse(plan: Plan, s: Sessions, o: DatabaseObjects): Promise<void> {
  const source = await s.get(o, 'source');
  const target = await s.get(o, 'target');
  if (plan.cfg.ddl_replication) {
    // DDL now flows the other way: the source replays, the target captures.
    await dropCaptureTrigger(source, o.forwardDdlTrigger);
    if (await hasAgentSchema(target)) await ensureCaptureTrigger(target, o.reverseDdlTrigger, true);
  }
  await setSubscriptionEnabled(source, o.reverseSub, true);
}

/**
 * Proves reverse replication flows end to end: a marker row written on the
 * target arrives on the source (or, without the agent's schema, the reverse
 * slot becomes active with the worker running).
 */
export async function verifyReverse(plan: Plan, s: Sessions, o: DatabaseObjects, timeoutMs: number): Promise<void> {
  const source = await s.get(o, 'source');
  const target = await s.get(o, 'target');
  const until = Date.now() + timeoutMs;
  const db = JSON.stringify(o.database);
  if (plan.cfg.ddl_replication && (await hasAgentSchema(target)) && (await hasAgentSchema(source))) {
    const S = ident(AGENT_SCHEMA);
    const { rows } = await target.query<{ id: string }>(
      `INSERT INTO ${S}.ddl_log (origin, query_md5, command_tag, statement, replayable, not_replayable_reason, handled)
       VALUES (${S}.side(), md5('verify'), 'PGTWIN VERIFY', 'reverse replication check', false, 'marker row of the cutover', true)
       RETURNING id::text`,
    );
    const id = rows[0]!.id;
    while (Date.now() < until) {
      const { rowCount } = await source.query(`SELECT 1 FROM ${S}.ddl_log WHERE id = $1::bigint`, [id]);
      if ((rowCount ?? 0) > 0) return;
      await sleep(50);
    }
    throw new PgFailure('timeout', `${db}: reverse replication did not deliver a marker row within ${Math.round(timeoutMs / 1000)} s`);
  }
  const major = await serverMajor(source);
  while (Date.now() < until) {
    const sub = await readSubscription(source, o.reverseSub, major);
    const slot = await readSlot(target, o.reverseSlot, await serverMajor(target));
    if (sub?.workerPid && slot?.active) return;
    await sleep(100);
  }
  throw new PgFailure('timeout', `${db}: reverse subscription ${o.reverseSub} did not start streaming within ${Math.round(timeoutMs / 1000)} s`);
}

/** Removes everything prepareReverse made (rollback). */
export async function dropReverse(plan: Plan, s: Sessions, o: DatabaseObjects): Promise<void> {
  const source = await s.get(o, 'source');
  const target = await s.get(o, 'target');
  await dropSubscription(source, o.reverseSub, `source primary database ${JSON.stringify(o.database)}`);
  await dropPublication(target, o.reversePub);
  await dropCaptureTrigger(target, o.reverseDdlTrigger);
  await dropSlot(target, o.reverseSlot);
  if (plan.cfg.ddl_replication && (await hasAgentSchema(source))) {
    await ensureCaptureTrigger(source, o.forwardDdlTrigger, true);
  }
}

