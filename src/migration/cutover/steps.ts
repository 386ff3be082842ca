/**
 * The steps of a switch (cutover or failback, DESIGN §6) and the one rule
 * for a switch that was interrupted: before the VIP swap it rolls back, from
 * the swap on it rolls forward. The swap writes `swapped` in the same CIB
 * update as the addresses, so the recorded step never lies about which side
 * of the point of no return the switch is on.
 */
import type { SwitchKind } from '../direction';

/** The cutover's steps, in order (the back direction is prepared before the fence on PostgreSQL 16+). */
export const CUTOVER_STEPS = [
  'recheck',
  'prepare-reverse',
  'fence',
  'sync',
  'disable-forward',
  'sequences',
  'reverse-tables',
  'swap-vip',
  'swapped',
  'address',
  'final-proof',
  'lift',
  'enable-reverse',
  'drop-forward',
  'complete',
] as const;

/**
 * The failback's steps: the forward direction is created once the reverse
 * one is drained (its slot then holds nothing the target already has).
 */
export const FAILBACK_STEPS = [
  'recheck',
  'fence',
  'sync',
  'disable-reverse',
  'sequences',
  'prepare-forward',
  'swap-vip',
  'swapped',
  'address',
  'final-proof',
  'lift',
  'enable-forward',
  'drop-reverse',
  'complete',
] as const;

export type CutoverStep = (typeof CUTOVER_STEPS)[number];
export type FailbackStep = (typeof FAILBACK_STEPS)[number];
export type Step = CutoverStep | FailbackStep;

/** Every step name either switch records (for metrics and status). */
export const STEPS: readonly Step[] = [...new Set<Step>([...CUTOVER_STEPS, ...FAILBACK_STEPS])];

export const POINT_OF_NO_RETURN: Step = 'swapped';

export function stepsOf(kind: SwitchKind): readonly Step[] {
  return kind === 'failback' ? FAILBACK_STEPS : CUTOVER_STEPS;
}

export function isStep(s: string | undefined, kind: SwitchKind = 'cutover'): s is Step {
  return (stepsOf(kind) as readonly string[]).includes(s ?? '');
}

export function pastPointOfNoReturn(step: Step, kind: SwitchKind = 'cutover'): boolean {
  const steps = stepsOf(kind);
  return steps.indexOf(step) >= steps.indexOf(POINT_OF_NO_RETURN);
}

/** What a worker taking over an interrupted switch must do. */
export function recoveryFor(step: string | undefined, kind: SwitchKind = 'cutover'): 'rollback' | 'roll-forward' | 'nothing' {
  if (!isStep(step, kind)) return 'rollback';
  if (step === 'complete') return 'nothing';
  return pastPointOfNoReturn(step, kind) ? 'roll-forward' : 'rollback';
}

/**
 * Has a retried blocked switch got past where it was blocked, now that it
 * begins `step`? `blockedAt` is the step the blocked worker was at (recorded
 * apart, as `cutover-blocked-at`); a record without it (an earlier version)
 * shows the last recorded step, `swapped` inside the read-only window: then
 * the switch is past the blockage once it begins to lift the fence.
 */
export function pastBlockedStep(kind: SwitchKind, blockedAt: string, step: Step): boolean {
  const steps = stepsOf(kind);
  const exact = isStep(blockedAt, kind) && blockedAt !== 'swapped';
  return steps.indexOf(step) > (exact ? steps.indexOf(blockedAt as Step) : steps.indexOf('final-proof'));
}

/**
 * Outcome of the last switch, as the CIB records it:
 * running  a worker acts (or must be taken over);
 * blocked  past the swap, the production address does not lead to the new side yet: nothing more happens until it does;
 * failed   rolled back (or, past the swap, a step that must still be finished keeps failing);
 * complete done.
 */
export type SwitchState = 'running' | 'blocked' | 'failed' | 'complete';

export const CUTOVER_KEY = {
  kind: 'cutover-kind',
  state: 'cutover-state',
  step: 'cutover-step',
  lease: 'cutover-lease',
  error: 'cutover-error',
  startedAt: 'cutover-started-at',
  endedAt: 'cutover-ended-at',
  windowMs: 'cutover-window-ms',
  totalMs: 'cutover-total-ms',
  timings: 'cutover-timings',
  fenceLsn: 'cutover-fence-lsn',
  /** When the old side refused its first write. */
  fencedAt: 'cutover-fenced-at',
  /** When writes in flight were over and the fence position taken: no write is accepted after it. */
  fenceCompleteAt: 'cutover-fence-complete-at',
  /** When the new side took its first write (its fence lifted). */
  liftedAt: 'cutover-lifted-at',
  swappedAt: 'cutover-swapped-at',
  /** The step a blocked switch was blocked at (the recorded step is `swapped` inside the read-only window). */
  blockedAt: 'cutover-blocked-at',
  log: 'cutover-log',
  productionIp: 'vip-production-ip',
  targetIp: 'vip-target-ip',
  reverse: 'reverse-replication',
  /** cutover_ready must be seen false before another switch may start ("no" right after one ended). */
  armed: 'cutover-armed',
  /** Written to learn, after an update that timed out, whether it landed (see ClusterState.barrier). */
  barrier: 'cutover-barrier',
} as const;

/**
 * Should a monitor (or reload-agent) start a switch now? Only when asked,
 * in phase forward (cutover) or reverse (failback), when none runs, and when
 * cutover_ready has been seen false since the last one ended (a failed one
 * is acknowledged that way, and a completed one never runs again by itself).
 */
export function shouldLaunch(cutoverReady: boolean, phase: string | undefined, state: string | undefined, armed: string | undefined): boolean {
  if (!cutoverReady || armed === 'no') return false;
  if (phase !== undefined && phase !== 'forward' && phase !== 'reverse') return false;
  return state !== 'running' && state !== 'blocked' && state !== 'failed';
}

/** Seeing cutover_ready=false arms the next switch (and acknowledges a failed one). */
export function shouldArm(cutoverReady: boolean, state: string | undefined, armed: string | undefined): boolean {
  return !cutoverReady && state !== 'running' && state !== 'blocked' && (armed === 'no' || state === 'failed');
}
