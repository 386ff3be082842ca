/**
 * The migration's cluster-wide record in the CIB: its phase and the
 * database list it started with (lasting, in crm_config), and the cutover's
 * step, lease and outcome (live, on the resource: see ClusterState for why).
 */
import { ClusterState, type Timeout } from '../cluster/attributes';
import { CUTOVER_KEY } from './cutover/steps';

export type Phase = 'forward' | 'cutover' | 'complete';

const LIVE_KEYS: ReadonlySet<string> = new Set(Object.values(CUTOVER_KEY));

/** The record of migration resource `instance`. */
export function migrationRecord(instance: string, timeoutMs: Timeout): ClusterState {
  return new ClusterState(instance, timeoutMs, (name) => LIVE_KEYS.has(name));
}

/**
 * The phase: `cutover` while a cutover runs (the live record says so; the
 * lasting phase is not written at its start, so that no crm_config change
 * precedes the VIP swap), else the recorded one.
 */
export function phaseOf(cib: ReadonlyMap<string, string>): Phase | undefined {
  const recorded = cib.get(KEY.phase) as Phase | undefined;
  return recorded !== 'complete' && cib.get(CUTOVER_KEY.state) === 'running' ? 'cutover' : recorded;
}

export const KEY = {
  phase: 'phase',
  databases: 'databases',
  startedAt: 'started-at',
  completedAt: 'completed-at',
} as const;

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
