/**
 * `pgtwin-migrate cutover`: sets cutover_ready=true on the migration
 * resource (Pacemaker applies it with reload-agent), optionally after
 * acknowledging a failed cutover (--retry) and following it (--wait).
 */
import type { Plan } from '../migration/plan';
import { CUTOVER_KEY } from '../migration/cutover/steps';
import { KEY } from '../migration/cib-state';
import { setInstanceAttribute } from '../cluster/resources';
import { sleep } from '../migration/parallel';

export interface CutoverOptions {
  readonly retry: boolean;
  readonly wait: boolean;
  readonly waitSeconds: number;
}

const out = (line: string) => process.stdout.write(`${line}\n`);

export async function cutoverCommand(plan: Plan, opts: CutoverOptions): Promise<number> {
  const cib = await plan.state.readAll();
  if (cib.get(KEY.phase) === 'complete') {
    out(`migration ${plan.instance} is already complete (${cib.get(KEY.completedAt) ?? ''})`);
    return 0;
  }
  const state = cib.get(CUTOVER_KEY.state);
  if (state === 'failed' && !opts.retry) {
    out(`the last cutover failed: ${cib.get(CUTOVER_KEY.error) ?? 'unknown reason'}`);
    out('fix the cause, then run: pgtwin-migrate cutover --retry   (sets cutover_ready=false, then true)');
    return 1;
  }
  if (state !== 'running') {
    if (opts.retry && state === 'failed') {
      await setInstanceAttribute(plan.instance, 'cutover_ready', 'false', 10_000);
      out('cutover_ready=false: acknowledging the failed cutover...');
      const until = Date.now() + 60_000;
      while ((await plan.state.get(CUTOVER_KEY.state)) === 'failed') {
        if (Date.now() > until) {
          out('Pacemaker has not applied cutover_ready=false within 60 s; is the resource running? (crm_mon -1)');
          return 1;
        }
        await sleep(500);
      }
    }
    await setInstanceAttribute(plan.instance, 'cutover_ready', 'true', 10_000);
    out(`cutover_ready=true set on ${plan.instance}; Pacemaker starts the cutover through reload-agent`);
  } else {
    out(`a cutover is already running (step ${cib.get(CUTOVER_KEY.step) ?? '?'})`);
  }
  if (!opts.wait) return 0;
  return followCutover(plan, opts.waitSeconds);
}

export async function followCutover(plan: Plan, seconds: number): Promise<number> {
  const until = Date.now() + seconds * 1000;
  let last = '';
  let seenRunning = false;
  while (Date.now() < until) {
    const cib = await plan.state.readAll();
    const state = cib.get(CUTOVER_KEY.state);
    const step = cib.get(CUTOVER_KEY.step) ?? '';
    const now = `${state ?? 'requested'} ${step}`;
    if (now !== last) {
      out(`${new Date().toISOString()} ${state === undefined ? 'cutover requested; waiting for Pacemaker to start it (reload-agent or the next monitor)' : `cutover ${state}: ${step}`}`);
      last = now;
    }
    seenRunning ||= state === 'running';
    if (state === 'complete' || cib.get(KEY.phase) === 'complete') {
      out(`cutover complete: read-only window ${cib.get(CUTOVER_KEY.windowMs) ?? '?'} ms, total ${cib.get(CUTOVER_KEY.totalMs) ?? '?'} ms; log ${cib.get(CUTOVER_KEY.log) ?? ''}`);
      return 0;
    }
    if (seenRunning && state === 'failed') {
      out(`cutover failed and was rolled back: ${cib.get(CUTOVER_KEY.error) ?? ''}`);
      return 1;
    }
    await sleep(500);
  }
  out(`still not finished after ${seconds} s; see pgtwin-migrate status`);
  return 1;
}
