/**
 * Guarantees that an action ends on time and with the code it decided:
 * - before the Pacemaker timeout, a deadline timer reports the step that hung
 *   and exits, so Pacemaker never has to kill the agent;
 * - once the action has decided, an unref'd timer ends the process if some
 *   forgotten handle (socket, timer, child) would keep it alive;
 * - a process that runs out of work without a decision exits 1 with a reason,
 *   never with a silent 0.
 */
import { writeExitReason } from './exit-reason';
import { log } from './log';
import type { Deadline } from './deadline';
import { MAX_TIMER_MS } from './env';

let step = 'starting';
let decided = false;

/** Names what the action is doing, for the reason given if it hangs. */
export function setStep(name: string): void {
  step = name;
  log().debug(`step: ${name}`);
}

export function currentStep(): string {
  return step;
}

export function armDeadline(action: string, deadline: Deadline, reserveMs = 300): void {
  // A timer longer than 2^31 - 1 ms would fire at once.
  const ms = Math.min(MAX_TIMER_MS, Math.max(0, deadline.remainingMs() - reserveMs));
  const timer = setTimeout(() => {
    const reason = `${action} did not finish within ${Math.round(deadline.totalMs / 1000)} s (hung at: ${step})`;
    log().err(reason);
    writeExitReason(reason);
    process.exit(1);
  }, ms);
  timer.unref();
}

/** From here on, the process must not end without a decided code. */
export function guardExit(): void {
  process.once('exit', (code) => {
    if (!decided && code === 0) {
      writeExitReason(`action ended without a result (last step: ${step}); this is a bug, please report it`);
      process.exitCode = 1;
    }
  });
}

/** Records the decided code and makes sure the process actually ends with it. */
export function finish(code: number, graceMs = 1500): void {
  decided = true;
  process.exitCode = code;
  const timer = setTimeout(() => {
    const handles = process.getActiveResourcesInfo().join(', ');
    log().debug(`exit watchdog: still alive after ${graceMs} ms (${handles}); exiting with ${code}`);
    process.exit(code);
  }, graceMs);
  timer.unref();
}
