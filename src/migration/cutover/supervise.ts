/**
 * How the OCF actions drive a switch: monitor and reload-agent launch the
 * worker when cutover_ready=true (a cutover in phase forward, a failback in
 * phase reverse), supervise a running one, take over one whose lease
 * expired, retry one that is blocked past its swap; cutover_ready=false arms
 * the next switch (and acknowledges a failed one); stop brings a running one
 * to a consistent end before it returns.
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { closeSync } from 'node:fs';
import { openAppendOrDevNull } from '../../ocf/safe-file';
import { join } from 'node:path';
import type { Plan } from '../plan';
import { CUTOVER_KEY, shouldLaunch, shouldArm } from './steps';
import { encodeLease, decodeLease, judgeLease, holderRunsHere, sightingPath, readSighting, processStart } from './lease';
import { localNodeName } from '../../cluster/attributes';
import { readStatus } from '../../cluster/crm-mon';
import { deadNodes } from '../../cluster/running';
import { phaseOf } from '../cib-state';
import { sleep } from '../parallel';
import { atomicWrite } from '../state-files';
import { CutoverRun } from './worker';
import { openCutoverLog } from './cutover-log';
import type { SwitchKind } from '../direction';

export const WORKER_COMMAND = 'cutover-worker';

/** Starts the worker detached (own session, no pipe to Pacemaker's executor). */
export function launchWorker(plan: Plan, mode: 'run' | 'recover', kind: SwitchKind, reservation: string): number | undefined {
  const script = process.argv[1] && /\.c?js$/.test(process.argv[1]) ? [process.argv[1]] : [];
  const args = [...script, WORKER_COMMAND, '--kind', kind, '--reservation', reservation, ...(mode === 'recover' ? ['--recover'] : [])];
  const out = openAppendOrDevNull(join(plan.stateDir, '.pgtwin_migrate_cutover-worker.out'), 0o640, 'state directory');
  try {
    const child = spawn(process.execPath, args, { detached: true, stdio: ['ignore', out, out], env: process.env });
    child.unref();
    plan.log.info(`${kind}: worker started (pid ${child.pid}${mode === 'recover' ? ', taking over' : ''}); follow ${join(plan.stateDir, '.pgtwin_migrate_cutover.log')}`);
    return child.pid;
  } finally {
    closeSync(out);
  }
}

export interface Supervision {
  /** A switch is running (or was just launched, or is blocked past its swap): the monitor should not judge replication. */
  readonly running: boolean;
  /** Past the swap, a step keeps failing (monitor fails with this). */
  readonly blockedReason: string | undefined;
  /** A failed (rolled back) switch the operator has not acknowledged. */
  readonly failedReason: string | undefined;
}

function kindOf(cib: ReadonlyMap<string, string>): SwitchKind {
  return cib.get(CUTOVER_KEY.kind) === 'failback' ? 'failback' : 'cutover';
}

/** Writes a reservation over the lease value the caller saw, in one compare-and-swap; false when someone else moved first. */
async function reserve(plan: Plan, seen: ReadonlyMap<string, string>, node: string, values: Record<string, string>): Promise<string | undefined> {
  const reservation = encodeLease({ node, pid: 0, start: '', nonce: randomUUID(), seq: 0 });
  const lease = seen.get(CUTOVER_KEY.lease);
  const outcome = await plan.state.casMany({ ...values, [CUTOVER_KEY.lease]: reservation }, [
    { name: CUTOVER_KEY.lease, value: lease },
    { name: CUTOVER_KEY.state, value: seen.get(CUTOVER_KEY.state) },
  ]);
  return outcome === 'applied' ? reservation : undefined;
}

