/**
 * The cutover's steps (DESIGN §6) and the one rule for a cutover that was
 * interrupted: before the VIP swap it rolls back, from the swap on it rolls
 * forward. The swap writes `swapped` in the same CIB update as the
 * addresses, so the recorded step never lies about which side of the point
 * of no return the cutover is on.
 */
export const STEPS = [
  'recheck',
  'prepare-reverse',
  'fence',
  'sync',
  'disable-forward',
  'sequences',
  'swap-vip',
  'swapped',
  'source-read-write',
  'enable-reverse',
  'drop-forward',
  'complete',
] as const;

export type Step = (typeof STEPS)[number];

export const POINT_OF_NO_RETURN: Step = 'swapped';

export function isStep(s: string | undefined): s is Step {
  return (STEPS as readonly string[]).includes(s ?? '');
}

export function pastPointOfNoReturn(step: Step): boolean {
  return STEPS.indexOf(step) >= STEPS.indexOf(POINT_OF_NO_RETURN);
}

/** What a worker taking over an interrupted cutover must do. */
export function recoveryFor(step: string | undefined): 'rollback' | 'roll-forward' | 'nothing' {
  if (!isStep(step)) return 'rollback';
  if (step === 'complete') return 'nothing';
  return pastPointOfNoReturn(step) ? 'roll-forward' : 'rollback';
}

/** Outcome of the last cutover, as the CIB records it. */
export type CutoverState = 'running' | 'failed' | 'complete' | 'reset';

export const CUTOVER_KEY = {
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
  /** When the source was made read-only (first write refused). */
  fencedAt: 'cutover-fenced-at',
  /** When in-flight transactions were done and the fence position taken: no write is accepted after it. */
  fenceCompleteAt: 'cutover-fence-complete-at',
  log: 'cutover-log',
  productionIp: 'vip-production-ip',
  targetIp: 'vip-target-ip',
  reverse: 'reverse-replication',
} as const;

/**
 * Should a monitor (or reload-agent) start a cutover now? Only when asked,
 * during forward replication, and not after a failure that the operator has
 * not acknowledged by setting cutover_ready to false first.
 */
export function shouldLaunch(cutoverReady: boolean, phase: string | undefined, state: string | undefined): boolean {
  return cutoverReady && (phase === undefined || phase === 'forward') && state !== 'running' && state !== 'failed' && state !== 'complete';
}

/** Setting cutover_ready=false acknowledges a failed cutover: the next true may run again. */
export function shouldReset(cutoverReady: boolean, state: string | undefined): boolean {
  return !cutoverReady && state === 'failed';
}
