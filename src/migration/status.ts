/** What `pgtwin-migrate status` reports: the CIB record plus a fresh look at every database. */
import type { Plan } from './plan';
import { observeAll } from './observe';
import { assessDatabase, type DatabaseHealth } from './health';
import { KEY } from './cib-state';

export interface StatusReport {
  readonly resource: string;
  readonly phase: string;
  readonly startedAt: string | undefined;
  readonly cib: Readonly<Record<string, string>>;
  readonly databases: ReadonlyArray<DatabaseHealth & { readonly observedAt: string }>;
}

export async function collectStatus(plan: Plan): Promise<StatusReport> {
  const cib = Object.fromEntries(await plan.state.readAll());
  const phase = cib[KEY.phase] ?? 'not started';
  const views = await observeAll(plan);
  const databases = views.map((v) => ({
    ...assessDatabase(v, { expectEnabled: phase !== 'cutover', lagThreshold: plan.cfg.lag_threshold }),
    observedAt: v.observedAt.toISOString(),
  }));
  return { resource: plan.instance, phase, startedAt: cib[KEY.startedAt], cib, databases };
}
