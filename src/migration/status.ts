/** What `pgtwin-migrate status` reports: the CIB record plus a fresh look at every database. */
import type { Plan } from './plan';
import { observeAll, COMPLETE } from './observe';
import { assessDatabase, type DatabaseHealth } from './health';
import { KEY, phaseOf, parseHistory, proofKey, type HistoryEvent } from './cib-state';
import { decodeProof, type Proof } from './cutover/proof';

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

export async function collectStatus(plan: Plan): Promise<StatusReport> {
  const record = await plan.state.readAll();
  // The proofs are long and have their own view (status --proof).
  const cib = Object.fromEntries([...record].filter(([k]) => !/^proof-\d+$/.test(k) && k !== KEY.history));
  const phase = phaseOf(record) ?? 'not started';
  const base = { resource: plan.instance, phase, startedAt: cib[KEY.startedAt], cib, history: parseHistory(record.get(KEY.history)) };
  if (phase === 'finished' || phase === 'finishing') return { ...base, databases: [], reverse: [] };
  // Production on the target (or moving back): the way back is what is watched.
  const direction = phase === 'reverse' || phase === 'failback' ? 'reverse' : 'forward';
  const views = await observeAll(plan, COMPLETE, 50, direction);
  const databases = views.map((v) => ({
    ...assessDatabase(v, { expectEnabled: phase !== 'cutover' && phase !== 'failback', lagThreshold: plan.cfg.lag_threshold }),
    observedAt: v.observedAt.toISOString(),
  }));
  const reverse =
    direction === 'reverse'
      ? databases.map((d) => ({ database: d.database, state: d.state === 'broken' ? ('broken' as const) : ('streaming' as const), problem: d.problem, lagBytes: d.lagBytes, observedAt: d.observedAt }))
      : [];
  return { ...base, databases, reverse };
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
