/**
 * How the OCF actions drive the cutover: monitor and reload-agent launch
 * the worker when cutover_ready=true, supervise a running one, take over a
 * dead one; setting cutover_ready=false acknowledges a failed one; stop
 * brings a running one to a consistent end first.
 */
import { spawn } from 'node:child_process';
import { closeSync } from 'node:fs';
import { openAppendOrDevNull } from '../../ocf/safe-file';
import { join } from 'node:path';
import type { Plan } from '../plan';
import { CUTOVER_KEY, shouldLaunch, shouldReset } from './steps';
import { decodeLease, holderAlive, workerAlive, type Lease } from './lease';
import { localNodeName } from '../../cluster/attributes';
import { phaseOf } from '../cib-state';
import { sleep } from '../parallel';
import { CutoverRun } from './worker';
import { openCutoverLog } from './cutover-log';

export const WORKER_COMMAND = 'cutover-worker';

/** Starts the worker detached (own session, no pipe to Pacemaker's executor). */
export function launchWorker(plan: Plan, mode: 'run' | 'recover'): number | undefined {
  const script = process.argv[1] && /\.c?js$/.test(process.argv[1]) ? [process.argv[1]] : [];
  const args = [...script, WORKER_COMMAND, ...(mode === 'recover' ? ['--recover'] : [])];
  const out = openAppendOrDevNull(join(plan.stateDir, '.pgtwin_migrate_cutover-worker.out'), 0o640, 'state directory');
  try {
    const child = spawn(process.execPath, args, { detached: true, stdio: ['ignore', out, out], env: process.env });
    child.unref();
    plan.log.info(`cutover: worker started (pid ${child.pid}${mode === 'recover' ? ', taking over' : ''}); follow ${join(plan.stateDir, '.pgtwin_migrate_cutover.log')}`);
    return child.pid;
  } finally {
    closeSync(out);
  }
}

export interface Supervision {
  /** A cutover is running (or was just launched): the monitor should not judge the forward subscriptions. */
  readonly running: boolean;
  /** A failed cutover the operator has not acknowledged. */
  readonly failedReason: string | undefined;
}

/** The monitor's and reload-agent's part: launch, supervise, take over, acknowledge. */
export async function superviseCutover(plan: Plan, cib: ReadonlyMap<string, string>): Promise<Supervision> {
  const state = cib.get(CUTOVER_KEY.state);
  const phase = phaseOf(cib);
  if (state === 'running') {
    const lease = decodeLease(cib.get(CUTOVER_KEY.lease));
    const node = await localNodeName(plan.deadline.stepMs(5_000));
    if (lease && holderAlive(lease, node)) {
      plan.log.info(`cutover running: step ${cib.get(CUTOVER_KEY.step) ?? '?'} (worker ${lease.pid} on ${lease.node})`);
    } else {
      plan.log.warn(`cutover worker ${lease ? `${lease.pid} on ${lease.node}` : '(unknown)'} is gone at step ${cib.get(CUTOVER_KEY.step) ?? '?'}; taking over`);
      launchWorker(plan, 'recover');
    }
    return { running: true, failedReason: undefined };
  }
  if (shouldReset(plan.cfg.cutover_ready, state)) {
    await plan.state.set(CUTOVER_KEY.state, 'reset');
    plan.log.info('cutover_ready=false acknowledges the failed cutover; setting it to true will try again');
    return { running: false, failedReason: undefined };
  }
  if (state === 'failed') {
    return { running: false, failedReason: cib.get(CUTOVER_KEY.error) || 'unknown reason' };
  }
  if (shouldLaunch(plan.cfg.cutover_ready, phase, state)) {
    // Record the intent first, so a second monitor or reload does not start another worker.
    const node = await localNodeName(5_000);
    await plan.state.setMany({ [CUTOVER_KEY.state]: 'running', [CUTOVER_KEY.step]: 'recheck', [CUTOVER_KEY.lease]: `${node}:0:${Date.now()}` });
    const pid = launchWorker(plan, 'run');
    if (pid) await plan.state.set(CUTOVER_KEY.lease, `${node}:${pid}:${Date.now()}`);
    return { running: true, failedReason: undefined };
  }
  return { running: false, failedReason: undefined };
}

/**
 * stop during a cutover: ask the local worker to end by the rule (rollback
 * before the swap, finish after it) and wait; take over in this process
 * when it is gone or does not end in time.
 */
export async function settleCutoverOnStop(plan: Plan): Promise<void> {
  const cib = await plan.state.readAll();
  if (cib.get(CUTOVER_KEY.state) !== 'running') return;
  const node = await localNodeName(5_000);
  const lease: Lease | undefined = decodeLease(cib.get(CUTOVER_KEY.lease));
  if (lease && lease.node !== node && holderAlive(lease, node)) {
    plan.log.warn(`stop: a cutover worker runs on ${lease.node}; it will finish there`);
    return;
  }
  if (lease && lease.node === node && lease.pid > 0 && workerAlive(lease.pid)) {
    plan.log.warn(`stop: asking cutover worker ${lease.pid} to end (rollback before the swap, finish after it)`);
    process.kill(lease.pid, 'SIGTERM');
    const until = Date.now() + Math.max(0, plan.deadline.remainingMs() - 20_000);
    while (Date.now() < until && workerAlive(lease.pid)) await sleep(200);
    if (!workerAlive(lease.pid)) return;
    plan.log.err(`stop: cutover worker ${lease.pid} did not end in time; ending it and settling the cutover here`);
    process.kill(lease.pid, 'SIGKILL');
    await sleep(200);
  }
  const log = openCutoverLog(plan.stateDir);
  plan.log.addSink(log.sink);
  const run = new CutoverRun(plan, node, log.path);
  try {
    await run.recover();
  } finally {
    await run.close();
  }
}
