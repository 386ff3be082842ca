/**
 * The write fences as the phase wants them (DESIGN §6 "never two writable
 * clusters", §6b): in phase forward the source takes writes and the target
 * refuses them (only replication writes there); in phase reverse the other
 * way round. Start installs them; the monitor checks them (each database
 * about once a minute, all at once after a switch that could not finish its
 * rollback) and repairs a fence left in the wrong state when no switch runs.
 */
import type { Plan } from './plan';
import { connectOptions } from './plan';
import type { DatabaseObjects } from './names';
import type { ClusterSide } from './direction';
import type pg from 'pg';
import { withClient } from '../pg/connection';
import { fenceState, installFence, installFenceFunctions, fence, lift } from '../pg/fence';
import { settleAll, sleep } from './parallel';
import { sqlState } from '../pg/errors';
import { phaseOf } from './cib-state';

export type SteadyPhase = 'forward' | 'reverse';

/** Should this side be fenced in this phase? */
export function fencedIn(phase: SteadyPhase, side: ClusterSide): boolean {
  return phase === 'forward' ? side === 'target' : side === 'source';
}

/**
 * Installs the fence of one database on both sides in the phase's state.
 * Creating a trigger takes a short lock on each table: on a busy production
 * table that waits for writes in flight, so it is retried a few times.
 */
export async function installFences(plan: Plan, o: DatabaseObjects, phase: SteadyPhase): Promise<void> {
  for (const side of ['source', 'target'] as const) {
    const ep = side === 'source' ? plan.sourcePrimary : plan.targetPrimary;
    await withClient(ep, o.database, connectOptions(plan, 60_000), async (c) => {
      for (let attempt = 1; ; attempt++) {
        try {
          await installFence(c, fencedIn(phase, side), 2_000);
          return;
        } catch (err) {
          if (!['55P03', '40P01'].includes(sqlState(err) ?? '') || attempt >= 8) throw err;
          await sleep(250 * attempt);
        }
      }
    });
  }
}

/** Only the functions and event triggers (before a schema copy onto the target needs them). */
export async function installFenceObjects(plan: Plan, o: DatabaseObjects, side: ClusterSide): Promise<void> {
  const ep = side === 'source' ? plan.sourcePrimary : plan.targetPrimary;
  await withClient(ep, o.database, connectOptions(plan), (c) => installFenceFunctions(c));
}

export interface FenceProblem {
  readonly database: string;
  readonly side: ClusterSide;
  /** One line: what was found, and whether it was repaired. */
  readonly message: string;
  readonly repaired: boolean;
}

/** A database whose fences are checked: on both clusters, or only on the one that must refuse writes. */
export interface FenceCheck {
  readonly o: DatabaseObjects;
  readonly onlyFenced?: boolean;
}

/**
 * Checks the fences of these databases against the phase and repairs what
 * is wrong (a repair that fails is reported unrepaired).
 */
export async function checkFences(
  plan: Plan,
  phase: SteadyPhase,
  checks: readonly FenceCheck[],
  keepSession: (o: DatabaseObjects) => boolean = () => false,
): Promise<FenceProblem[]> {
  const problems: FenceProblem[] = [];
  const objects = checks.map((c) => c.o);
  // Both sides of a database at once: each look opens a session, whose cost is the server's, not ours.
  const looks = checks.flatMap(({ o, onlyFenced }) =>
    (['source', 'target'] as const).filter((side) => !onlyFenced || fencedIn(phase, side)).map((side) => ({ o, side })),
  );
  await settleAll(looks, 16, async ({ o, side }) => {
    const ep = side === 'source' ? plan.sourcePrimary : plan.targetPrimary;
    const want = fencedIn(phase, side);
    const db = JSON.stringify(o.database);
    // The observation's session timeouts: a kept session is handed on to it.
    const opts = connectOptions(plan, 8_000);
    try {
      const read = (c: pg.Client) => fenceState(c);
      const state = plan.sessions && keepSession(o) ? await plan.sessions.use(ep, o.database, opts, read) : await withClient(ep, o.database, opts, read);
      if (state && state.fenced === want && state.strays.length === 0) return;
      const what = !state
        ? 'has no write fence installed'
        : state.fenced !== want
          ? `is ${state.fenced ? 'fenced (read-only)' : 'not fenced (writable)'} in phase ${phase}`
          : `has ${state.strays.length} table(s) whose fence trigger is in the wrong state (${state.strays.slice(0, 3).join(', ')})`;
      // The phase may have ended since this monitor read it (a finish or a switch began): then
      // the fences are theirs to change, and a repair here would undo what they just did.
      const now = phaseOf(await plan.state.readAll()) ?? 'forward';
      if (now !== phase) {
        plan.log.info(`${db} on the ${side} ${what}; not repaired: the phase is ${now} now, no longer ${phase}`);
        return;
      }
      try {
        // A session of its own: whatever a failed repair leaves behind is never handed on.
        await withClient(ep, o.database, connectOptions(plan), async (c) => {
          if (!state) await installFence(c, want, 2_000);
          else if (want) await fence(c, { quiesceMs: plan.cfg.quiesce_timeout * 1000, agentPids: [], onEnd: () => undefined });
          else await lift(c, 2_000);
        });
        plan.log.warn(`${db} on the ${side} ${what}; repaired`);
        problems.push({ database: o.database, side, message: `${db} on the ${side} ${what}; repaired`, repaired: true });
      } catch (err) {
        problems.push({ database: o.database, side, message: `${db} on the ${side} ${what}, and the repair failed: ${(err as Error).message}`, repaired: false });
      }
    } catch (err) {
      problems.push({ database: o.database, side, message: `${db} on the ${side}: cannot check the write fence: ${(err as Error).message}`, repaired: false });
    }
  });
  // In list order, source before target: the monitor names the first one left unrepaired.
  const rank = new Map(objects.map((o, i) => [o.database, i]));
  return problems.sort((a, b) => rank.get(a.database)! - rank.get(b.database)! || (a.side === b.side ? 0 : a.side === 'source' ? -1 : 1));
}
