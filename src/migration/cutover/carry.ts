/**
 * What a switch carries over by itself: sequences from the old side to the
 * new one once writes are fenced (logical replication does not carry them),
 * every value verified and recorded in the proof; and, in a failback, the
 * changes the final proof carried over kept from coming back.
 */
import type { CutoverContext } from './context';
import { CutoverAbort } from './context';
import { proofOf } from './proof';
import { readSequences, writeSequences, sequenceMismatches } from '../../pg/sequences';
import { objectsOf } from '../direction';
import { changesByOrigin, pgoutputProtoVersion, readSlots } from '../../pg/slots';
import { serverMajor } from '../../pg/server';
import { bytesBehind } from '../../pg/lsn';
import { sleep } from '../parallel';

export async function copySequences(ctx: CutoverContext, again?: 'again'): Promise<void> {
  const { move } = ctx;
  let total = 0;
  await ctx.eachDatabase('copying sequences', async (o) => {
    const from = await ctx.sessions.get(o, move.from);
    const to = await ctx.sessions.get(o, move.to);
    const values = await readSequences(from);
    const missing = await writeSequences(to, values);
    if (missing.length > 0) throw new CutoverAbort(`${JSON.stringify(o.database)}: sequence(s) missing on the ${move.to}: ${missing.slice(0, 5).join(', ')}`);
    const mismatched = sequenceMismatches(values, await readSequences(to));
    if (mismatched.length > 0) throw new CutoverAbort(`${JSON.stringify(o.database)}: sequence values differ after the copy: ${mismatched.slice(0, 5).join(', ')}`);
    proofOf(ctx.proof, o.database).sequences = values.map((v) => ({ name: `${v.schema}.${v.name}`, lastValue: v.lastValue, isCalled: v.isCalled }));
    total += values.length;
  });
  ctx.log.info(`${move.kind}: ${total} sequence value(s) copied${again ? ' again' : ''} and verified`);
}

/**
 * What the final proof carried over was written on the new side by the
 * drained subscription's apply worker, after the way back's slot was made
 * there. A way back that does not filter by origin — the failback's new
 * forward direction (origin = any, so that rows reaching the source through
 * its own logical replication are forwarded), or a cutover's reverse one on
 * a subscriber older than PostgreSQL 16 — would send it back to the old
 * side, which has it: a duplicate key stops that replication.
 *
 * Takeover-safe signal: the drained subscription's origin has applied
 * something (its local_lsn) past where the back slot starts. Then, once the
 * slot's server has that position (it may be the source's standby), the slot
 * is peeked up to its server's flush (or replay) position and, when every
 * change there came through the drained subscription, advanced to exactly
 * that position, and the advance made durable (CHECKPOINT). When other
 * changes sit among them nothing is skipped, and the log names the
 * carried-over transactions to skip by hand.
 */
export async function keepCarriedFromLooping(ctx: CutoverContext): Promise<void> {
  const { move } = ctx;
  await ctx.eachDatabase(`keeping carried-over changes out of ${move.back} replication`, async (o) => {
    if (move.kind === 'cutover' && (await serverMajor(await ctx.sessions.get(o, move.from))) >= 16) return; // origin = none there
    const back = objectsOf(o, move.back);
    const { rows } = await (await ctx.sessions.get(o, move.to)).query<{ origin: string | null; applied: string | null }>(
      `SELECT s.origin, (SELECT local_lsn::text FROM pg_replication_origin_status r WHERE r.external_id = s.origin) AS applied
         FROM (SELECT 'pg_' || oid AS origin FROM pg_subscription
                WHERE subname = $1 AND subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())) s`,
      [objectsOf(o, move.drain).sub],
    );
    const applied = rows[0]?.applied;
    if (!rows[0]?.origin || !applied) return;
    const host = await ctx.sessions.slots(o, move.back);
    const major = await serverMajor(host);
    const start = (await readSlots(host, [back.slot], major)).get(back.slot)?.confirmedFlushLsn;
    if (!start || bytesBehind(start, applied) === 0) return; // nothing applied since the slot was made
    // Peek and advance to one limit the slot's server has (flushed, or replayed on a standby).
    const until = Date.now() + ctx.plan.cfg.sync_timeout * 1000;
    let limit: string;
    for (;;) {
      limit = (await host.query<{ pos: string }>('SELECT (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_flush_lsn() END)::text AS pos')).rows[0]!.pos;
      if (bytesBehind(limit, applied) === 0) break;
      if (Date.now() > until) throw new CutoverAbort(`${JSON.stringify(o.database)}: the server of slot ${back.slot} has reached ${limit}, not ${applied} (what was carried over), within sync_timeout=${ctx.plan.cfg.sync_timeout}s`);
      await sleep(50);
    }
    const changes = await changesByOrigin(host, back.slot, back.pub, pgoutputProtoVersion(major), rows[0].origin, limit);
    if (changes.looped.length === 0) return;
    if (changes.other > 0) {
      ctx.log.err(
        `${move.kind}: ${JSON.stringify(o.database)}: slot ${back.slot} holds ${changes.looped.length} transaction(s) carried over from the ${move.from} among ${changes.other} other change(s); none is skipped, so ${move.back} replication will meet the carried-over rows on the ${move.from} (a duplicate key): skip them there, in a session with session_replication_role = replica (the fence refuses DDL), with ALTER SUBSCRIPTION ${back.sub} SKIP (lsn = …), their commit positions being ${changes.looped.slice(0, 5).join(', ')}`,
      );
      return;
    }
    await host.query('SELECT pg_replication_slot_advance($1, $2::pg_lsn)', [back.slot, limit]);
    // An advance is kept only from the next checkpoint on: a restart before it would undo it.
    await host.query('CHECKPOINT');
    ctx.log.warn(`${move.kind}: ${JSON.stringify(o.database)}: slot ${back.slot} moved to ${limit}, past ${changes.looped.length} transaction(s) carried over from the ${move.from}, which has them`);
  });
}