/** The monitor's and reload-agent's part: launch, supervise, take over, arm. */
export async function superviseCutover(plan: Plan, cib: ReadonlyMap<string, string>): Promise<Supervision> {
  const state = cib.get(CUTOVER_KEY.state);
  const phase = phaseOf(cib);
  // Asked only when a switch is under way or about to start (the steady state needs no node name).
  const nodeName = () => localNodeName(plan.deadline.stepMs(5_000));
  if (state === 'running' || state === 'blocked') {
    const node = await nodeName();
    const kind = kindOf(cib);
    const value = cib.get(CUTOVER_KEY.lease);
    const path = sightingPath(plan.rscTmp, plan.instance);
    const dead = value && decodeLease(value)?.node !== node ? deadNodes(await readStatus(plan.deadline.stepMs(10_000))) : new Set<string>();
    const { verdict, sighting } = judgeLease({ value, localNode: node, deadNodes: dead, seen: readSighting(path), now: Date.now() });
    if (sighting) atomicWrite(path, JSON.stringify(sighting), 0o600);
    const blockedReason = state === 'blocked' ? cib.get(CUTOVER_KEY.error) || 'blocked' : undefined;
    const holder = decodeLease(value);
    if (verdict === 'held') {
      plan.log.info(`${kind} ${state}: step ${cib.get(CUTOVER_KEY.step) ?? '?'} (worker ${holder?.pid || 'starting'} on ${holder?.node ?? '?'})`);
      return { running: true, blockedReason, failedReason: undefined };
    }
    if (verdict === 'expired') plan.log.warn(`${kind} worker ${holder ? `${holder.pid} on ${holder.node}` : '(unknown)'} is gone at step ${cib.get(CUTOVER_KEY.step) ?? '?'}; taking over`);
    else if (state === 'blocked') plan.log.warn(`${kind} blocked at step ${cib.get(CUTOVER_KEY.step) ?? '?'}: ${blockedReason}; trying again`);
    else plan.log.warn(`${kind} recorded as running at step ${cib.get(CUTOVER_KEY.step) ?? '?'} with no worker; taking over`);
    const reservation = await reserve(plan, cib, node, {});
    if (reservation) launchWorker(plan, 'recover', kind, reservation);
    return { running: true, blockedReason, failedReason: undefined };
  }
  const armed = cib.get(CUTOVER_KEY.armed);
  if (shouldArm(plan.cfg.cutover_ready, state, armed)) {
    await plan.state.setMany({ [CUTOVER_KEY.armed]: 'yes', ...(state === 'failed' ? { [CUTOVER_KEY.state]: 'reset' } : {}) });
    plan.log.info(`cutover_ready=false${state === 'failed' ? ' acknowledges the failed switch' : ''}; setting it to true will ${phase === 'reverse' ? 'fail back' : 'cut over'}`);
    return { running: false, blockedReason: undefined, failedReason: undefined };
  }
  if (state === 'failed') return { running: false, blockedReason: undefined, failedReason: cib.get(CUTOVER_KEY.error) || 'unknown reason' };
  if (shouldLaunch(plan.cfg.cutover_ready, phase, state, armed)) {
    const kind: SwitchKind = phase === 'reverse' ? 'failback' : 'cutover';
    // Record the intent first (a CAS), so a second monitor or reload does not start another worker.
    const reservation = await reserve(plan, cib, await nodeName(), { [CUTOVER_KEY.kind]: kind, [CUTOVER_KEY.state]: 'running', [CUTOVER_KEY.step]: 'recheck', [CUTOVER_KEY.error]: '' });
    if (!reservation) return { running: true, blockedReason: undefined, failedReason: undefined };
    launchWorker(plan, 'run', kind, reservation);
    return { running: true, blockedReason: undefined, failedReason: undefined };
  }
  return { running: false, blockedReason: undefined, failedReason: undefined };
}

/**
 * stop during a switch: ask the local worker to end by the rule (rollback
 * before the swap, finish after it) and wait; end it when it does not end
 * in time, and settle the switch in this process within what is left of the
 * stop's time; what still remains is recorded for the next start or monitor
 * (on any node). Never returns while a worker of this node still acts.
 */
export async function settleCutoverOnStop(plan: Plan, looks = 0): Promise<void> {
  const cib = await plan.state.readAll();
  const state = cib.get(CUTOVER_KEY.state);
  if (state !== 'running' && state !== 'blocked') return;
  const node = await localNodeName(5_000);
  const lease = decodeLease(cib.get(CUTOVER_KEY.lease));
  if (lease && lease.node !== node && lease.pid > 0) {
    plan.log.warn(`stop: a ${kindOf(cib)} worker runs on ${lease.node}; it goes on there`);
    return;
  }
  const margin = 5_000;
  if (lease && lease.node === node && holderRunsHere(lease)) {
    plan.log.warn(`stop: asking ${kindOf(cib)} worker ${lease.pid} to end (rollback before the swap, finish after it)`);
    process.kill(lease.pid, 'SIGTERM');
    // A worker that has not ended within 10 s of SIGTERM (or half the time left) does not answer: the rest of the time is for settling here.
    const until = Date.now() + Math.max(0, Math.min(10_000, (plan.deadline.remainingMs() - margin) / 2));
    while (Date.now() < until && holderRunsHere(lease)) await sleep(100);
    if (holderRunsHere(lease)) {
      plan.log.err(`stop: ${kindOf(cib)} worker ${lease.pid} did not end in time; ending it and settling the switch here`);
      process.kill(lease.pid, 'SIGKILL');
      while (processStart(lease.pid) === lease.start) await sleep(20);
    } else {
      return;
    }
  }
  const now = await plan.state.readAll();
  // Blocked past the swap: nothing acts, and nothing more can be done until the address moves.
  if (now.get(CUTOVER_KEY.state) !== 'running') return;
  // A worker that took the launcher's reservation over meanwhile (or one on
  // another node) holds a live lease: never take it from it — look again.
  const current = decodeLease(now.get(CUTOVER_KEY.lease));
  if (current && current.pid > 0 && (current.node !== node || holderRunsHere(current))) {
    if (looks < 3) return settleCutoverOnStop(plan, looks + 1);
    plan.log.warn(`stop: worker ${current.pid} on ${current.node} holds the switch; it goes on`);
    return;
  }
  if (plan.deadline.remainingMs() < margin + 3_000) {
    plan.log.warn('stop: no time left to settle the switch; the next start or monitor (on any node) does');
    return;
  }
  const log = openCutoverLog(plan.stateDir);
  plan.log.addSink(log.sink);
  const run = new CutoverRun(plan, node, log.path, kindOf(now), { reservation: now.get(CUTOVER_KEY.lease) ?? '', budgetEndsAt: Date.now() + plan.deadline.remainingMs() - margin });
  run.requestStop();
  try {
    const outcome = await run.recover();
    plan.log.info(`stop: the switch ends here: ${outcome}`);
  } finally {
    await run.close();
  }
}
