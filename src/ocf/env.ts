/**
 * What Pacemaker tells an agent through its environment, beside the
 * parameters (OCF_RESKEY_<name>), read once per process.
 */
export interface OcfEnv {
  /** OCF_RESOURCE_INSTANCE: the resource id, e.g. "migration-forward" (clone suffix kept). */
  readonly instance: string;
  /** OCF_RESKEY_CRM_meta_interval in ms; 0 for a probe or a one-shot action. */
  readonly intervalMs: number;
  /** OCF_RESKEY_CRM_meta_timeout in ms, when Pacemaker (or ocf-tester) gave one. */
  readonly timeoutMs: number | undefined;
  /** OCF_CHECK_LEVEL: 0 (default) or 10 for the deep checks. */
  readonly checkLevel: number;
  /** HA_RSCTMP: the directory of per-boot resource markers. */
  readonly rscTmp: string;
  readonly debug: boolean;
  readonly logFacility: string | undefined;
  readonly logFile: string | undefined;
  readonly debugLogFile: string | undefined;
}

function intOr(value: string | undefined, fallback: number): number {
  if (value === undefined || !/^\d+$/.test(value.trim())) return fallback;
  return Number(value.trim());
}

/** The longest delay a Node.js timer holds; a longer one fires at once. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

export function readOcfEnv(env: NodeJS.ProcessEnv = process.env): OcfEnv {
  const timeout = env.OCF_RESKEY_CRM_meta_timeout;
  const facility = env.HA_LOGFACILITY?.trim();
  return {
    instance: env.OCF_RESOURCE_INSTANCE?.trim() || 'pgtwin-migrate',
    intervalMs: intOr(env.OCF_RESKEY_CRM_meta_interval, 0),
    // About 24.8 days is more than any operation gets; beyond it timers would overflow.
    timeoutMs: timeout !== undefined && /^\d+$/.test(timeout.trim()) ? Math.min(Number(timeout.trim()), MAX_TIMER_MS) : undefined,
    checkLevel: intOr(env.OCF_CHECK_LEVEL, 0),
    rscTmp: env.HA_RSCTMP?.trim() || '/run/resource-agents',
    debug: ['1', 'yes', 'true', 'on'].includes((env.HA_debug ?? '').trim().toLowerCase()),
    logFacility: facility && facility !== 'none' ? facility : undefined,
    logFile: env.HA_LOGFILE?.trim() || undefined,
    debugLogFile: env.HA_DEBUGLOG?.trim() || undefined,
  };
}

/** A monitor with interval 0 is a probe: Pacemaker asks "is it running here?" */
export function isProbe(action: string, env: OcfEnv): boolean {
  return action === 'monitor' && env.intervalMs === 0;
}

/** The resource id without a clone instance suffix (":0"), safe for attribute names. */
export function baseInstance(env: OcfEnv): string {
  return env.instance.replace(/:\d+$/, '');
}
