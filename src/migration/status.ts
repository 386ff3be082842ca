/** What `pgtwin-migrate status` reports: the CIB record plus a fresh look at every database. */
import type { Plan } from './plan';
import { connectOptions } from './plan';
import { observeAll } from './observe';
import { assessDatabase, type DatabaseHealth } from './health';
import { KEY, phaseOf, parseHistory, proofKey, type HistoryEvent } from './cib-state';
import { decodeProof, type Proof } from './cutover/proof';
import { settleAll } from './parallel';
import { connect, describe } from '../pg/connection';
import { classify } from '../pg/errors';
import { readSubscription } from '../pg/subscription';
import { readSlot } from '../pg/slots';
import { serverMajorOnce } from '../pg/server';

export interface ReverseHealth {
  readonly database: string;
  /** streaming: the reverse subscription applies on the source; broken: it does not (problem says why). */
  readonly state: 'streaming' | 'broken';
  readonly problem: string | undefined;
  /** WAL the target holds for the reverse slot. */
  readonly lagBytes: number | null;
  readonly observedAt: string;
}

export interface StatusReport {
  readonly resource: string;
  readonly phase: string;
  readonly startedAt: string | undefined;
  readonly cib: Readonly<Record<string, string>>;
  /** The migration's story: forward started, copy done, each switch, finish (from the CIB, the same on every node). */
  readonly history: readonly HistoryEvent[];
  /** Forward replication, until the cutover completes. */
  readonly databases: ReadonlyArray<DatabaseHealth & { readonly observedAt: string }>;
  /** Reverse replication (target → source), once the cutover is complete: the way back. */
  readonly reverse: readonly ReverseHealth[];
}

export async function reverseHealth(plan: Plan): Promise<ReverseHealth[]> {
  const results = await settleAll(plan.cfg.objects, 16, async (o): Promise<ReverseHealth> => {
    const db = JSON.stringify(o.database);
    const observedAt = new Date().toISOString();
    const broken = (problem: string, lagBytes: number | null = null): ReverseHealth => ({ database: o.database, state: 'broken', problem, lagBytes, observedAt });
    let source;
    let target;
    try {
      source = await connect(plan.sourcePrimary, o.database, connectOptions(plan));
      target = await connect(plan.targetPrimary, o.database, connectOptions(plan));
      const sub = await readSubscription(source, o.reverseSub, await serverMajorOnce(source, `${plan.sourcePrimary.host}:${plan.sourcePrimary.port}`));
      const slot = await readSlot(target, o.reverseSlot, await serverMajorOnce(target, `${plan.targetPrimary.host}:${plan.targetPrimary.port}`));
      const lag = slot?.lagBytes ?? null;
      if (!sub) return broken(`${db}: reverse subscription ${o.reverseSub} is missing on the source`);
      if (!sub.enabled) return broken(`${db}: reverse subscription ${o.reverseSub} is disabled`, lag);
      if (!slot) return broken(`${db}: reverse slot ${o.reverseSlot} is missing on the target`);
      if (sub.workerPid === null) return broken(`${db}: the reverse apply worker is not running on the source`, lag);
      return { database: o.database, state: 'streaming', problem: undefined, lagBytes: lag, observedAt };
    } catch (err) {
      return broken(classify(err, describe(source ? plan.targetPrimary : plan.sourcePrimary, o.database)).message);
    } finally {
      await Promise.all([source?.end().catch(() => undefined), target?.end().catch(() => undefined)]);
    }
  });
  return results.map((r, i) =>
    r.status === 'fulfilled'
      ? r.value
      : { database: plan.cfg.objects[i]!.database, state: 'broken', problem: String(r.reason), lagBytes: null, observedAt: new Date().toISOString() },
  );
}

export async function collectStatus(plan: Plan): Promise<StatusReport> {
  const record = await plan.state.readAll();
  // The proofs are long and have their own view (status --proof).
  const cib = Object.fromEntries([...record].filter(([k]) => !/^proof-\d+$/.test(k) && k !== KEY.history));
  const phase = phaseOf(record) ?? 'not started';
  const base = { resource: plan.instance, phase, startedAt: cib[KEY.startedAt], cib, history: parseHistory(record.get(KEY.history)) };
  if (phase === 'reverse' || phase === 'failback') return { ...base, databases: [], reverse: await reverseHealth(plan) };
  if (phase === 'finished') return { ...base, databases: [], reverse: [] };
  const views = await observeAll(plan);
  const databases = views.map((v) => ({
    ...assessDatabase(v, { expectEnabled: phase !== 'cutover', lagThreshold: plan.cfg.lag_threshold }),
    observedAt: v.observedAt.toISOString(),
  }));
  return { ...base, databases, reverse: [] };
}

/** The proof of every completed switch, oldest first (status --proof). */
export async function collectProofs(plan: Plan): Promise<Proof[]> {
  const record = await plan.state.readAll();
  const n = Number(record.get(KEY.switches)) || 0;
  const out: Proof[] = [];
  for (let i = 1; i <= n; i++) {
    const p = decodeProof(record.get(proofKey(i)));
    if (p) out.push(p);
  }
  return out;
}
