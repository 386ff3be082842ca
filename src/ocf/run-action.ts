/**
 * Runs one OCF action the way resource-agents' shell agents do: read the
 * environment, set up logging, check the parameters, run the action, turn
 * any failure into an exit reason and an OCF code.
 */
import { existsSync } from 'node:fs';
import { readOcfEnv, isProbe, baseInstance, type OcfEnv } from './env';
import { markerPath } from '../migration/state-files';
import { Logger, setLogger } from './log';
import { OCF, OcfError, ocfCodeName } from './exit-codes';
import { writeExitReason } from './exit-reason';
import { actionDeadline, type Deadline } from './deadline';
import { armDeadline, finish, guardExit, setStep } from './watchdog';
import { loadConfig, parseBoolean, type Config } from './config';
import { ProgramMissingError } from './exec';
import { redact } from './redact';

export interface ActionContext {
  readonly action: string;
  readonly cfg: Config;
  readonly env: OcfEnv;
  readonly deadline: Deadline;
  readonly log: Logger;
  readonly probe: boolean;
}

export type ActionHandler = (ctx: ActionContext) => Promise<number>;

async function handlerFor(action: string): Promise<ActionHandler | undefined> {
  switch (action) {
    case 'validate-all':
      return (await import('../migration/actions/validate')).validateAll;
    case 'start':
      return (await import('../migration/actions/start')).start;
    case 'stop':
      return (await import('../migration/actions/stop')).stop;
    case 'monitor':
      return (await import('../migration/actions/monitor')).monitor;
    case 'reload-agent':
      return (await import('../migration/actions/reload')).reloadAgent;
    default:
      return undefined;
  }
}

/** Turns anything thrown into an OCF code, with the exit reason written. */
export function reportFailure(err: unknown, log: Logger, action: string): number {
  if (err instanceof OcfError) {
    log.err(`${action}: ${err.message}`);
    writeExitReason(err.message);
    return err.code;
  }
  if (err instanceof ProgramMissingError) {
    const reason = `${err.program} not found; install it (package pacemaker-cli-utils) or fix PATH`;
    log.err(`${action}: ${reason}`);
    writeExitReason(reason);
    return OCF.ERR_INSTALLED;
  }
  const message = err instanceof Error ? err.message : String(err);
  log.err(`${action}: unexpected error: ${redact(err instanceof Error && err.stack ? err.stack : message)}`);
  writeExitReason(`${action} failed: ${message}`);
  return OCF.ERR_GENERIC;
}

/**
 * The configuration, or undefined for a stop of a resource not running here
 * whose parameters cannot be read: there is nothing to stop. (With readable
 * parameters such a stop still runs, for teardown_on_stop.)
 */
function configOrNothingToStop(action: string, running: boolean, log: Logger, load: () => Config): Config | undefined {
  try {
    return load();
  } catch (err) {
    if (running || action !== 'stop' || !(err instanceof OcfError)) throw err;
    log.info(`stop: not running here; nothing to stop (parameters not checked for it: ${err.message})`);
    return undefined;
  }
}

export async function runAction(action: string, procEnv: NodeJS.ProcessEnv = process.env): Promise<number> {
  const env = readOcfEnv(procEnv);
  const log = new Logger(env);
  setLogger(log);
  if (parseBoolean(procEnv.OCF_RESKEY_cutover_debug ?? '') === true) log.enableDebug();
  const deadline = actionDeadline(action, env.timeoutMs);
  guardExit();
  armDeadline(action, deadline);
  let code: number;
  try {
    // Not running here: what Pacemaker asks of a stopped resource is answered
    // whatever its parameters say (a failed probe blocks the resource, a
    // failed stop gets the node fenced), and without loading the PostgreSQL client.
    const running = existsSync(markerPath(env.rscTmp, baseInstance(env)));
    setStep('reading parameters');
    if (!running && action === 'monitor') {
      code = OCF.NOT_RUNNING;
    } else if (!running && action === 'reload-agent') {
      log.info('reload-agent: not running here; nothing to reload (the next start checks and applies the parameters)');
      code = OCF.SUCCESS;
    } else {
      const cfg = configOrNothingToStop(action, running, log, () => loadConfig(procEnv));
      if (cfg === undefined) {
        code = OCF.SUCCESS;
      } else {
        const handler = await handlerFor(action);
        if (!handler) {
          writeExitReason(`action ${action} is not implemented`);
          code = OCF.ERR_UNIMPLEMENTED;
        } else {
          code = await handler({ action, cfg, env, deadline, log, probe: isProbe(action, env) });
        }
      }
    }
  } catch (err) {
    code = reportFailure(err, log, action);
  }
  log.debug(`${action} -> ${ocfCodeName(code)} in ${deadline.totalMs - deadline.remainingMs()} ms`);
  await log.flush();
  finish(code);
  return code;
}
