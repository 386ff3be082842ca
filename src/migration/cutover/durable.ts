/**
 * What the drained slots confirmed is on the new side's synchronous
 * standbys too. An apply worker commits with synchronous_commit=off and
 * confirms a change once it is on its own primary's disk, whatever the
 * standbys have: without this step a failover of the new side right after
 * the switch could promote a standby without the last replicated writes,
 * which the old side's slot would never send again.
 *
 * The proof is one commit of the switch's own, with synchronous_commit=on,
 * on the subscriber's primary (a transactional logical message: a
 * transaction that writes no WAL commits without waiting for standbys, and
 * decoding plugins ignore the message unless asked), right before the swap
 * and at the end of every final proof: WAL is one sequence, so once its synchronous standbys
 * (as synchronous_standby_names counts them, FIRST or ANY) have flushed that
 * commit, they have every change applied before it — the replicated ones,
 * and the switch's own writes there (sequence values, the way back's
 * objects), which commit locally without waiting (sessions.ts). Without
 * synchronous standbys the commit does not wait.
 */
import type pg from 'pg';
import type { CutoverContext } from './context';
import { CutoverAbort } from './context';
import { subscriberOf } from '../direction';

/** Waits (until `deadline`) for the subscriber's synchronous standbys to flush everything applied so far. */
export async function proveDurable(ctx: CutoverContext, deadline: number, what: string): Promise<void> {
  const side = subscriberOf(ctx.move.drain);
  const o = ctx.dbs[0]!;
  const c = await ctx.sessions.get(o, side);
  const waitMs = Math.max(1_000, deadline - Date.now());
  const t0 = Date.now();
  let settled = false;
  let timedOut = false;
  // The server's statement_timeout would end the wait and let the commit report success (committed
  // locally, not replicated): the switch's own timer decides instead, and cancels the wait itself.
  const config = {
    text: "SET statement_timeout = 0; BEGIN; SET LOCAL synchronous_commit = 'on'; SELECT pg_logical_emit_message(true, 'pgtwin-migrate', 'durable'), current_setting('synchronous_standby_names') AS names; COMMIT; RESET statement_timeout",
    // node-postgres' own limit (per query; not in its types) stays above the switch's.
    query_timeout: waitMs + 10_000,
  };
  const commit = c.query(config as unknown as pg.QueryConfig).finally(() => (settled = true));
  const timer = setTimeout(() => {
    if (settled) return;
    timedOut = true;
    void ctx.sessions.cancel(o, side).catch((err: Error) => ctx.log.warn(`${ctx.move.kind}: cannot cancel the wait for the ${side}'s synchronous standbys: ${err.message}`));
  }, waitMs);
  let failure: unknown;
  await commit.catch((err: unknown) => (failure = err));
  clearTimeout(timer);
  if (failure !== undefined && !timedOut) throw failure;
  if (timedOut) {
    // The session may still be waiting (a cancel that did not arrive), or be left in an aborted
    // transaction or without its statement_timeout: the switch's sessions are opened anew.
    ctx.sessions.forgetAll();
    const names = await ctx.sessions
      .get(o, side)
      .then((s) => s.query<{ names: string }>("SELECT current_setting('synchronous_standby_names') AS names"))
      .then((r) => r.rows[0]!.names)
      .catch(() => '?');
    throw new CutoverAbort(
      `${what}: the ${side}'s synchronous standbys (synchronous_standby_names='${names}') did not confirm the replicated changes within sync_timeout=${ctx.plan.cfg.sync_timeout}s; a failover there would lose them: check pg_stat_replication on the ${side} primary`,
    );
  }
  const ms = Date.now() - t0;
  // One result per statement; the names come with the logical message.
  const results = (await commit) as unknown as Array<pg.QueryResult<{ names?: string }>>;
  const names = results.find((r) => r.rows?.[0]?.names !== undefined)?.rows[0]?.names ?? '';
  ctx.proof.durable = names ? `the ${side}'s synchronous standbys (${names}) confirmed after ${ms} ms` : `the ${side} has no synchronous standby (synchronous_standby_names is empty)`;
  if (ms >= 100) ctx.log.info(`${ctx.move.kind}: ${ctx.proof.durable}`);
}
