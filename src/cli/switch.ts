/**
 * `pgtwin-migrate cutover` and `pgtwin-migrate failback`: ask Pacemaker for
 * a switch through the migration resource's cutover_ready parameter (it
 * applies it with reload-agent). A switch starts only once cutover_ready was
 * seen false since the last one ended, so these set it false first when
 * needed, wait until the agent has seen it, then true; --wait follows the
 * switch to its end.
 */
import type { Plan } from '../migration/plan';
import { CUTOVER_KEY } from '../migration/cutover/steps';
import { phaseOf } from '../migration/cib-state';
import { escapeControls } from '../ocf/text';
import type { SwitchKind } from '../migration/direction';
import { setInstanceAttribute } from '../cluster/resources';
import { sleep } from '../migration/parallel';

export interface SwitchOptions {
  readonly retry: boolean;
  readonly wait: boolean;
  readonly waitSeconds: number;
}

const out = (line: string) => process.stdout.write(`${escapeControls(line)}\n`);

export async function switchCommand(plan: Plan, kind: SwitchKind, opts: SwitchOptions): Promise<number> {
  const cib = await plan.state.readAll();
  const phase = phaseOf(cib) ?? 'forward';
  const state = cib.get(CUTOVER_KEY.state);
  const wantPhase = kind === 'cutover' ? 'forward' : 'reverse';
  if (phase === 'finished' || phase === 'finishing') {
    out(`migration ${plan.instance} is ${phase}; nothing to switch`);
    return 1;
  }
  if (phase === 'cutover' || phase === 'failback') {
    out(`a ${phase} is already ${state} (step ${cib.get(CUTOVER_KEY.step) ?? '?'})`);
    return opts.wait ? followSwitch(plan, phase, opts.waitSeconds) : 0;
  }
  if (phase !== wantPhase) {
    out(
      kind === 'cutover'
        ? `production is already on the target (phase ${phase}); to move it back run: pgtwin-migrate failback`
        : `production is on the source (phase ${phase}); a failback follows a cutover (pgtwin-migrate cutover)`,
    );
    return 1;
  }
  if (state === 'failed' && !opts.retry) {
    out(`the last switch failed: ${cib.get(CUTOVER_KEY.error) ?? 'unknown reason'}`);
    out(`fix the cause, then run: pgtwin-migrate ${kind} --retry   (sets cutover_ready=false, then true)`);
    return 1;
  }
  if (plan.cfg.cutover_ready || state === 'failed' || cib.get(CUTOVER_KEY.armed) === 'no') {
    await setInstanceAttribute(plan.instance, 'cutover_ready', 'false', 10_000);
    out('cutover_ready=false: waiting for the agent to see it...');
    const until = Date.now() + 60_000;
    for (;;) {
      const now = await plan.state.readAll();
      if (now.get(CUTOVER_KEY.armed) !== 'no' && now.get(CUTOVER_KEY.state) !== 'failed') break;
      if (Date.now() > until) {
        out('Pacemaker has not applied cutover_ready=false within 60 s; is the resource running? (crm_mon -1)');
        return 1;
      }
      await sleep(500);
    }
  }
  await setInstanceAttribute(plan.instance, 'cutover_ready', 'true', 10_000);
  out(`cutover_ready=true set on ${plan.instance}; Pacemaker starts the ${kind} through reload-agent`);
  return opts.wait ? followSwitch(plan, kind, opts.waitSeconds) : 0;
}

export async function followSwitch(plan: Plan, kind: SwitchKind, seconds: number): Promise<number> {
  const until = Date.now() + seconds * 1000;
  let last = '';
  let seenRunning = false;
  while (Date.now() < until) {
    const cib = await plan.state.readAll();
    const state = cib.get(CUTOVER_KEY.state);
    const step = cib.get(CUTOVER_KEY.step) ?? '';
    const thisKind = cib.get(CUTOVER_KEY.kind) === kind || state === undefined;
    const now = `${state ?? 'requested'} ${step}`;
    if (now !== last) {
      out(`${new Date().toISOString()} ${state === undefined || !seenRunning && state !== 'running' ? `${kind} requested; waiting for Pacemaker to start it (reload-agent or the next monitor)` : `${kind} ${state}: ${step}`}`);
      last = now;
    }
    seenRunning ||= thisKind && (state === 'running' || state === 'blocked');
    if (seenRunning && state === 'complete') {
      out(`${kind} complete: read-only window ${cib.get(CUTOVER_KEY.windowMs) ?? '?'} ms, total ${cib.get(CUTOVER_KEY.totalMs) ?? '?'} ms; log ${cib.get(CUTOVER_KEY.log) ?? ''}`);
      return 0;
    }
    if (seenRunning && state === 'blocked') {
      out(`${kind} blocked at ${step}: ${cib.get(CUTOVER_KEY.error) ?? ''}; both sides stay fenced, and each monitor tries again (pgtwin-migrate status)`);
      return 1;
    }
    if (seenRunning && state === 'failed') {
      out(`${kind} failed and was rolled back: ${cib.get(CUTOVER_KEY.error) ?? ''}`);
      return 1;
    }
    await sleep(500);
  }
  out(`still not finished after ${seconds} s; see pgtwin-migrate status`);
  return 1;
}
