/**
 * Time budget of one action. Pacemaker passes the operation timeout in
 * OCF_RESKEY_CRM_meta_timeout; every child process, query and wait gets a
 * share of what is left, so the agent answers before Pacemaker has to kill it.
 */
export class Deadline {
  private readonly endsAt: number;

  constructor(
    readonly totalMs: number,
    private readonly now: () => number = Date.now,
  ) {
    this.endsAt = now() + totalMs;
  }

  /** Milliseconds left before the action must have answered. */
  remainingMs(): number {
    return Math.max(0, this.endsAt - this.now());
  }

  /**
   * Timeout for one step: at most `preferredMs`, and never past the point
   * where the agent still has `reserveMs` left to report.
   */
  stepMs(preferredMs: number, reserveMs = this.reserve()): number {
    return Math.max(100, Math.min(preferredMs, this.remainingMs() - reserveMs));
  }

  expired(): boolean {
    return this.remainingMs() <= 0;
  }

  /** What to keep back for reporting: 10% of the budget, between 0.5 s and 5 s. */
  reserve(): number {
    return Math.min(5000, Math.max(500, this.totalMs * 0.1));
  }
}

/** Defaults per action when Pacemaker did not say (they mirror the meta-data). */
export const DEFAULT_ACTION_TIMEOUT_MS: Record<string, number> = {
  start: 600_000,
  stop: 60_000,
  monitor: 30_000,
  'reload-agent': 30_000,
  'validate-all': 30_000,
  'meta-data': 5_000,
};

export function actionDeadline(action: string, timeoutMs: number | undefined): Deadline {
  return new Deadline(timeoutMs ?? DEFAULT_ACTION_TIMEOUT_MS[action] ?? 60_000);
}
