/**
 * The migration's cluster-wide record in the CIB: its phase, the database
 * list it started with, its history and the proofs of its switches
 * (lasting, in crm_config), and the running switch's step, lease and
 * outcome (live, on the resource: see ClusterState for why).
 *
 * Phases: forward (production on the source, forward replication) →
 * cutover → reverse (production on the target, the way back watched) →
 * failback → forward again …, until finish → finishing (the way back being
 * removed; nothing watches or repairs it any more) → finished.
 */
import { ClusterState, type Timeout } from '../cluster/attributes';
import { CUTOVER_KEY } from './cutover/steps';

/** Lasting phases; `cutover` and `failback` are read from the live record while a switch runs. */
export type Phase = 'forward' | 'reverse' | 'finishing' | 'finished' | 'cutover' | 'failback';

const LIVE_KEYS: ReadonlySet<string> = new Set(Object.values(CUTOVER_KEY));

/** The record of migration resource `instance`. */
export function migrationRecord(instance: string, timeoutMs: Timeout): ClusterState {
  return new ClusterState(instance, timeoutMs, (name) => LIVE_KEYS.has(name));
}

export const KEY = {
  phase: 'phase',
  databases: 'databases',
  startedAt: 'started-at',
  completedAt: 'completed-at',
  finishedAt: 'finished-at',
  /** JSON list of the migration's events (see HistoryEvent). */
  history: 'history',
  /** How many switches completed; the proof of the n-th is `proof-<n>`. */
  switches: 'switches',
} as const;

export const proofKey = (n: number) => `proof-${n}`;

/**
 * The phase: the switch's kind while one runs (or is blocked past its
 * swap), else the recorded one. A record of the first release says
 * `complete` for a migration that ended; it counts as finished.
 */
export function phaseOf(cib: ReadonlyMap<string, string>): Phase | undefined {
  const recorded = cib.get(KEY.phase);
  const state = cib.get(CUTOVER_KEY.state);
  if (recorded === 'complete' || recorded === 'finished') return 'finished';
  if (state === 'running' || state === 'blocked') return cib.get(CUTOVER_KEY.kind) === 'failback' ? 'failback' : 'cutover';
  if (recorded === 'finishing') return 'finishing';
  return recorded === 'reverse' ? 'reverse' : recorded === 'forward' ? 'forward' : undefined;
}

export interface HistoryEvent {
  readonly at: string;
  readonly event: string;
  readonly detail?: string;
}

const HISTORY_LIMIT = 60;

export function parseHistory(value: string | undefined): HistoryEvent[] {
  try {
    const v: unknown = JSON.parse(value ?? '[]');
    return Array.isArray(v) ? (v.filter((e) => typeof e?.at === 'string' && typeof e?.event === 'string') as HistoryEvent[]) : [];
  } catch {
    return [];
  }
}

/** The history with one event appended (the oldest dropped beyond HISTORY_LIMIT, the first kept). */
export function withEvent(value: string | undefined, event: string, detail?: string, at = new Date()): string {
  const list = parseHistory(value);
  list.push({ at: at.toISOString(), event, ...(detail ? { detail } : {}) });
  const kept = list.length > HISTORY_LIMIT ? [list[0]!, ...list.slice(list.length - HISTORY_LIMIT + 1)] : list;
  return JSON.stringify(kept);
}

export function parseBaseline(value: string | undefined): string[] | undefined {
  if (value === undefined) return undefined;
  try {
    const parsed: unknown = JSON.parse(value);
    return Array.isArray(parsed) && parsed.every((d) => typeof d === 'string') ? parsed : undefined;
  } catch {
    return undefined;
  }
}

export interface BaselineDiff {
  readonly added: readonly string[];
  readonly removed: readonly string[];
}

/** How the configured list differs from the recorded one (order does not matter). */
export function diffBaseline(recorded: readonly string[], current: readonly string[]): BaselineDiff {
  return {
    added: current.filter((d) => !recorded.includes(d)),
    removed: recorded.filter((d) => !current.includes(d)),
  };
}
