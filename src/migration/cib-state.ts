/**
 * The migration's cluster-wide record in the CIB (one property set per
 * resource instance): its phase, the database list it started with, and
 * (during a cutover) the step, lease and outcome.
 */
export type Phase = 'forward' | 'cutover' | 'complete';

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
