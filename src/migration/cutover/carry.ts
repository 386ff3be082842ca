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
import { objectsOf, subscriberOf } from '../direction';
import { changesByOrigin, pgoutputProtoVersion } from '../../pg/slots';
import { serverMajor } from '../../pg/server';
import { bytesBehind } from '../../pg/lsn';
import { sleep } from '../parallel';

export async function copySequences(ctx: CutoverContext): Promise<void> {
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
  ctx.log.info(`${move.kind}: ${total} sequence value(s) copied and verified`);
}

/**
 * Failback: what the final proof carried over to the source was written
 * there by the way back's apply worker, after the forward slot was made; the
 * forward subscription (origin = any, so that rows reaching the source
 * through its own logical replication are forwarded) would send it back to
 * the target, which has it — a duplicate key stops forward replication.
 * When every change the forward slot holds came through the way back's
 * subscription, the slot is moved past them (the source is still fenced, so
 * nothing else belongs there); when anything else is there too, nothing is
 * skipped and the reason is logged. Runs in every failback's final proof:
 * a retry or a takeover may follow a carry-over it did not see.
 */
export async function keepCarriedFromLooping(ctx: CutoverContext): Promise<void> {
  const { move } = ctx;
  if (move.kind !== 'failback') return;
  await ctx.eachDatabase(`keeping carried-over changes out of ${move.back} replication`, async (o) => {
    const source = await ctx.sessions.get(o, subscriberOf(move.drain));
    const { rows } = await source.query<{ origin: string | null; upto: string }>(
      `SELECT (SELECT 'pg_' || oid FROM pg_subscription WHERE subname = $1 AND subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())) AS origin,
              pg_current_wal_insert_lsn()::text AS upto`,
      [objectsOf(o, move.drain).sub],
    );
    const { origin, upto } = rows[0]!;
    if (!origin) return; // no way back subscription: nothing was carried over through it
    const host = await ctx.sessions.slots(o, move.back);
    // The slot may live on the source's standby (source_node_role=Unpromoted): it decodes what it has replayed.
    for (const until = Date.now() + 10_000; ; ) {
      const pos = (await host.query<{ pos: string }>("SELECT (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_insert_lsn() END)::text AS pos")).rows[0]!.pos;
      if (bytesBehind(pos, upto) === 0) break;
      if (Date.now() > until) throw new CutoverAbort(`${JSON.stringify(o.database)}: the ${move.back} slot's server has not replayed ${upto} within 10 s`);
      await sleep(50);
    }
    const slot = objectsOf(o, move.back).slot;
    const changes = await changesByOrigin(host, slot, objectsOf(o, move.back).pub, pgoutputProtoVersion(await serverMajor(host)), origin, upto);
    if (changes.looped === 0) return;
    if (changes.other > 0) {
      ctx.log.err(
        `${move.kind}: ${JSON.stringify(o.database)}: slot ${slot} holds ${changes.looped} change(s) carried over from the ${move.from} and ${changes.other} other change(s) written on the ${move.to} in replica mode; none is skipped, so ${move.back} replication will meet the carried-over rows on the ${move.from} (an apply error on a duplicate key): remove them there, or skip the transaction (ALTER SUBSCRIPTION ... SKIP)`,
      );
      return;
    }
    await host.query('SELECT pg_replication_slot_advance($1, $2::pg_lsn)', [slot, upto]);
    ctx.log.warn(`${move.kind}: ${JSON.stringify(o.database)}: slot ${slot} moved past the ${changes.looped} change(s) carried over from the ${move.from}, which has them`);
  });
}
