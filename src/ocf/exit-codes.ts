/**
 * OCF return codes (OCF resource agent API 1.1, section "Return codes") plus the
 * Pacemaker extensions this agent uses.
 */
export const OCF = {
  SUCCESS: 0,
  ERR_GENERIC: 1,
  ERR_ARGS: 2,
  ERR_UNIMPLEMENTED: 3,
  ERR_PERM: 4,
  ERR_INSTALLED: 5,
  ERR_CONFIGURED: 6,
  NOT_RUNNING: 7,
  /** Pacemaker ≥ 2.1: the resource runs but something needs attention; not a failure. */
  DEGRADED: 190,
} as const;

export type OcfCode = (typeof OCF)[keyof typeof OCF];

const NAMES: Record<number, string> = Object.fromEntries(
  Object.entries(OCF).map(([name, code]) => [code, `OCF_${name}`]),
);

export function ocfCodeName(code: number): string {
  return NAMES[code] ?? `exit ${code}`;
}

/**
 * An error that ends an action with a definite OCF code. `reason` becomes the
 * `ocf-exit-reason:` line, so it must be one line, most useful words first,
 * and never carry a secret.
 */
export class OcfError extends Error {
  readonly code: OcfCode;
  constructor(code: OcfCode, reason: string, options?: { cause?: unknown }) {
    super(reason, options);
    this.name = 'OcfError';
    this.code = code;
  }
}

export const configError = (reason: string) => new OcfError(OCF.ERR_CONFIGURED, reason);
export const installError = (reason: string) => new OcfError(OCF.ERR_INSTALLED, reason);
export const genericError = (reason: string, cause?: unknown) =>
  new OcfError(OCF.ERR_GENERIC, reason, { cause });
